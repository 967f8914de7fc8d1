"""Both directions (docs/protocol.md): the frames with a kind, streams with credit, and
calls to the host, through a real worker process."""

from __future__ import annotations

import textwrap
import time
import unittest

from dspgo_worker.errors import WorkerError
from dspgo_worker.protocol import (
    CallResult,
    Credit,
    call_cancel_message,
    call_message,
    chunk_message,
    encode_frame,
    error_response,
    parse_credit,
    parse_request,
    parse_result,
    success_response,
    with_chunks,
)

from .helpers import HandlerModuleMixin, WorkerProcess

HANDLER_MODULE = "dspgo_test_stream_handlers"
HANDLER_SOURCE = textwrap.dedent(
    '''
    """Generator handlers and tool callers loaded with --handlers by the stream tests."""
    import threading

    from dspgo_worker import Arg, WorkerError, command


    @command("words", args={"text": Arg("str", required=True)})
    def words(args, ctx):
        """A generator function: each word is a chunk; the result is the count."""
        n = 0
        for word in args["text"].split():
            yield {"word": word}
            n += 1
        return {"words": n}


    @command("unencodable_chunk")
    def unencodable_chunk(args, ctx):
        yield "fine"
        yield {1, 2}
        return "never"


    @command("big_chunk", args={"n": Arg("int", required=True)})
    def big_chunk(args, ctx):
        yield "x" * args["n"]
        return "never"


    @command("show_tools", strict=False)
    def show_tools(args, ctx):
        return {"tools": ctx.tools, "stream": ctx.stream}


    @command("fan_out", args={"n": Arg("int", required=True)})
    def fan_out(args, ctx):
        """n threads call the tool 'square' at once; the results in order."""
        results = [None] * args["n"]

        def one(i):
            results[i] = ctx.call("square", {"x": i})

        threads = [threading.Thread(target=one, args=(i,)) for i in range(args["n"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"results": results}


    @command("tool_stream", args={"n": Arg("int", required=True)})
    def tool_stream(args, ctx):
        """Streams the results of n calls to the tool 'square'."""
        total = 0
        for i in range(args["n"]):
            value = ctx.call("square", {"x": i})
            total += value
            yield value
        return {"total": total}
    '''
)


