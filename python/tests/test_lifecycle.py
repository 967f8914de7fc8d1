"""Start-up, shutdown, end of input, exit statuses and protocol violations."""

import os
import textwrap
import time
import unittest

from .helpers import HandlerModuleMixin, StreamEnded, WorkerProcess, exit_within, vector_bytes

STUBBORN_SOURCE = textwrap.dedent(
    """
    import threading
    import time

    from dspgo_worker import command


    @command("stubborn")
    def stubborn(args, ctx):
        ctx.logger.info("stubborn started")
        time.sleep(30)  # ignores cancellation
        return "too late"


    @command("leak_thread")
    def leak_thread(args, ctx):
        threading.Thread(target=time.sleep, args=(60,), daemon=False).start()
        return "leaked"
    """
)


class ShutdownTest(unittest.TestCase):
    def test_shutdown_cancels_running_and_queued(self):
        worker = WorkerProcess(self, "--diagnostics", "--max-concurrency", "1")
        hang = worker.call("hang")
        worker.wait_log("hang started", request_id=hang)
        queued = worker.call("echo", {"value": 1})
        started = time.monotonic()
        shutdown = worker.call("shutdown")
        self.assertEqual(worker.recv(), {"id": shutdown, "success": True, "result": {"stopping": True}})
        self.assertEqual(worker.response(queued)["error"]["code"], "canceled")
        self.assertEqual(worker.response(hang)["error"]["code"], "canceled")
        self.assertEqual(exit_within(self, worker, started), 0)
        with self.assertRaises(StreamEnded):
            worker.next_frame()

    def test_eof_exits_promptly(self):
        worker = WorkerProcess(self)
        started = time.monotonic()
        worker.close_stdin()
        self.assertEqual(exit_within(self, worker, started), 0)

    def test_idle_worker_does_not_spin(self):
        worker = WorkerProcess(self)
        hz = os.sysconf("SC_CLK_TCK")
        window = 0.5
        before = worker.cpu_ticks()
        time.sleep(window)  # a measurement window, not synchronisation
        used = (worker.cpu_ticks() - before) / hz
        self.assertLess(used / window, 0.05, f"idle worker used {used:.3f} s of CPU in {window} s")
        started = time.monotonic()
        worker.close_stdin()
        self.assertEqual(exit_within(self, worker, started), 0)

    def test_eof_while_hang_running(self):
        worker = WorkerProcess(self, "--diagnostics")
        hang = worker.call("hang")
        worker.wait_log("hang started", request_id=hang)
        started = time.monotonic()
        worker.close_stdin()
        self.assertEqual(exit_within(self, worker, started), 0)
        self.assertEqual(worker.response(hang)["error"]["code"], "canceled")


class StubbornHandlerTest(HandlerModuleMixin, unittest.TestCase):
    handler_module = "dspgo_test_stubborn"
    handler_source = STUBBORN_SOURCE

    def test_handler_ignoring_cancel_is_answered_after_grace(self):
        worker = self.start_with_handlers("--stop-grace", "0.2")
        stuck = worker.call("stubborn")
        worker.wait_log("stubborn started", request_id=stuck)
        started = time.monotonic()
        worker.call("shutdown")
        self.assertEqual(exit_within(self, worker, started), 0)
        reply = worker.response(stuck)
        self.assertEqual(reply["error"]["code"], "canceled")
        self.assertIn("did not stop", reply["error"]["message"])

    def test_non_daemon_user_thread_does_not_block_exit(self):
        worker = self.start_with_handlers()
        self.assertEqual(worker.request("leak_thread")["result"], "leaked")
        started = time.monotonic()
        worker.close_stdin()
        self.assertEqual(exit_within(self, worker, started), 0)


class ProtocolViolationTest(unittest.TestCase):
    def test_json_without_length_header(self):
        worker = WorkerProcess(self)
        worker.send_raw(vector_bytes("raw_json_without_header"))  # the seed bug; stdin stays open
        self.assertEqual(worker.wait_exit(), 3)
        errors = [r for r in worker.log_records() if r["level"] == "error"]
        self.assertEqual(len(errors), 1, errors)
        self.assertEqual(errors[0]["kind"], "frame_too_large")
        self.assertIn("without the 4-byte length header", errors[0]["msg"])

    def test_frame_over_configured_limit(self):
        worker = WorkerProcess(self, "--max-frame-bytes", "1024")
        worker.send({"id": 1, "command": "ping", "args": {"pad": "x" * 2000}})
        self.assertEqual(worker.wait_exit(), 3)
        errors = [r for r in worker.log_records() if r["level"] == "error"]
        self.assertEqual([e["kind"] for e in errors], ["frame_too_large"])
        self.assertNotIn("length header", errors[0]["msg"])

    def test_truncated_header_and_body(self):
        for name in ("truncated_header_1_byte", "truncated_header", "truncated_body"):
            with self.subTest(name):
                worker = WorkerProcess(self)
                worker.send_raw(vector_bytes(name))
                worker.close_stdin()
                self.assertEqual(worker.wait_exit(), 3)
                kinds = [r.get("kind") for r in worker.log_records() if r["level"] == "error"]
                self.assertEqual(kinds, [name.replace("_1_byte", "")])


class ExitStatusTest(unittest.TestCase):
    def test_crash_status(self):
        worker = WorkerProcess(self, "--diagnostics")
        worker.call("crash", {"status": 7})
        self.assertEqual(worker.wait_exit(), 7)

    def test_bad_handlers_module(self):
        worker = WorkerProcess(self, "--handlers", "dspgo_no_such_module", init=False)
        self.assertEqual(worker.wait_exit(), 4)
        errors = [r for r in worker.log_records() if r["level"] == "error"]
        self.assertEqual(len(errors), 1)
        self.assertIn("dspgo_no_such_module", errors[0]["msg"])

    def test_usage_error(self):
        worker = WorkerProcess(self, "--max-concurrency", "0", init=False)
        self.assertEqual(worker.wait_exit(), 2)
        self.assertIn("--max-concurrency", worker.stderr_text())

    def test_garbage_breaks_the_stream_for_the_host(self):
        worker = WorkerProcess(self, "--diagnostics")
        worker.call("garbage", {"hex": "7b226964"})
        with self.assertRaises(StreamEnded) as caught:
            worker.next_frame()
        self.assertIn("frame_too_large", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
