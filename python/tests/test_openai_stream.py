"""Streams from an OpenAI-compatible server (server-sent events), the reply's sections
turned into deltas as they arrive, and the react loop with the openai provider."""

from __future__ import annotations

import asyncio
import json
import unittest
from unittest import mock

from dspgo_worker import http_async
from dspgo_worker.chat_format import parse_reply
from dspgo_worker.chunks import ReplyStreamer
from dspgo_worker.context import Context
from dspgo_worker.errors import WorkerError
from dspgo_worker.spec import CompiledSpec

from .helpers import WAIT, InProcessWorker, WorkerProcess
from .test_openai import KEY_ENV, LMTestCase, ProviderHelpers, chat, sections
from .test_spec import spec_of

TYPED = spec_of([("q", "")], [("a", ""), ("n", "int"), ("l", "list[list[int]]")])


def step(thought: str, tool: str, args: str) -> str:
    """A ChatAdapter reply to a ReAct step."""
    return sections(next_thought=thought, next_tool_name=tool, next_tool_args=args)


def pieces_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def feed_all(compiled: CompiledSpec, pieces: list[str]) -> tuple[list[tuple[str, str]], dict]:
    streamer = ReplyStreamer(compiled)
    deltas = []
    for piece in pieces:
        deltas += streamer.feed(piece)
    outputs = parse_reply(compiled, "".join(pieces))
    deltas += streamer.finish(outputs)
    return deltas, outputs


def joined(deltas) -> dict:
    out: dict[str, str] = {}
    for name, delta in deltas:
        out[name] = out.get(name, "") + delta
    return out


class ReplyStreamerTest(unittest.TestCase):
    def test_any_cut_gives_the_sections_in_order(self):
        compiled = CompiledSpec(TYPED)
        reply = "Sure.\n[[ ## a ## ]]\n  An answer,\nin two lines.  \n\n[[ ## n ## ]]\n42\n\n[[ ## l ## ]]\n[[1, 2], [3]]\n\n[[ ## completed ## ]]\nignored [[ ## a ## ]] x"
        for size in (1, 2, 3, 5, 8, 13, len(reply)):
            with self.subTest(size=size):
                deltas, outputs = feed_all(compiled, pieces_of(reply, size))
                self.assertEqual(outputs, {"a": "An answer,\nin two lines.", "n": 42, "l": [[1, 2], [3]]})
                self.assertEqual(joined(deltas), {"a": "An answer,\nin two lines.", "n": "42", "l": "[[1, 2], [3]]"})
                self.assertEqual(list(dict.fromkeys(name for name, _ in deltas)), ["a", "n", "l"])
                names = [name for name, _ in deltas]
                self.assertEqual(names, sorted(names, key=["a", "n", "l"].index), "one field after the other")

    def test_text_is_handed_on_before_the_section_ends(self):
        streamer = ReplyStreamer(CompiledSpec(TYPED))
        self.assertEqual(streamer.feed("[[ ## a ## ]]\nHello"), [("a", "Hello")])
        self.assertEqual(streamer.feed(" wor"), [("a", " wor")])
        self.assertEqual(streamer.feed("ld \n\n[[ ## "), [("a", "ld")], "trailing space and a header start are held")
        self.assertEqual(streamer.feed("n ## ]]\n7\n"), [("n", "7")])
        self.assertEqual(streamer.feed("[[ ## l ## ]]\n[["), [])
        self.assertEqual(streamer.feed("1]]"), [("l", "[[1]]")])
        self.assertEqual(streamer.finish({"a": "x", "n": 7, "l": [[1]]}), [])

    def test_sections_out_of_order_and_missing(self):
        compiled = CompiledSpec(spec_of([("q", "")], [("a", ""), ("b", ""), ("c", "int")], kind="chain_of_thought"))
        reply = sections(b="bee", c="3", reasoning="think", a="ay", b_again="x").replace("b_again", "b")
        deltas, outputs = feed_all(compiled, pieces_of(reply, 4))
        self.assertEqual([name for name, _ in deltas][:1], ["reasoning"])
        self.assertEqual(list(dict.fromkeys(name for name, _ in deltas)), ["reasoning", "a", "b", "c"])
        self.assertEqual(joined(deltas), {"reasoning": "think", "a": "ay", "b": "bee", "c": "3"})
        # A JSON reply has no sections: the parsed values, one delta each.
        deltas, outputs = feed_all(compiled, pieces_of('{"reasoning": "r s", "a": "x", "b": "", "c": 2}', 3))
        self.assertEqual(deltas, [("reasoning", "r s"), ("a", "x"), ("b", ""), ("c", "2")])

    def test_empty_section_is_one_empty_delta(self):
        compiled = CompiledSpec(spec_of([("q", "")], [("a", ""), ("b", "")]))
        deltas, _ = feed_all(compiled, ["[[ ## a ## ]]\n\n[[ ## b ## ]]\nB\n[[ ## completed ## ]]"])
        self.assertEqual(deltas, [("a", ""), ("b", "B")])