class FrameCodecTest(unittest.TestCase):
    """The new fields and kinds in the Python codec."""

    def test_stream_field(self):
        self.assertIsNone(parse_request({"id": 1, "command": "ping"}).stream)
        self.assertIsNone(parse_request({"id": 1, "command": "ping", "stream": None}).stream)
        self.assertEqual(parse_request({"id": 1, "command": "ping", "stream": 1}).stream, 1)
        self.assertEqual(parse_request({"id": 1, "command": "ping", "stream": 4096}).stream, 4096)
        for bad in (0, -1, 4097, True, "8", 1.5, [1]):
            with self.subTest(bad=bad), self.assertRaises(WorkerError) as caught:
                parse_request({"id": 1, "command": "ping", "stream": bad})
            self.assertEqual(caught.exception.code, "invalid_argument")
            self.assertIn("'stream'", caught.exception.message)

    def test_kinds_are_not_requests(self):
        for kind in ("chunk", "credit", "result", "call", "cancel", "nonsense", None):
            with self.subTest(kind=kind), self.assertRaises(WorkerError) as caught:
                parse_request({"id": 1, "command": "ping", "kind": kind})
            self.assertEqual(caught.exception.code, "unimplemented")

    def test_parse_credit(self):
        self.assertEqual(parse_credit({"id": 7, "kind": "credit", "credit": 8}), Credit(7, 8))
        self.assertEqual(parse_credit({"id": 7, "kind": "credit", "credit": 0}), Credit(7, 0))
        for bad in (None, -1, 1.5, True, "3"):
            with self.subTest(bad=bad), self.assertRaises(WorkerError) as caught:
                parse_credit({"id": 7, "kind": "credit", "credit": bad})
            self.assertEqual(caught.exception.code, "invalid_argument")
            self.assertIn("'credit'", caught.exception.message)

    def test_parse_result(self):
        self.assertEqual(
            parse_result({"id": 3, "kind": "result", "success": True, "result": {"a": 1}}), CallResult(3, True, {"a": 1}, None)
        )
        self.assertEqual(parse_result({"id": 3, "kind": "result", "success": True}), CallResult(3, True, None, None))
        failed = parse_result(
            {"id": 3, "kind": "result", "success": False, "error": {"code": "not_found", "message": "no tool", "type": "ToolNotFound", "traceback": "..."}}
        )
        self.assertEqual(failed.error, {"code": "not_found", "message": "no tool", "type": "ToolNotFound"})
        self.assertEqual(
            parse_result({"id": 3, "kind": "result", "success": False, "error": {"code": "brand_new", "message": "m"}}).error,
            {"code": "unknown", "message": "m"},
        )
        self.assertEqual(
            parse_result({"id": 3, "kind": "result", "success": False, "error": "boom"}).error, {"code": "unknown", "message": "boom"}
        )
        for message, field in (
            ({"id": 3, "kind": "result"}, "success"),
            ({"id": 3, "kind": "result", "success": "yes"}, "success"),
            ({"id": 3, "kind": "result", "success": False}, "error"),
            ({"id": 3, "kind": "result", "success": False, "error": 5}, "error"),
        ):
            with self.subTest(message=message), self.assertRaises(WorkerError) as caught:
                parse_result(message)
            self.assertIn(f"'{field}'", caught.exception.message)

    def test_worker_frames_shape(self):
        cases = [
            (chunk_message(7, 0, {"field": "a", "delta": "héllo"}), '{"id":7,"kind":"chunk","seq":0,"data":{"field":"a","delta":"héllo"}}'),
            (call_message(3, 7, "search", {"q": "x"}), '{"id":3,"kind":"call","parent":7,"tool":"search","args":{"q":"x"}}'),
            (call_cancel_message(3), '{"id":3,"kind":"cancel"}'),
            (with_chunks(success_response(7, None), 3), '{"id":7,"success":true,"result":null,"chunks":3}'),
            (with_chunks(error_response(7, "canceled", "stop"), 0), '{"id":7,"success":false,"error":{"code":"canceled","message":"stop"},"chunks":0}'),
        ]
        for message, want in cases:
            with self.subTest(want=want):
                body = want.encode("utf-8")
                self.assertEqual(encode_frame(message), len(body).to_bytes(4, "big") + body)


