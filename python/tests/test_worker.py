"""Requests and responses of a real worker process: built-ins, validation, errors, stdio discipline."""

import json
import os
import textwrap
import threading
import unittest

from dspgo_worker.protocol import encode_frame

from .helpers import HandlerModuleMixin, StreamEnded, WorkerProcess, load_vectors, parse_records, vector_bytes

HANDLER_MODULE = "dspgo_test_handlers"
HANDLER_SOURCE = textwrap.dedent(
    '''
    """Handlers loaded with --handlers by the tests."""
    import logging
    import sys

    from dspgo_worker import Arg, WorkerError, command

    log = logging.getLogger("dspgo_test_handlers")


    @command("divide", args={"a": Arg("float", required=True), "b": Arg("float", required=True)})
    def divide(args, ctx):
        log.info("dividing", extra={"a": args["a"], "b": args["b"]})
        return {"quotient": args["a"] / args["b"]}


    @command("lookup", args={"key": Arg("str", required=True)})
    def lookup(args, ctx):
        raise WorkerError("not_found", "no key %r" % args["key"])


    @command("unencodable")
    def unencodable(args, ctx):
        return {"value": {1, 2}}


    @command("big", args={"n": Arg("int", required=True)})
    def big(args, ctx):
        return "x" * args["n"]


    @command("read_stdin")
    def read_stdin(args, ctx):
        return {"read": sys.stdin.read()}


    @command("context", strict=False)
    def context(args, ctx):
        return {"id": ctx.id, "command": ctx.command, "session": ctx.session, "remaining": ctx.remaining()}


    @command("exit")
    def exit_(args, ctx):
        sys.exit(3)
    '''
)