class ProviderStreamTest(ProviderHelpers, LMTestCase):
    def stream(self, provider=None, ctx=None) -> tuple[list[str], str]:
        """The pieces of a streamed completion, and the text they make."""

        async def pieces():
            gen = (provider or self.provider()).stream([{"role": "user", "content": "hi"}], ctx or Context(1, "execute_program"))
            return [piece async for piece in gen]

        pieces = self.arun(pieces())
        return pieces, "".join(pieces)

    def test_events_become_pieces(self):
        self.lm.push(body=["Hel", "lo", "", " world"], mode="sse")
        pieces, text = self.stream()
        self.assertEqual(("".join(pieces), text), ("Hello world", "Hello world"))
        self.assertEqual([p for p in pieces if p], ["Hel", "lo", " world"])
        request = self.lm.requests[0]
        self.assertIs(request["body"]["stream"], True)
        self.assertEqual(request["headers"]["Accept"], "text/event-stream")

    def test_other_event_lines_and_multiline_data(self):
        events = [
            b": keep-alive\n\n",
            b"event: message\nid: 1\ndata: " + json.dumps({"choices": [{"delta": {"role": "assistant"}}]}).encode() + b"\n\n",
            b'data: {"choices": [{"delta":\ndata: {"content": "joined"}}]}\n\n',
            "uni\u00e9",
        ]
        self.lm.push(body=events, mode="sse")
        self.assertEqual(self.stream()[1], "joineduni\u00e9")

    def test_connection_is_kept_after_a_complete_stream(self):
        self.lm.push(body=["one"], mode="sse")
        self.lm.push(body=["two"], mode="sse")
        self.lm.push(body=chat("three"))
        provider = self.provider()
        self.assertEqual(self.stream(provider)[1], "one")
        self.assertEqual(self.stream(provider)[1], "two")
        self.assertEqual(self.complete(provider), "three")
        self.assertEqual(len(self.lm.connections), 1)

    def test_server_without_streaming(self):
        self.lm.push(body=chat("whole"))
        self.assertEqual(self.stream(), (["whole"], "whole"))

    def test_errors(self):
        self.lm.push(429, {"error": {"message": "slow down"}})
        self.lm.push(body=["after a retry"], mode="sse")
        self.assertEqual(self.stream()[1], "after a retry")
        self.lm.push(404, {"error": {"message": "no such model"}})
        with self.assertRaises(WorkerError) as caught:
            self.stream()
        self.assertEqual(caught.exception.code, "not_found")
        self.lm.push(body=[b"data: {not json\n\n"], mode="sse")
        with self.assertRaises(WorkerError) as caught:
            self.stream()
        self.assertEqual(caught.exception.code, "internal")
        self.lm.push(body=["a", b'data: {"error": {"message": "overloaded"}}\n\n'], mode="sse")
        with self.assertRaises(WorkerError) as caught:
            self.stream()
        self.assertEqual(caught.exception.code, "unavailable")
        self.assertIn("overloaded", caught.exception.message)

    def test_silent_stream_times_out(self):
        self.lm.push(body=["first"], mode="sse", gate=0)
        with self.assertRaises(WorkerError) as caught:
            self.stream(self.provider(timeout_ms=200))
        self.assertEqual(caught.exception.code, "deadline_exceeded")

    def test_cancel_while_reading(self):
        self.lm.push(body=["first", "never"], mode="sse", gate=0)
        self.lm.push(body=chat("next"))
        provider = self.provider()

        async def cancelled():
            gen = provider.stream([{"role": "user", "content": "hi"}], Context(1, "execute_program"))
            self.assertEqual(await gen.__anext__(), "first")
            task = asyncio.ensure_future(gen.__anext__())
            await asyncio.sleep(0)  # the task waits for the next event
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            with self.assertRaises(StopAsyncIteration):
                await gen.__anext__()  # the generator ended with its task's cancellation

        self.arun(asyncio.wait_for(cancelled(), WAIT))
        self.assertEqual(self.idle(provider), [], "the connection is closed, not kept")
        self.assertEqual(self.complete(provider), "next")
        self.assertEqual(len(self.lm.connections), 2)

    def test_a_stream_closed_early_closes_its_connection(self):
        self.lm.push(body=["first", "second"], mode="sse", gate=0)
        provider = self.provider()

        async def first_only():
            gen = provider.stream([{"role": "user", "content": "hi"}], Context(1, "execute_program"))
            first = await gen.__anext__()
            await gen.aclose()
            return first

        with mock.patch.object(http_async.Connection, "abort", autospec=True, side_effect=http_async.Connection.abort) as abort:
            self.assertEqual(self.arun(first_only()), "first")
        abort.assert_called_once()  # by aclose, not later by the garbage collector
        self.assertEqual(self.idle(provider), [])