class StreamTest(unittest.TestCase):
    """Streams of a real worker: order, counts, credit, cancellation, memory."""

    def start(self, *flags: str) -> WorkerProcess:
        return WorkerProcess(self, "--diagnostics", *flags)

    def test_handshake_features(self):
        worker = self.start()
        self.assertEqual(worker.hello["features"], ["call", "stream"])
        self.assertEqual(list(worker.hello)[-1], "features")

    def test_chunks_in_order_then_the_final_response(self):
        worker = self.start()
        worker.auto_credit = 1
        request_id = worker.call("stream_count", {"n": 50}, stream=4)
        reply = worker.response(request_id)
        self.assertEqual(reply, {"id": request_id, "success": True, "result": {"count": 50}, "chunks": 50})
        self.assertEqual(list(reply), ["id", "success", "result", "chunks"])
        chunks = worker.chunks[request_id]
        self.assertEqual([c["seq"] for c in chunks], list(range(50)))
        self.assertEqual([c["data"] for c in chunks], list(range(50)))
        self.assertEqual(list(chunks[0]), ["id", "kind", "seq", "data"])
        self.assertEqual(worker.answered[request_id], 1)

    def test_window_large_enough_needs_no_credit(self):
        worker = self.start()
        request_id = worker.call("stream_count", {"n": 20}, stream=20)
        self.assertEqual(worker.response(request_id)["chunks"], 20)
        self.assertEqual(len(worker.chunks[request_id]), 20)
        self.assertEqual([m for m in worker.kinds_seen if m["kind"] != "chunk"], [])

    def test_generator_without_stream_is_run_to_its_end(self):
        worker = self.start()
        reply = worker.request("stream_count", {"n": 7})
        self.assertEqual(reply, {"id": reply["id"], "success": True, "result": {"count": 7}})
        self.assertEqual(worker.chunks, {})
        worker.wait_log("stream_count finished", request_id=reply["id"], produced=7, completed=True)

    def test_stream_of_no_chunks_and_of_a_plain_command(self):
        worker = self.start()
        reply = worker.request("stream_count", {"n": 0}, stream=1)
        self.assertEqual((reply["result"], reply["chunks"]), ({"count": 0}, 0))
        reply = worker.request("echo", {"value": "plain"}, stream=3)
        self.assertEqual(reply, {"id": reply["id"], "success": True, "result": "plain", "chunks": 0})
        reply = worker.request("ping", stream=1)  # inline commands too
        self.assertEqual(reply["chunks"], 0)
        self.assertEqual(worker.chunks, {})

    def test_refusals_of_a_streamed_request_carry_chunks(self):
        worker = self.start()
        for command, args in (("no_such_command", {}), ("echo", {"wrong": 1})):
            reply = worker.request(command, args, stream=2)
            self.assertFalse(reply["success"])
            self.assertEqual(reply["chunks"], 0)
        for bad in (0, 4097, True, "2"):
            with self.subTest(stream=bad):
                reply = worker.request("echo", {"value": 1}, stream=bad)
                self.assertEqual(reply["error"]["code"], "invalid_argument")
                self.assertIn("'stream'", reply["error"]["message"])
                self.assertNotIn("chunks", reply)

    def test_producer_error_ends_with_one_final_response(self):
        worker = self.start()
        worker.auto_credit = 1
        request_id = worker.call("stream_count", {"n": 10, "fail_at": 3}, stream=2)
        reply = worker.response(request_id)
        self.assertFalse(reply["success"])
        self.assertEqual((reply["error"]["code"], reply["error"]["type"]), ("internal", "RuntimeError"))
        self.assertIn("stream_count failed at 3", reply["error"]["message"])
        self.assertEqual(reply["chunks"], 3)
        self.assertEqual([c["data"] for c in worker.chunks[request_id]], [0, 1, 2])
        worker.wait_log("stream_count finished", request_id=request_id, produced=3, completed=False)
        self.assertEqual(worker.request("ping")["result"]["pong"], True)
        self.assertEqual(worker.answered[request_id], 1)

    def test_consumer_without_credit_makes_the_producer_wait_until_cancelled(self):
        worker = self.start("--log-level", "debug")
        request_id = worker.call("stream_count", {"n": 1_000_000}, stream=3)
        worker.wait_log("stream waiting for credit", request_id=request_id, seq=3)
        worker.wait_until(lambda: len(worker.chunks.get(request_id, ())) == 3, what="3 chunks")
        self.assertNotIn(request_id, worker._pending)
        # Credit for 2 more: exactly 2 more chunks, then it waits again.
        worker.grant(request_id, 2)
        worker.wait_log("stream waiting for credit", request_id=request_id, seq=5)
        worker.wait_until(lambda: len(worker.chunks[request_id]) == 5, what="5 chunks")
        self.assertEqual(worker.request("cancel", {"id": request_id})["result"]["state"], "running")
        reply = worker.response(request_id)
        self.assertEqual((reply["success"], reply["error"]["code"], reply["chunks"]), (False, "canceled", 5))
        self.assertEqual([c["seq"] for c in worker.chunks[request_id]], [0, 1, 2, 3, 4])
        # The generator was closed: its finally ran (it had made chunk 5, never sent).
        worker.wait_log("stream_count finished", request_id=request_id, produced=5, completed=False)
        worker.grant(request_id, 100)  # credit for a request not in flight: ignored
        self.assertTrue(worker.request("ping")["success"])
        self.assertEqual(len(worker.chunks[request_id]), 5)
        self.assertEqual(worker.answered[request_id], 1)

    def test_deadline_ends_the_wait_for_credit(self):
        worker = self.start()
        started = time.monotonic()
        request_id = worker.call("stream_count", {"n": 100}, stream=2, deadline_ms=300)
        reply = worker.response(request_id)
        self.assertEqual((reply["error"]["code"], reply["chunks"]), ("deadline_exceeded", 2))
        self.assertIn("stream credit", reply["error"]["message"])
        self.assertLess(time.monotonic() - started, 5)
        worker.wait_log("stream_count finished", request_id=request_id, produced=2, completed=False)

    def test_shutdown_ends_the_wait_for_credit(self):
        worker = self.start()
        request_id = worker.call("stream_count", {"n": 100}, stream=1)
        worker.wait_until(lambda: len(worker.chunks.get(request_id, ())) == 1, what="the first chunk")
        worker.call("shutdown")
        reply = worker.response(request_id)
        self.assertEqual((reply["error"]["code"], reply["chunks"]), ("canceled", 1))
        self.assertEqual(worker.wait_exit(), 0)
        self.assertIn('"stream_count finished"', worker.stderr_text())

    def test_frames_for_nothing_in_flight_are_ignored(self):
        worker = self.start("--log-level", "debug")
        worker.grant(999, 5)
        worker.send({"id": 999, "kind": "credit", "credit": "lots"})  # malformed: dropped
        worker.answer_call(999, result=1)  # no such call
        worker.send({"id": 998, "kind": "result"})  # malformed, no such call either
        reply = worker.request("ping")
        self.assertTrue(reply["success"])
        worker.wait_log("ignored a result for a call not in flight", call_id=999)
        worker.wait_log("ignored a credit for a request not streaming", request_id=999)
        self.assertEqual(worker.kinds_seen, [])
        worker.send({"id": 77, "kind": "brand_new"})
        self.assertEqual(worker.response(77)["error"]["code"], "unimplemented")

    def test_ten_thousand_chunks_one_credit_at_a_time_in_bounded_memory(self):
        worker = self.start()
        worker.auto_credit = 1

        def rss_kb() -> int:
            with open(f"/proc/{worker.proc.pid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
            raise AssertionError("no VmRSS")

        start = rss_kb()
        request_id = worker.call("stream_count", {"n": 10_000}, stream=1)
        peak = start
        for target in range(1000, 10_001, 1000):
            worker.wait_until(lambda target=target: len(worker.chunks.get(request_id, ())) >= target, what=f"{target} chunks")
            peak = max(peak, rss_kb())
        reply = worker.response(request_id)
        self.assertEqual((reply["result"], reply["chunks"]), ({"count": 10_000}, 10_000))
        peak = max(peak, rss_kb())
        self.assertLess(peak - start, 5 * 1024, f"worker RSS grew from {start} kB to {peak} kB")

    def test_32_concurrent_streams(self):
        worker = self.start("--max-concurrency", "32")
        worker.auto_credit = 1
        ids = {worker.call("stream_count", {"n": 40 + i}, stream=1 + i % 5): 40 + i for i in range(32)}
        for request_id, n in ids.items():
            reply = worker.response(request_id)
            self.assertEqual((reply["result"], reply["chunks"]), ({"count": n}, n), reply)
            chunks = worker.chunks[request_id]
            self.assertEqual([c["seq"] for c in chunks], list(range(n)))
            self.assertEqual([c["data"] for c in chunks], list(range(n)))
        self.assertEqual({i: worker.answered[i] for i in ids}, {i: 1 for i in ids})


class HandlerStreamTest(HandlerModuleMixin, unittest.TestCase):
    handler_module = HANDLER_MODULE
    handler_source = HANDLER_SOURCE

    def setUp(self):
        self.worker = self.start_with_handlers("--max-concurrency", "8", "--max-frame-bytes", "4096")
        self.worker.auto_credit = 2

    def test_generator_function_handler(self):
        request_id = self.worker.call("words", {"text": "one two  three"}, stream=1)
        reply = self.worker.response(request_id)
        self.assertEqual((reply["result"], reply["chunks"]), ({"words": 3}, 3))
        self.assertEqual([c["data"] for c in self.worker.chunks[request_id]], [{"word": "one"}, {"word": "two"}, {"word": "three"}])
        self.assertEqual(self.worker.request("words", {"text": "a b"})["result"], {"words": 2}, "without a stream")

    def test_bad_chunks_fail_the_request(self):
        request_id = self.worker.call("unencodable_chunk", {}, stream=4)
        reply = self.worker.response(request_id)
        self.assertEqual((reply["error"]["code"], reply["chunks"]), ("internal", 1))
        self.assertIn("chunk 1 cannot be encoded as JSON", reply["error"]["message"])
        request_id = self.worker.call("big_chunk", {"n": 5000}, stream=4)
        reply = self.worker.response(request_id)
        self.assertEqual((reply["error"]["code"], reply["chunks"]), ("resource_exhausted", 0))
        self.assertEqual(self.worker.chunks.get(request_id), None)

    def test_context_tools_and_stream(self):
        tools = [{"name": "search", "description": "finds", "schema": {"type": "object"}}]
        self.assertEqual(self.worker.request("show_tools", {"tools": tools}, stream=5)["result"], {"tools": tools, "stream": 5})
        self.assertEqual(self.worker.request("show_tools")["result"], {"tools": [], "stream": None})

    def test_calls_from_many_threads(self):
        request_id = self.worker.call("fan_out", {"n": 6})
        self.worker.wait_until(lambda: len(self.worker.calls) == 6, what="6 calls in flight")
        self.assertEqual(sorted(c["id"] for c in self.worker.calls), list(range(1, 7)), "call ids from 1")
        self.assertEqual({c["parent"] for c in self.worker.calls}, {request_id})
        for call in reversed(self.worker.calls):  # answered in another order than sent
            self.worker.answer_call(call["id"], result=call["args"]["x"] ** 2)
        self.assertEqual(self.worker.response(request_id)["result"], {"results": [0, 1, 4, 9, 16, 25]})

    def test_calls_inside_a_stream(self):
        self.worker.tools["square"] = lambda args: args["x"] ** 2
        request_id = self.worker.call("tool_stream", {"n": 5}, stream=1)
        reply = self.worker.response(request_id)
        self.assertEqual((reply["result"], reply["chunks"]), ({"total": 30}, 5))
        self.assertEqual([c["data"] for c in self.worker.chunks[request_id]], [0, 1, 4, 9, 16])


class CallTest(unittest.TestCase):
    """ctx.call through the call_tool diagnostics command."""

    def setUp(self):
        self.worker = WorkerProcess(self, "--diagnostics", "--max-concurrency", "8")

    def test_success(self):
        self.worker.tools["search"] = lambda args: {"hits": [args["q"], "more"]}
        reply = self.worker.request("call_tool", {"tool": "search", "args": {"q": "dspy"}})
        self.assertEqual(reply["result"], {"hits": ["dspy", "more"]})
        (call,) = self.worker.calls_seen
        self.assertEqual(call, {"id": 1, "kind": "call", "parent": reply["id"], "tool": "search", "args": {"q": "dspy"}})
        self.assertEqual(list(call), ["id", "kind", "parent", "tool", "args"])
        self.assertEqual(self.worker.request("call_tool", {"tool": "search", "args": {"q": "2"}})["result"]["hits"][0], "2")
        self.assertEqual(self.worker.calls_seen[1]["id"], 2)
        self.assertEqual(self.worker.call_cancels, [])

    def test_tool_error_keeps_code_and_type(self):
        request_id = self.worker.call("call_tool", {"tool": "lookup"})
        self.worker.wait_until(lambda: self.worker.calls, what="the call")
        call = self.worker.calls.pop()
        self.assertEqual(call["args"], {})
        self.worker.answer_call(call["id"], error={"code": "not_found", "message": "no tool 'lookup'", "type": "ToolNotFound"})
        error = self.worker.response(request_id)["error"]
        self.assertEqual((error["code"], error["message"], error["type"]), ("not_found", "no tool 'lookup'", "ToolNotFound"))
        self.worker.tools["flaky"] = self._raise(WorkerError("unavailable", "down"))
        error = self.worker.request("call_tool", {"tool": "flaky"})["error"]
        self.assertEqual((error["code"], error["message"], error["type"]), ("unavailable", "down", "ToolError"))

    @staticmethod
    def _raise(exc):
        def tool(args):
            raise exc

        return tool

    def test_unknown_code_and_malformed_result(self):
        request_id = self.worker.call("call_tool", {"tool": "t"})
        self.worker.wait_until(lambda: self.worker.calls, what="the call")
        self.worker.answer_call(self.worker.calls.pop()["id"], error={"code": "from_the_future", "message": "?"})
        self.assertEqual(self.worker.response(request_id)["error"]["code"], "unknown")
        request_id = self.worker.call("call_tool", {"tool": "t"})
        self.worker.wait_until(lambda: self.worker.calls, what="the call")
        self.worker.send({"id": self.worker.calls.pop()["id"], "kind": "result", "success": "maybe"})
        error = self.worker.response(request_id)["error"]
        self.assertEqual(error["code"], "internal")
        self.assertIn("malformed result frame", error["message"])

    def test_deadline_while_waiting_sends_cancel(self):
        started = time.monotonic()
        request_id = self.worker.call("call_tool", {"tool": "slow", "args": {"n": 1}}, deadline_ms=300)
        reply = self.worker.response(request_id)
        self.assertEqual(reply["error"]["code"], "deadline_exceeded")
        self.assertIn("'slow'", reply["error"]["message"])
        self.assertLess(time.monotonic() - started, 5)
        (call,) = self.worker.calls
        self.worker.wait_until(lambda: self.worker.call_cancels, what="the cancel frame")
        self.assertEqual(self.worker.call_cancels, [call["id"]])
        cancel = next(m for m in self.worker.kinds_seen if m["kind"] == "cancel")
        self.assertEqual(cancel, {"id": call["id"], "kind": "cancel"})
        # A late result is ignored; the worker carries on.
        self.worker.answer_call(call["id"], result="late")
        self.assertTrue(self.worker.request("ping")["success"])
        self.assertEqual(self.worker.answered[request_id], 1)

    def test_cancel_while_waiting_sends_cancel(self):
        request_id = self.worker.call("call_tool", {"tool": "slow"})
        self.worker.wait_until(lambda: self.worker.calls, what="the call")
        self.assertEqual(self.worker.request("cancel", {"id": request_id})["result"]["state"], "running")
        self.assertEqual(self.worker.response(request_id)["error"]["code"], "canceled")
        self.worker.wait_until(lambda: self.worker.call_cancels, what="the cancel frame")
        self.assertEqual(self.worker.call_cancels, [self.worker.calls[0]["id"]])

    def test_timeout_of_one_call(self):
        reply = self.worker.request("call_tool", {"tool": "slow", "timeout": 0.2})
        self.assertEqual(reply["error"]["code"], "deadline_exceeded")
        self.assertIn("did not answer within 0.2 s", reply["error"]["message"])
        self.worker.wait_until(lambda: self.worker.call_cancels, what="the cancel frame")

    def test_concurrent_calls_answered_out_of_order(self):
        ids = [self.worker.call("call_tool", {"tool": "echo", "args": {"i": i}}) for i in range(8)]
        self.worker.wait_until(lambda: len(self.worker.calls) == 8, what="8 calls in flight")
        self.assertEqual(len({c["id"] for c in self.worker.calls}), 8, "call ids are unique")
        for call in sorted(self.worker.calls, key=lambda c: -c["args"]["i"]):
            self.worker.answer_call(call["id"], result={"parent": call["parent"], "i": call["args"]["i"]})
        for i, request_id in enumerate(ids):
            self.assertEqual(self.worker.response(request_id)["result"], {"parent": request_id, "i": i})

    def test_bad_call_arguments(self):
        error = self.worker.request("call_tool", {"tool": "t", "timeout": -1})["error"]
        self.assertEqual(error["code"], "invalid_argument")
        self.assertEqual(self.worker.calls_seen, [])


class CallInProcessTest(unittest.TestCase):
    def test_call_without_a_worker(self):
        from dspgo_worker.context import Context

        with self.assertRaises(WorkerError) as caught:
            Context(1, "x").call("t", {})
        self.assertEqual(caught.exception.code, "failed_precondition")

    def test_shutdown_ends_a_call(self):
        from .helpers import InProcessWorker

        worker = InProcessWorker(self, diagnostics=True, stop_grace=2.0)
        request_id = worker.call("call_tool", {"tool": "slow"})
        worker.wait_until(lambda: worker.calls, what="the call")
        worker.call("shutdown")
        reply = worker.response(request_id)
        self.assertEqual(reply["error"]["code"], "canceled")
        worker.wait_until(lambda: worker.call_cancels, what="the cancel frame")


if __name__ == "__main__":
    unittest.main()
