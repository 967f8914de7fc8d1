"""Concurrency, cancellation and deadlines of a real worker process."""

import time
import unittest

from .helpers import WorkerProcess


class ConcurrencyTest(unittest.TestCase):
    def test_parallel_sleeps(self):
        worker = WorkerProcess(self, "--diagnostics", "--max-concurrency", "4")
        started = time.monotonic()
        ids = [worker.call("sleep", {"seconds": 0.3}) for _ in range(4)]
        for request_id in ids:
            self.assertEqual(worker.response(request_id)["result"], {"slept": 0.3})
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 0.9, f"four 0.3 s sleeps took {elapsed:.3f} s")

    def test_responses_out_of_order(self):
        worker = WorkerProcess(self, "--diagnostics", "--max-concurrency", "4")
        slow = worker.call("sleep", {"seconds": 0.5})
        fast = worker.call("echo", {"value": "fast"})
        self.assertEqual(worker.recv(), {"id": fast, "success": True, "result": "fast"})
        self.assertEqual(worker.recv(), {"id": slow, "success": True, "result": {"slept": 0.5}})

    def test_control_commands_skip_the_queue(self):
        worker = WorkerProcess(self, "--diagnostics", "--max-concurrency", "1")
        hang = worker.call("hang")
        queued = worker.call("echo", {"value": 1})
        self.assertTrue(worker.request("ping")["success"])
        self.assertTrue(worker.request("describe")["success"])
        worker.request("cancel", {"id": hang})
        self.assertEqual(worker.response(hang)["error"]["code"], "canceled")
        self.assertEqual(worker.response(queued)["result"], 1)


class CancelTest(unittest.TestCase):
    def setUp(self):
        self.worker = WorkerProcess(self, "--diagnostics", "--max-concurrency", "1")

    def start_hang(self, **fields) -> int:
        request_id = self.worker.call("hang", **fields)
        self.worker.wait_log("hang started", request_id=request_id)
        return request_id

    def test_cancel_queued_then_running(self):
        hang = self.start_hang()
        queued = self.worker.call("echo", {"value": "never"})
        reply = self.worker.request("cancel", {"id": queued})
        self.assertEqual(reply["result"], {"id": queued, "state": "queued"})
        error = self.worker.response(queued)["error"]
        self.assertEqual(error["code"], "canceled")
        self.assertEqual(list(error), ["code", "message"])

        reply = self.worker.request("cancel", {"id": hang})
        self.assertEqual(reply["result"], {"id": hang, "state": "running"})
        reply = self.worker.response(hang)
        self.assertFalse(reply["success"])
        self.assertEqual(reply["error"]["code"], "canceled")

        again = self.worker.request("cancel", {"id": hang})  # idempotent
        self.assertEqual(again["result"], {"id": hang, "state": "unknown"})
        self.assertTrue(self.worker.request("echo", {"value": 2})["success"], "the pool thread is free again")

    def test_cancel_unknown_id(self):
        reply = self.worker.request("cancel", {"id": 999})
        self.assertEqual(reply, {"id": reply["id"], "success": True, "result": {"id": 999, "state": "unknown"}})

    def test_cancel_sleep(self):
        sleeper = self.worker.call("sleep", {"seconds": 30})
        state = self.worker.request("cancel", {"id": sleeper})["result"]["state"]
        self.assertIn(state, ("queued", "running"))
        self.assertEqual(self.worker.response(sleeper)["error"]["code"], "canceled")

    def test_duplicate_id_in_flight(self):
        hang = self.start_hang()
        self.worker.send({"id": hang, "command": "echo", "args": {"value": 1}})
        self.assertEqual(self.worker.recv()["error"]["code"], "already_exists")
        self.worker.request("cancel", {"id": hang})
        self.assertEqual(self.worker.response(hang)["error"]["code"], "canceled")


class DeadlineTest(unittest.TestCase):
    def test_running_deadline(self):
        worker = WorkerProcess(self, "--diagnostics")
        started = time.monotonic()
        reply = worker.request("hang", deadline_ms=100)
        self.assertFalse(reply["success"])
        self.assertEqual(reply["error"]["code"], "deadline_exceeded")
        self.assertGreaterEqual(time.monotonic() - started, 0.1)

    def test_sleep_past_deadline(self):
        worker = WorkerProcess(self, "--diagnostics")
        reply = worker.request("sleep", {"seconds": 30}, deadline_ms=50)
        self.assertEqual(reply["error"]["code"], "deadline_exceeded")

    def test_huge_deadline_and_sleep(self):
        worker = WorkerProcess(self, "--diagnostics", "--max-concurrency", "1")
        hang = worker.call("hang", deadline_ms=2**53 - 1)
        worker.wait_log("hang started", request_id=hang)
        sleeper = worker.call("sleep", {"seconds": 1e300}, deadline_ms=2**53 - 1)  # queued behind the hang
        worker.request("cancel", {"id": hang})
        self.assertEqual(worker.response(hang)["error"]["code"], "canceled")
        worker.request("cancel", {"id": sleeper})
        self.assertEqual(worker.response(sleeper)["error"]["code"], "canceled")
        self.assertEqual(worker.request("echo", {"value": 1}, deadline_ms=60000)["result"], 1)
        self.assertFalse([r for r in worker.log_records() if r["level"] == "error"])

    def test_queued_deadline_answered_without_running(self):
        worker = WorkerProcess(self, "--diagnostics", "--max-concurrency", "1")
        hang = worker.call("hang")
        worker.wait_log("hang started", request_id=hang)
        queued = worker.call("print_stdout", {"text": "must not run"}, deadline_ms=100)
        reply = worker.recv()  # answered while the hang still occupies the only thread
        self.assertEqual(reply["id"], queued)
        self.assertEqual(reply["error"]["code"], "deadline_exceeded")
        worker.request("cancel", {"id": hang})
        self.assertEqual(worker.response(hang)["error"]["code"], "canceled")
        self.assertTrue(worker.request("ping")["success"])
        self.assertNotIn("must not run", worker.stderr_text())


if __name__ == "__main__":
    unittest.main()