class NativeStreamTest(LMTestCase):
    """execute_program with a stream, the native engine and the fake server."""

    def setUp(self):
        super().setUp()
        self.w = InProcessWorker(self)
        self.w.ok("configure_lm", {"provider": "openai", "model": "m", "base_url": self.lm.url, "api_key_env": KEY_ENV, "engine": "native"})
        self.w.auto_credit = 1

    def test_deltas_arrive_before_the_reply_ends(self):
        spec = spec_of([("q", "")], [("a", ""), ("n", "int")], kind="chain_of_thought")
        reply = sections(reasoning="Step one, step two.", a="The answer is here.", n="12")
        pieces = pieces_of(reply, 7)
        gate = next(i for i, p in enumerate(pieces) if "".join(pieces[: i + 1]).count("[[ ## n") == 1)
        self.lm.push(body=pieces, mode="sse", gate=gate)
        request_id = self.w.call("execute_program", {"spec": spec, "inputs": {"q": "?"}}, stream=1)
        # The server holds the rest of the reply: reasoning and a are streamed already.
        self.w.wait_until(
            lambda: "".join(c["data"]["delta"] for c in self.w.chunks.get(request_id, []) if c["data"]["field"] == "a") == "The answer is here.",
            what="the deltas of reasoning and a",
        )
        self.assertNotIn(request_id, self.w._pending)
        self.lm.release.set()
        result = self.w.response(request_id)
        self.assertTrue(result["success"], result)
        self.assertEqual(result["result"]["outputs"], {"reasoning": "Step one, step two.", "a": "The answer is here.", "n": 12})
        chunks = [c["data"] for c in self.w.chunks[request_id]]
        self.assertEqual(result["chunks"], len(chunks))
        self.assertEqual(joined((c["field"], c["delta"]) for c in chunks), {"reasoning": "Step one, step two.", "a": "The answer is here.", "n": "12"})
        self.assertEqual(list(dict.fromkeys(c["field"] for c in chunks)), ["reasoning", "a", "n"])
        self.assertGreater(len(chunks), 3, "more than one delta per field")
        self.assertIs(self.lm.requests[0]["body"]["stream"], True)

    def test_outputs_left_out_stream_their_defaults(self):
        """Outputs that the streamed reply leaves out take their defaults: each is streamed
        as its default's text (:func:`~dspgo_worker.chunks.value_text`), in output order, and the outputs hold the
        defaults (docs/protocol.md, "Program specs", ``default``)."""
        spec = spec_of([("q", "")], [("a", ""), ("n", "int"), ("l", "list[int]"), ("m", "dict[str, float]")])
        for f, default in zip(spec["signature"]["outputs"], ("none", 0, [1, 2], {"x": 1})):
            f["default"] = default
        self.lm.push(body=pieces_of(sections(n="12"), 4), mode="sse")
        request_id = self.w.call("execute_program", {"spec": spec, "inputs": {"q": "?"}}, stream=1)
        result = self.w.response(request_id)
        self.assertTrue(result["success"], result)
        self.assertEqual(result["result"]["outputs"], {"a": "none", "n": 12, "l": [1, 2], "m": {"x": 1.0}})
        chunks = [(c["data"]["field"], c["data"]["delta"]) for c in self.w.chunks[request_id]]
        # value_text: a string itself, any other value its canonical JSON.
        self.assertEqual(joined(chunks), {"a": "none", "n": "12", "l": "[1,2]", "m": '{"x":1}'})
        self.assertEqual(list(dict.fromkeys(name for name, _ in chunks)), ["a", "n", "l", "m"])

    def test_output_error_after_the_chunks(self):
        self.lm.push(body=pieces_of(sections(a="fine", n="many", l="[]"), 5), mode="sse")
        request_id = self.w.call("execute_program", {"spec": TYPED, "inputs": {"q": "?"}}, stream=2)
        reply = self.w.response(request_id)
        self.assertEqual(reply["error"]["code"], "internal")
        self.assertIn("output n: expected int", reply["error"]["message"])
        self.assertEqual(reply["chunks"], len(self.w.chunks[request_id]))
        self.assertGreater(reply["chunks"], 0)

    def test_cancel_mid_stream(self):
        self.lm.push(body=pieces_of(sections(a="a long answer", n="1", l="[]"), 6), mode="sse", gate=3)
        self.w.auto_credit = 0
        request_id = self.w.call("execute_program", {"spec": TYPED, "inputs": {"q": "?"}}, stream=100)
        self.w.wait_until(lambda: self.w.chunks.get(request_id), what="a first chunk")
        self.w.ok("cancel", {"id": request_id})
        reply = self.w.response(request_id)
        self.assertEqual(reply["error"]["code"], "canceled")
        self.assertEqual(reply["chunks"], len(self.w.chunks[request_id]))

    def test_no_stream_no_sse(self):
        self.lm.push(body=chat(sections(a="x", n="1", l="[[2]]")))
        self.assertEqual(self.w.ok("execute_program", {"spec": TYPED, "inputs": {"q": "?"}})["outputs"], {"a": "x", "n": 1, "l": [[2]]})
        self.assertNotIn("stream", self.lm.requests[0]["body"])


