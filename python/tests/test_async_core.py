"""The worker's event loop: coroutine handlers, their cancellation, deadlines, streams,
calls to the host and blocking work handed to threads; the frame parser; an input the
loop cannot watch."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import unittest

from dspgo_worker.protocol import FrameError, FrameParser, FrameWriter, decode_message, encode_frame, read_frame
from dspgo_worker.registry import Arg, Registry
from dspgo_worker.worker import Worker, WorkerConfig

from .helpers import WAIT, InProcessWorker


def coroutine_commands() -> Registry:
    """A private registry of coroutine commands (and the built-in control ones)."""
    from dspgo_worker.registry import default_registry

    registry = Registry()
    for name in ("ping", "cancel", "shutdown"):
        registry.register(default_registry.table()[name])
    return registry


class CoroutineHandlerTest(unittest.TestCase):
    def setUp(self):
        self.registry = coroutine_commands()
        self.cleanups: list[str] = []
        self.started = threading.Event()
        self.arrived = 0
        self.everyone_in: asyncio.Future | None = None
        command = self.registry.command

        @command("add", args={"a": Arg("int", required=True), "b": Arg("int", default=0)})
        async def add(args, ctx):
            await ctx.sleep_async(0.001)
            return args["a"] + args["b"]

        @command("quick", args={})
        async def quick(args, ctx):
            return "done"

        @command("forever", args={})
        async def forever(args, ctx):
            self.started.set()
            try:
                await asyncio.get_running_loop().create_future()
            finally:
                self.cleanups.append(f"forever {ctx.id}")

        @command("stubborn", args={})
        async def stubborn(args, ctx):
            try:
                await asyncio.get_running_loop().create_future()
            except asyncio.CancelledError:
                return "partial"

        @command("barrier", args={"n": Arg("int", required=True)})
        async def barrier(args, ctx):
            """Waits until n requests are in, all suspended at once, then answers."""
            loop = asyncio.get_running_loop()
            if self.everyone_in is None:
                self.everyone_in = loop.create_future()
            self.arrived += 1
            if self.arrived == args["n"]:
                self.everyone_in.set_result(threading.active_count())
            return await asyncio.shield(self.everyone_in)

        @command("count", args={"n": Arg("int", required=True)})
        async def count(args, ctx):
            for i in range(args["n"]):
                await ctx.send_chunk(i)
            return {"counted": args["n"]}

        @command("tool", args={"name": Arg("str", required=True), "timeout": Arg("float")})
        async def tool(args, ctx):
            return await ctx.call_async(args["name"], {"x": 1}, args["timeout"])

        @command("blocking", args={"wait": Arg("bool", default=False)})
        async def blocking(args, ctx):
            def work():
                if args["wait"]:
                    self.started.set()
                    ctx.cancelled.wait(WAIT)
                    ctx.check()
                return threading.current_thread().name

            name = await ctx.run_sync(work)
            return {"thread": name, "loop_thread": threading.current_thread().name}

        @command("blocking_stream", args={})
        async def blocking_stream(args, ctx):
            def work():
                yield "a"
                yield "b"
                return "done"

            return await ctx.run_sync(work)

    def worker(self, **config) -> InProcessWorker:
        return InProcessWorker(self, registry=self.registry, **config)

    def test_answers(self):
        w = self.worker()
        self.assertEqual(w.ok("add", {"a": 40, "b": 2}), 42)

    def test_thousands_in_flight_on_no_thread_of_their_own(self):
        n = 2000
        w = self.worker(max_concurrency=n)
        before = threading.active_count()
        ids = [w.call("barrier", {"n": n}) for _ in range(n)]
        threads = {w.response(request_id)["result"] for request_id in ids}
        self.assertEqual(len(threads), 1)
        self.assertLessEqual(threads.pop(), before, f"{n} requests suspended at once started threads")

    def test_cancel_cancels_the_task(self):
        w = self.worker()
        request_id = w.call("forever")
        self.assertTrue(self.started.wait(WAIT))
        self.assertEqual(w.ok("cancel", {"id": request_id})["state"], "running")
        error = w.response(request_id)["error"]
        self.assertEqual((error["code"], error["message"]), ("canceled", "request canceled by the host"))
        self.assertEqual(self.cleanups, [f"forever {request_id}"])

    def test_cancel_before_the_first_step_is_answered_once(self):
        from dspgo_worker.protocol import write_all

        w = self.worker()
        # One write: the cancel is handled before the request's task takes its first step.
        write_all(w._to_worker_w, encode_frame({"id": 900, "command": "forever"})
                  + encode_frame({"id": 901, "command": "cancel", "args": {"id": 900}}))
        self.assertEqual(w.response(901)["result"]["state"], "running")
        self.assertEqual(w.response(900)["error"]["code"], "canceled")
        self.assertEqual(self.cleanups, ["forever 900"], "the handler ran to its first await, then was cancelled")
        self.assertTrue(w.ok("ping")["pong"])
        self.assertNotIn(900, w._pending, "answered once")

    def test_deadline_cancels_the_task(self):
        w = self.worker()
        error = w.request("forever", deadline_ms=30)["error"]
        self.assertEqual(error["code"], "deadline_exceeded")
        self.assertIn("ran past its deadline", error["message"])
        self.assertEqual(len(self.cleanups), 1)

    def test_a_handler_that_never_awaits_arms_no_deadline(self):
        # Its one step runs to its end uninterrupted: a deadline could not act on it.
        w = self.worker()
        self.assertEqual(w.request("quick", deadline_ms=60000)["result"], "done")
        self.assertEqual(len(w.worker._deadlines), 0)
        self.assertEqual(w.worker._loop._scheduled, [], "no loop timer was armed")
        self.assertEqual(w.request("add", {"a": 1}, deadline_ms=60000)["result"], 1)
        self.assertEqual(len(w.worker._loop._scheduled), 1, "one that awaits has its deadline (the timer stays armed)")

    def test_what_a_cancelled_handler_returns_is_sent(self):
        w = self.worker()
        self.assertEqual(w.request("stubborn", deadline_ms=20)["result"], "partial")

    def test_queue_order_and_queue_deadline(self):
        w = self.worker(max_concurrency=1)
        first = w.call("forever")
        expired = w.call("add", {"a": 1}, deadline_ms=20)
        later = w.call("add", {"a": 2})
        error = w.response(expired)["error"]
        self.assertEqual(error["code"], "deadline_exceeded")
        self.assertIn("while queued", error["message"])
        self.assertEqual(w.ok("cancel", {"id": later})["state"], "queued")
        self.assertEqual(w.response(later)["error"]["code"], "canceled")
        w.ok("cancel", {"id": first})
        self.assertEqual(w.response(first)["error"]["code"], "canceled")
        self.assertEqual(w.ok("add", {"a": 3}), 3, "the slot was given back")

    def test_stream_waits_for_credit(self):
        w = self.worker()
        request_id = w.call("count", {"n": 5}, stream=2)
        w.wait_until(lambda: len(w.chunks.get(request_id, [])) == 2, what="the first two chunks")
        self.assertNotIn(request_id, w._pending, "no chunk nor answer past the credit")
        w.grant(request_id, 3)
        reply = w.response(request_id)
        self.assertEqual(reply["result"], {"counted": 5})
        self.assertEqual(reply["chunks"], 5)
        self.assertEqual([c["data"] for c in w.chunks[request_id]], [0, 1, 2, 3, 4])
        self.assertEqual([c["seq"] for c in w.chunks[request_id]], [0, 1, 2, 3, 4])

    def test_stream_cancelled_while_waiting_for_credit(self):
        w = self.worker()
        request_id = w.call("count", {"n": 5}, stream=1)
        w.wait_until(lambda: len(w.chunks.get(request_id, [])) == 1, what="the first chunk")
        w.ok("cancel", {"id": request_id})
        reply = w.response(request_id)
        self.assertEqual((reply["error"]["code"], reply["chunks"]), ("canceled", 1))

    def test_call_to_the_host(self):
        w = self.worker()
        w.tools["double"] = lambda args: args["x"] * 2
        self.assertEqual(w.ok("tool", {"name": "double"}), 2)

    def test_call_that_times_out_is_cancelled_on_the_host(self):
        w = self.worker()
        error = w.request("tool", {"name": "silent", "timeout": 0.02})["error"]
        self.assertEqual(error["code"], "deadline_exceeded")
        self.assertIn("did not answer within", error["message"])
        self.assertEqual(w.call_cancels, [w.calls_seen[0]["id"]])

    def test_request_cancelled_during_a_call(self):
        w = self.worker()
        request_id = w.call("tool", {"name": "silent"})
        w.wait_until(lambda: w.calls, what="the call frame")
        w.ok("cancel", {"id": request_id})
        self.assertEqual(w.response(request_id)["error"]["code"], "canceled")
        w.wait_until(lambda: w.call_cancels, what="the call's cancel frame")
        self.assertEqual(w.call_cancels, [w.calls[0]["id"]])
        w.answer_call(w.calls[0]["id"], result="late")  # ignored
        self.assertEqual(w.ok("add", {"a": 1}), 1)

    def test_blocking_work_runs_on_a_thread(self):
        w = self.worker()
        result = w.ok("blocking")
        self.assertTrue(result["thread"].startswith("dspgo-worker-"), result)
        self.assertNotEqual(result["thread"], result["loop_thread"])

    def test_blocking_work_learns_of_the_cancellation(self):
        w = self.worker()
        request_id = w.call("blocking", {"wait": True})
        self.assertTrue(self.started.wait(WAIT))
        w.ok("cancel", {"id": request_id})
        self.assertEqual(w.response(request_id)["error"]["code"], "canceled")

    def test_blocking_generator_streams(self):
        w = self.worker()
        reply = w.request("blocking_stream", stream=8)
        self.assertEqual((reply["result"], reply["chunks"]), ("done", 2))
        self.assertEqual([c["data"] for c in w.chunks[reply["id"]]], ["a", "b"])


class ShutdownTest(unittest.TestCase):
    def test_handler_that_ignores_cancellation_is_answered_after_the_grace(self):
        registry = coroutine_commands()
        started = threading.Event()

        @registry.command("deaf", args={})
        async def deaf(args, ctx):
            started.set()
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    continue

        w = InProcessWorker(self, registry=registry, stop_grace=0.05)
        request_id = w.call("deaf")
        self.assertTrue(started.wait(WAIT))
        w.send({"id": 99, "command": "shutdown"})
        error = w.response(request_id)["error"]
        self.assertEqual(error["code"], "canceled")
        self.assertIn("did not stop in time", error["message"])
        w.close()
        self.assertEqual(w.status, [0])


class RegistrationTest(unittest.TestCase):
    def test_inline_coroutine_refused(self):
        async def handler(args, ctx):
            return None

        with self.assertRaisesRegex(TypeError, "inline command must be a plain function"):
            Registry().command("x", inline=True)(handler)

    def test_async_generator_refused(self):
        async def handler(args, ctx):
            yield 1

        with self.assertRaisesRegex(TypeError, "ctx.send_chunk"):
            Registry().command("x")(handler)


class FrameParserTest(unittest.TestCase):
    def test_frames_cut_anywhere(self):
        frames = b"".join(encode_frame({"id": i, "command": "ping"}) for i in range(3))
        for cut in range(len(frames) + 1):
            parser = FrameParser()
            bodies = parser.feed(frames[:cut]) + parser.feed(frames[cut:])
            self.assertEqual([decode_message(b)["id"] for b in bodies], [0, 1, 2], cut)
            parser.end()

    def test_oversized_header_after_whole_frames(self):
        parser = FrameParser(max_bytes=64)
        data = encode_frame({"id": 1}) + (1000).to_bytes(4, "big") + b"x"
        self.assertEqual([decode_message(b)["id"] for b in parser.feed(data)], [1])
        with self.assertRaises(FrameError) as caught:
            parser.feed(b"")
        self.assertEqual(caught.exception.kind, "frame_too_large")

    def test_end_inside_a_frame(self):
        for data, kind in ((b"\x00\x00", "truncated_header"), (b"\x00\x00\x00\x05ab", "truncated_body")):
            parser = FrameParser()
            self.assertEqual(parser.feed(data), [])
            with self.assertRaises(FrameError) as caught:
                parser.end()
            self.assertEqual(caught.exception.kind, kind)


class FileInputTest(unittest.TestCase):
    def test_input_the_loop_cannot_watch(self):
        """A regular file (epoll refuses it) is read by a helper thread."""
        registry = coroutine_commands()
        registry.command("double", args={"n": Arg("int", required=True)})(lambda args, ctx: args["n"] * 2)
        with tempfile.TemporaryFile() as requests:
            requests.write(encode_frame({"id": 1, "command": "double", "args": {"n": 21}}))
            requests.write(encode_frame({"id": 2, "command": "ping"}))
            requests.seek(0)
            out_r, out_w = os.pipe()
            with open(out_r, "rb") as responses:
                worker = Worker(WorkerConfig(worker_id="file"), requests, FrameWriter(out_w), registry)
                self.assertEqual(worker.serve(), 0)
                os.close(out_w)
                replies = {}
                while (body := read_frame(responses)) is not None:
                    message = decode_message(body)
                    replies[message["id"]] = message
        self.assertTrue(replies[2]["success"])
        self.assertEqual(replies[1], {"id": 1, "success": True, "result": 42}, "a running request answers before the end")


if __name__ == "__main__":
    unittest.main()