class BuiltinTest(unittest.TestCase):
    def setUp(self):
        self.worker = WorkerProcess(self, "--diagnostics", "--worker-id", "w-test", "--max-concurrency", "3")

    def test_init_ping(self):
        hello = self.worker.hello
        self.assertEqual(hello["protocol_version"], 1)
        self.assertEqual(hello["worker_version"], "0.1.0")
        self.assertEqual(hello["pid"], self.worker.proc.pid)
        self.assertRegex(hello["python_version"], r"^\d+\.\d+\.\d+")
        self.assertEqual(hello["worker_id"], "w-test")
        self.assertEqual(hello["commands"], sorted(hello["commands"]))
        for name in ("ping", "describe", "cancel", "shutdown", "echo", "hang"):
            self.assertIn(name, hello["commands"])
        self.assertEqual(hello["max_concurrency"], 3)
        self.assertEqual(hello["max_frame_bytes"], 16777216)
        self.assertIs(hello["diagnostics"], True)

    def test_plain_ping(self):
        reply = self.worker.request("ping")
        self.assertEqual(reply["result"], {"pong": True, "worker_id": "w-test", "pid": self.worker.proc.pid})
        self.assertEqual(list(reply), ["id", "success", "result"])

    def test_describe(self):
        result = self.worker.request("describe")["result"]
        self.assertEqual(result["protocol_version"], 1)
        commands = {entry["name"]: entry for entry in result["commands"]}
        self.assertEqual(sorted(commands), self.worker.hello["commands"])
        self.assertEqual(
            commands["cancel"],
            {
                "name": "cancel",
                "description": commands["cancel"]["description"],
                "inline": True,
                "diagnostics": False,
                "args": {"id": {"type": "int", "required": True, "description": "id of the request to cancel"}},
            },
        )
        self.assertTrue(commands["sleep"]["diagnostics"])
        self.assertFalse(commands["sleep"]["inline"])

    def test_diagnostics_off_by_default(self):
        worker = WorkerProcess(self)
        self.assertFalse(worker.hello["diagnostics"])
        self.assertNotIn("echo", worker.hello["commands"])
        self.assertEqual(worker.request("echo", {"value": 1})["error"]["code"], "unimplemented")

    def test_echo_unicode_vector(self):
        vector = next(v for v in load_vectors()["vectors"] if v["name"] == "request_unicode")
        self.worker.send_raw(bytes.fromhex(vector["frame_hex"]))
        reply = self.worker.response(vector["message"]["id"])
        self.assertEqual(reply, {"id": 7, "success": True, "result": vector["message"]["args"]["value"]})

    def test_unknown_command(self):
        reply = self.worker.request("no_such_command")
        self.assertFalse(reply["success"])
        self.assertEqual(reply["error"]["code"], "unimplemented")
        self.assertIn("no_such_command", reply["error"]["message"])
        self.assertIn("ping", reply["error"]["message"])

    def test_malformed_requests_answer_invalid_argument(self):
        cases = [
            ({"id": 101}, "command"),
            ({"id": 102, "command": 7}, "command"),
            ({"id": 103, "command": "ping", "args": [1, 2]}, "args"),
            ({"id": 104, "command": "ping", "args": "x"}, "args"),
            ({"id": 105, "command": "ping", "session": 1}, "session"),
            ({"id": 106, "command": "ping", "deadline_ms": "soon"}, "deadline_ms"),
        ]
        for message, _ in cases:
            self.worker.send(message)
        for message, field in cases:
            with self.subTest(message):
                reply = self.worker.response(message["id"])
                self.assertFalse(reply["success"])
                self.assertEqual(reply["error"]["code"], "invalid_argument")
                self.assertIn(field, reply["error"]["message"])

    def test_reserved_kind(self):
        self.worker.send({"id": 55, "kind": "chunk", "command": "ping"})
        self.assertEqual(self.worker.response(55)["error"]["code"], "unimplemented")

    def test_optional_fields_and_unknown_fields(self):
        self.worker.send({"id": 60, "command": "ping", "session": "s-1", "deadline_ms": 5000, "extra": [1]})
        self.assertTrue(self.worker.response(60)["success"])
        self.worker.send_raw(vector_bytes("request_no_args"))
        self.assertTrue(self.worker.response(4)["success"])

    def test_arg_validation(self):
        cases = [
            ("echo", {}, "'value'"),
            ("echo", {"value": 1, "extra": 2}, "'extra'"),
            ("sleep", {"seconds": "1"}, "'seconds'"),
            ("sleep", {"seconds": -1}, "'seconds'"),
            ("crash", {"status": True}, "'status'"),
            ("cancel", {"id": "1"}, "'id'"),
            ("ping", {"initialization": "yes"}, "'initialization'"),
        ]
        for command, args, name in cases:
            with self.subTest(command=command, args=args):
                reply = self.worker.request(command, args)
                self.assertFalse(reply["success"], reply)
                self.assertEqual(reply["error"]["code"], "invalid_argument")
                self.assertIn(name, reply["error"]["message"])
        self.assertEqual(self.worker.proc.poll(), None, "crash with a bad status must not run")

    def test_unanswerable_frames_are_skipped(self):
        """Frames without a readable id get no answer; the stream carries on. (The shared
        ``invalid_utf8`` vector's id can be read, so it is answered: see test_hardening.)"""
        doc = load_vectors()
        kinds = {"invalid_json", "not_object", "missing_id", "invalid_id"}
        bad = [v for v in doc["vectors"] if v.get("error") in kinds]
        self.assertTrue(bad)
        for vector in bad:
            with self.subTest(vector["name"]):
                self.worker.send_raw(bytes.fromhex(vector["frame_hex"]))
                request_id = self.worker.call("ping")
                reply = self.worker.recv()  # the very next frame must be the ping's answer
                self.assertEqual(reply["id"], request_id)
                self.assertTrue(reply["success"])
        self.worker.wait_stderr(lambda text: kinds <= {r.get("kind") for r in parse_records(text)})
        warned = {r.get("kind") for r in self.worker.log_records() if r["level"] == "warning"}
        self.assertEqual(warned, kinds)

    def test_print_stdout_goes_to_stderr(self):
        reply = self.worker.request("print_stdout", {"text": "stray output 123"})
        self.assertEqual(reply, {"id": reply["id"], "success": True, "result": {"printed": 16}})
        self.assertTrue(self.worker.request("ping")["success"])
        self.worker.wait_stderr(lambda text: text.count("stray output 123") == 2)

    def test_garbage_reaches_protocol_output(self):
        request_id = self.worker.call("garbage", {"hex": encode_frame({"raw": "bytes"}).hex()})
        self.assertEqual(json.loads(self.worker.next_frame()), {"raw": "bytes"})
        self.assertEqual(self.worker.response(request_id), {"id": request_id, "success": True, "result": None})

    def test_stderr_flood(self):
        reply = self.worker.request("stderr_flood", {"lines": 2000, "line_bytes": 200})
        self.assertEqual(reply["result"], {"written": 400000})
        self.worker.wait_stderr(lambda text: text.count("x" * 199 + "\n") >= 2000)
        self.assertTrue(self.worker.request("ping")["success"])

    def test_spawn_child(self):
        pid = self.worker.request("spawn_child", {"seconds": 30})["result"]["pid"]

        def kill_child():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

        self.addCleanup(kill_child)
        os.kill(pid, 0)  # raises if it does not exist
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
        self.assertNotEqual(stat.rsplit(")", 1)[1].split()[0], "Z")
        self.assertEqual(int(stat.rsplit(")", 1)[1].split()[1]), self.worker.proc.pid, "parent is the worker")

    def test_logs_are_json_lines(self):
        record = self.worker.wait_log("worker started")
        self.assertEqual(len([r for r in self.worker.log_records() if r["msg"] == "worker started"]), 1)
        self.assertEqual(list(record)[:4], ["time", "level", "msg", "worker_id"])
        self.assertEqual(record["worker_id"], "w-test")
        self.assertRegex(record["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class HandlerModuleTest(HandlerModuleMixin, unittest.TestCase):
    handler_module = HANDLER_MODULE
    handler_source = HANDLER_SOURCE

    def setUp(self):
        self.worker = self.start_with_handlers("--max-frame-bytes", "2048")

    def test_handlers_registered(self):
        for name in ("divide", "lookup", "big"):
            self.assertIn(name, self.worker.hello["commands"])
        self.assertEqual(self.worker.request("divide", {"a": 6, "b": 3})["result"], {"quotient": 2.0})

    def test_exception_is_internal_with_traceback(self):
        reply = self.worker.request("divide", {"a": 1, "b": 0})
        self.assertFalse(reply["success"])
        error = reply["error"]
        self.assertEqual(list(error), ["code", "message", "type", "traceback"])
        self.assertEqual(error["code"], "internal")
        self.assertEqual(error["type"], "ZeroDivisionError")
        self.assertIn("division by zero", error["message"])
        self.assertIn("Traceback", error["traceback"])
        self.assertIn("in divide", error["traceback"])

    def test_worker_error_code_passes_through(self):
        error = self.worker.request("lookup", {"key": "k"})["error"]
        self.assertEqual((error["code"], error["message"], error["type"]), ("not_found", "no key 'k'", "WorkerError"))

    def test_sys_exit_in_handler_is_internal(self):
        error = self.worker.request("exit")["error"]
        self.assertEqual((error["code"], error["type"]), ("internal", "SystemExit"))
        self.assertTrue(self.worker.request("ping")["success"])

    def test_unencodable_result(self):
        reply = self.worker.request("unencodable")
        self.assertFalse(reply["success"])
        self.assertEqual(reply["error"]["code"], "internal")
        self.assertIn("JSON", reply["error"]["message"])

    def test_oversized_response(self):
        reply = self.worker.request("big", {"n": 4000})
        self.assertFalse(reply["success"])
        self.assertEqual(reply["error"]["code"], "resource_exhausted")
        self.assertIn("2048", reply["error"]["message"])
        self.assertEqual(len(self.worker.request("big", {"n": 1000})["result"]), 1000)

    def test_stdin_is_devnull(self):
        self.assertEqual(self.worker.request("read_stdin")["result"]["read"], "")
        self.assertTrue(self.worker.request("ping")["success"])

    def test_context_fields(self):
        result = self.worker.request("context", session="s-9", deadline_ms=60000)["result"]
        self.assertEqual((result["command"], result["session"]), ("context", "s-9"))
        self.assertTrue(0 < result["remaining"] <= 60.0)
        self.assertIsNone(self.worker.request("context")["result"]["remaining"])

    def test_user_logging_is_json(self):
        self.worker.request("divide", {"a": 6, "b": 3})
        self.worker.wait_stderr('"dividing"')
        record = next(r for r in self.worker.log_records() if r["msg"] == "dividing")
        self.assertEqual((record["logger"], record["a"], record["level"]), ("dspgo_test_handlers", 6.0, "info"))


class ExactlyOnceTest(unittest.TestCase):
    def test_every_id_answered_once(self):
        """~200 mixed requests from several threads: each id gets exactly one response."""
        worker = WorkerProcess(self, "--diagnostics", "--max-concurrency", "4")
        kinds = [
            ("echo", {"value": "v"}),
            ("echo", {"wrong": 1}),
            ("nope", {}),
            ("sleep", {"seconds": 0.005}),
            ("ping", {}),
            ("describe", {}),
            ("cancel", {"id": 0}),
        ]
        ids = list(range(1000, 1210))
        messages = []
        for n, request_id in enumerate(ids):
            command, args = kinds[n % len(kinds)]
            if command == "cancel":
                args = {"id": request_id - 3}  # cancel a recent sleep, whatever its state
            message = {"id": request_id, "command": command, "args": args}
            if n % 11 == 0:
                message = {"id": request_id, "args": args}  # command missing
            messages.append(message)

        def send_share(share):
            for message in share:
                worker.send(message)

        senders = [threading.Thread(target=send_share, args=(messages[i::4],)) for i in range(4)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        for _ in ids:
            worker.recv()
        final = worker.request("ping")  # sent after all others, so any duplicate would show up by now...
        self.assertTrue(final["success"])
        shutdown_id = worker.call("shutdown")
        worker.response(shutdown_id)
        self.assertEqual(worker.wait_exit(), 0)
        with self.assertRaises(StreamEnded):  # ...or at the latest before the stream ends
            worker.recv(timeout=5)
        self.assertEqual({i: worker.answered.get(i) for i in ids}, {i: 1 for i in ids})


if __name__ == "__main__":
    unittest.main()