class OpenAIReactTest(LMTestCase):
    def setUp(self):
        super().setUp()
        self.w = InProcessWorker(self)
        self.w.ok("configure_lm", {"provider": "openai", "model": "m", "base_url": self.lm.url, "engine": "native"})
        self.w.tools["search"] = lambda args: {"hits": [args["q"] + " is a framework"]}

        def broken(args):
            raise WorkerError("unavailable", "index down")

        self.w.tools["broken"] = broken
        self.tools = [
            {"name": "search", "description": "Searches the docs.", "schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
            {"name": "broken", "description": "Always fails."},
        ]
        self.spec = spec_of([("question", "")], [("answer", "")], kind="react", instructions="Answer from the docs.")

    def test_loop_then_final_prediction(self):
        """dspy.ReAct's loop: ChatAdapter steps (next_thought, next_tool_name,
        next_tool_args) until finish, then the ChainOfThought extraction."""
        self.lm.push(body=chat(step("Search first.", "search", '{"q": "dspy"}')))
        self.lm.push(body=chat(step("Try the other.", "broken", "{}")))
        self.lm.push(body=chat(step("Done.", "finish", "{}")))
        self.lm.push(body=chat(sections(reasoning="The docs say so.", answer="A framework.")))
        result = self.w.ok("execute_program", {"spec": self.spec, "inputs": {"question": "What is dspy?"}, "tools": self.tools})
        self.assertEqual(result["outputs"], {"answer": "A framework."})
        self.assertEqual(
            result["trajectory"],
            [
                {"tool": "search", "args": {"q": "dspy"}, "observation": {"hits": ["dspy is a framework"]}},
                {"tool": "broken", "args": {}, "observation": {"error": {"code": "unavailable", "message": "index down"}}},
            ],
        )
        self.assertEqual(len(self.lm.requests), 4)
        system, user = self.lm.requests[0]["body"]["messages"]
        for text in ("(1) search, whose description is <desc>Searches the docs.</desc>. It takes arguments {'q': {'type': 'string'}}.",
                     "(2) broken, whose description is <desc>Always fails.</desc>. It takes arguments {}.", "(3) finish, ",
                     "`next_tool_name` (Literal['search', 'broken', 'finish'])", "Answer from the docs."):
            self.assertIn(text, system["content"])
        self.assertIn("What is dspy?", user["content"])
        self.assertIn('[[ ## observation_0 ## ]]\n{"hits": ["dspy is a framework"]}', self.lm.requests[1]["body"]["messages"][1]["content"],
                      "the observation goes back to the LM")
        system, final = (m["content"] for m in self.lm.requests[3]["body"]["messages"])
        self.assertIn("`reasoning`", system)
        self.assertIn("index down", final)
        self.assertIn("[[ ## observation_2 ## ]]\nCompleted.", final)

    def test_max_iters_and_a_reply_that_is_no_step(self):
        """max_iters steps, then the extraction; a reply that is no step, and the one to
        the JSONAdapter request DSPy's ChatAdapter falls back to, fail the run, as DSPy's
        parse error does."""
        for _ in range(2):
            self.lm.push(body=chat(step("Search.", "search", '{"q": "x"}')))
        self.lm.push(body=chat(sections(reasoning="r", answer="done")))
        result = self.w.ok("execute_program", {"spec": self.spec, "inputs": {"question": "?"}, "tools": self.tools, "max_iters": 2})
        self.assertEqual(len(result["trajectory"]), 2)
        self.assertEqual(len(self.lm.requests), 3)
        self.lm.reset()
        for _ in range(2):
            self.lm.push(body=chat("I do not know how to use tools."))
        error = self.w.error("execute_program", {"spec": self.spec, "inputs": {"question": "?"}, "tools": self.tools})
        self.assertEqual(error["code"], "internal")
        self.assertIn("next_thought", error["message"])
        self.assertEqual(len(self.lm.requests), 2, "asked again for JSON")
        self.lm.reset()
        for _ in range(2):
            self.lm.push(body=chat(step("Use a tool I made up.", "guess", "{}")))
        error = self.w.error("execute_program", {"spec": self.spec, "inputs": {"question": "?"}, "tools": self.tools})
        self.assertIn("next_tool_name", error["message"])

    def test_streamed_final_prediction(self):
        """The extraction's outputs are streamed, not its reasoning."""
        self.lm.push(body=chat(step("Search.", "search", '{"q": "go"}')))
        self.lm.push(body=chat(step("Done.", "finish", "{}")))
        self.lm.push(body=pieces_of(sections(reasoning="Known.", answer="Go is a language."), 4), mode="sse")
        self.w.auto_credit = 1
        request_id = self.w.call("execute_program", {"spec": self.spec, "inputs": {"question": "?"}, "tools": self.tools}, stream=1)
        reply = self.w.response(request_id)
        self.assertTrue(reply["success"], reply)
        self.assertEqual(reply["result"]["trajectory"][0]["observation"], {"hits": ["go is a framework"]})
        self.assertEqual({c["data"]["field"] for c in self.w.chunks[request_id]}, {"answer"})
        self.assertEqual("".join(c["data"]["delta"] for c in self.w.chunks[request_id]), "Go is a language.")
        self.assertEqual(reply["chunks"], len(self.w.chunks[request_id]))


class StreamProcessTest(LMTestCase):
    def test_stream_through_a_worker_process(self):
        worker = WorkerProcess(self)
        worker.auto_credit = 1
        self.assertTrue(worker.request("configure_lm", {"provider": "openai", "model": "m", "base_url": self.lm.url, "engine": "native"})["success"])
        self.lm.push(body=pieces_of(sections(a="one two three", n="3", l="[[3]]"), 3), mode="sse")
        request_id = worker.call("execute_program", {"spec": TYPED, "inputs": {"q": "?"}}, stream=2)
        reply = worker.response(request_id)
        self.assertEqual(reply["result"]["outputs"], {"a": "one two three", "n": 3, "l": [[3]]})
        self.assertEqual(joined((c["data"]["field"], c["data"]["delta"]) for c in worker.chunks[request_id]), {"a": "one two three", "n": "3", "l": "[[3]]"})


if __name__ == "__main__":
    unittest.main()
