"""The program command set with streams and tools: streamed execute_program with the
dummy LM, the react kind with the dummy LM's script, and the argument checks."""

from __future__ import annotations

import json
import time
import unittest

from dspgo_worker.canonical import canonical_json
from dspgo_worker.chunks import text_deltas, value_deltas
from dspgo_worker.dummy import dummy_outputs
from dspgo_worker.errors import WorkerError
from dspgo_worker.spec import CompiledSpec

from .helpers import InProcessWorker, WorkerProcess
from .test_spec import spec_of

QA = spec_of([("question", "")], [("answer", "")])
REACT = spec_of([("question", "")], [("answer", ""), ("confidence", "float")], kind="react")
TOOLS = [
    {"name": "search", "description": "Searches the web.", "schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
    {"name": "broken"},
]


def dummy(spec: dict, inputs: dict) -> dict:
    compiled = CompiledSpec(spec)
    return json.loads(json.dumps(dummy_outputs(compiled, compiled.convert_inputs(inputs))))


def expected_deltas(value) -> list[str]:
    """The dummy chunk rule, written out again: cut a string before each space that
    follows a non-space character; anything else is its canonical JSON."""
    if not isinstance(value, str):
        return [canonical_json(value).decode("utf-8")]
    pieces, start = [], 0
    for i in range(1, len(value)):
        if value[i] == " " and value[i - 1] != " ":
            pieces.append(value[start:i])
            start = i
    pieces.append(value[start:])
    return pieces


class ChunkRuleTest(unittest.TestCase):
    def test_text_deltas(self):
        cases = {
            "answer 1a2b 3c4d": ["answer", " 1a2b", " 3c4d"],
            "": [""],
            "one": ["one"],
            " lead": [" lead"],
            "a  b": ["a", "  b"],
            "trail ": ["trail", " "],
            "tab\tand newline\nstay": ["tab\tand", " newline\nstay"],
            "é ü": ["é", " ü"],
        }
        for text, want in cases.items():
            with self.subTest(text=text):
                self.assertEqual(text_deltas(text), want)
                self.assertEqual("".join(text_deltas(text)), text)
                self.assertEqual(text_deltas(text), expected_deltas(text))

    def test_value_deltas(self):
        self.assertEqual(value_deltas(884), ["884"])
        self.assertEqual(value_deltas(0.5), ["0.5"])
        self.assertEqual(value_deltas(2.0), ["2"])
        self.assertEqual(value_deltas(True), ["true"])
        self.assertEqual(value_deltas([1, "a b"]), ['[1,"a b"]'])
        self.assertEqual(value_deltas({"key_1": 1, "key_0": "é"}), ['{"key_0":"é","key_1":1}'])
        self.assertEqual(value_deltas("red alert"), ["red", " alert"], "a Literal's value is a string")


class StreamedExecuteTest(unittest.TestCase):
    def setUp(self):
        self.w = InProcessWorker(self)
        self.w.auto_credit = 1

    def execute(self, args: dict, stream: int = 2, **fields) -> tuple[dict, list]:
        request_id = self.w.call("execute_program", args, stream=stream, **fields)
        reply = self.w.response(request_id)
        return reply, [c["data"] for c in self.w.chunks.get(request_id, [])]

    def test_dummy_chunks_follow_the_rule(self):
        spec = spec_of(
            [("question", ""), ("n", "int")],
            [("s", ""), ("i", "int"), ("f", "float"), ("b", "bool"), ("l", "list[str]"), ("d", "dict[str, int]"), ("lit", "Literal['red alert', 'green']")],
            kind="chain_of_thought",
        )
        inputs = {"question": "What?", "n": 3}
        reply, chunks = self.execute({"spec": spec, "inputs": inputs})
        self.assertTrue(reply["success"], reply)
        outputs = dummy(spec, inputs)
        self.assertEqual(reply["result"], self.w.ok("execute_program", {"spec": spec, "inputs": inputs}), "the result is as without a stream")
        self.assertEqual(reply["result"]["outputs"], outputs)
        want = [{"field": name, "delta": d} for name, value in outputs.items() for d in expected_deltas(value)]
        self.assertEqual(chunks, want)
        self.assertEqual(reply["chunks"], len(want))
        self.assertEqual(chunks[0]["field"], "reasoning", "reasoning first")
        self.assertEqual(list(dict.fromkeys(c["field"] for c in chunks)), ["reasoning", "s", "i", "f", "b", "l", "d", "lit"])
        for name, value in outputs.items():
            text = "".join(c["delta"] for c in chunks if c["field"] == name)
            self.assertEqual(text, value if isinstance(value, str) else canonical_json(value).decode())

    def test_golden_dummy_cases_stream_the_same_outputs(self):
        from .test_spec import load_dummy_cases

        for case in load_dummy_cases():
            with self.subTest(case=case["name"]):
                reply, chunks = self.execute({"spec": case["spec"], "inputs": case["inputs"]}, stream=1)
                self.assertEqual(reply["result"], {"outputs": case["outputs"], "spec_hash": case["spec_hash"]})
                self.assertEqual(len(chunks), reply["chunks"])
                for name, value in case["outputs"].items():
                    self.assertEqual([c["delta"] for c in chunks if c["field"] == name], expected_deltas(value))

    def test_errors_of_a_streamed_execution(self):
        reply, chunks = self.execute({"spec_hash": "nope", "inputs": {}})
        self.assertEqual((reply["error"]["type"], reply["chunks"], chunks), ("SpecNotFound", 0, []))
        reply, chunks = self.execute({"spec": QA, "inputs": {"question": None}})
        self.assertEqual((reply["error"]["code"], reply["chunks"]), ("invalid_argument", 0))

    def test_deadline_while_waiting_for_credit(self):
        self.w.auto_credit = 0
        reply, chunks = self.execute({"spec": QA, "inputs": {"question": "?"}}, stream=1, deadline_ms=200)
        self.assertEqual((reply["error"]["code"], reply["chunks"], len(chunks)), ("deadline_exceeded", 1, 1))

    def test_delay_then_cancel(self):
        self.w.ok("configure_lm", {"provider": "dummy", "delay_ms": 30_000})
        request_id = self.w.call("execute_program", {"spec": QA, "inputs": {"question": "?"}}, stream=4)
        self.assertEqual(self.w.ok("get_stats")["in_flight"], 1)  # (answered after the execution started)
        self.assertEqual(self.w.ok("cancel", {"id": request_id})["state"], "running")
        reply = self.w.response(request_id)
        self.assertEqual((reply["error"]["code"], reply["chunks"]), ("canceled", 0))


class ArgumentTest(unittest.TestCase):
    def setUp(self):
        self.w = InProcessWorker(self)

    def test_tools_and_max_iters(self):
        base = {"spec": REACT, "inputs": {"question": "?"}}
        cases = [
            ({"tools": {"name": "x"}}, "'tools'"),
            ({"tools": ["search"]}, "tools[0] must be an object"),
            ({"tools": [{"description": "no name"}]}, "tools[0].name must be a non-empty string"),
            ({"tools": [{"name": ""}]}, "tools[0].name"),
            ({"tools": [{"name": "a"}, {"name": "a"}]}, 'tools[1].name "a" is used twice'),
            ({"tools": [{"name": "a", "description": 3}]}, "tools[0].description must be a string"),
            ({"tools": [{"name": "a", "schema": []}]}, "tools[0].schema must be an object"),
            ({"max_iters": 0}, "max_iters must be from 1 to 100, got 0"),
            ({"max_iters": 101}, "max_iters must be from 1 to 100, got 101"),
            ({"max_iters": 2.5}, "'max_iters'"),
            ({"max_iters": "5"}, "'max_iters'"),
        ]
        for extra, want in cases:
            with self.subTest(extra=extra):
                error = self.w.error("execute_program", {**base, **extra})
                self.assertEqual(error["code"], "invalid_argument")
                self.assertIn(want, error["message"])
        result = self.w.ok("execute_program", {**base, "tools": TOOLS, "max_iters": 100})
        self.assertEqual(result["trajectory"], [])
        described = {c["name"]: c for c in self.w.ok("describe")["commands"]}
        self.assertEqual(described["execute_program"]["args"]["tools"]["type"], "array")
        self.assertEqual(described["execute_program"]["args"]["max_iters"]["type"], "int")
        self.assertEqual(described["configure_lm"]["args"]["script"]["type"], "array")

    def test_tools_are_accepted_by_every_kind(self):
        result = self.w.ok("execute_program", {"spec": QA, "inputs": {"question": "?"}, "tools": TOOLS, "max_iters": 3})
        self.assertEqual(result, {"outputs": dummy(QA, {"question": "?"}), "spec_hash": CompiledSpec(QA).hash})

    def test_script_validation(self):
        error = self.w.error(
            "configure_lm",
            {"provider": "dummy", "script": [
                {"tool": "a", "args": {}},
                {"tool": "a"},
                {"finish": False},
                {"tool": "a", "args": {}, "finish": True},
                "finish",
                {"tool": "", "args": {}},
                {"tool": "a", "args": []},
                {"finish": True},
                {"tool": 3, "args": {}},
                {"finish": True, "args": {}},
                {"finish": "yes"},
                {"tool": "a", "args": None},
                {"tool": "a", "args": {"x": 1}, "finish": False, "note": "other keys are ignored"},
                {"finish": True, "tool": ""},
            ]},
        )
        self.assertEqual(error["code"], "invalid_argument")
        for i in (1, 2, 3, 4, 5, 6, 8, 9, 10, 11):
            self.assertIn(f"script[{i}] must be", error["message"])
        for i in (0, 7, 12, 13):
            self.assertNotIn(f"script[{i}]", error["message"])
        # Every bad field at once, in the order of Go's ValidateLM.
        error = self.w.error(
            "configure_lm", {"provider": "openai", "model": "m", "script": [{"finish": True}, {}], "api_key_env": "1X"}
        )
        self.assertRegex(error["message"], r"script is only for the dummy provider; script\[1\] must be .*; api_key_env")
        self.assertEqual(self.w.ok("configure_lm", {"provider": "openai", "model": "m", "script": []})["provider"], "openai")
        error = self.w.error("configure_lm", {"provider": "dummy", "script": {"finish": True}})
        self.assertIn("'script'", error["message"])


class ReactScriptTest(unittest.TestCase):
    """The react kind with the dummy LM's script, tools answered by the test."""

    def setUp(self):
        self.w = InProcessWorker(self)
        self.w.tools["search"] = lambda args: {"hits": [f"about {args['q']}"]}

        def broken(args):
            raise WorkerError("unavailable", "the index is down")

        self.w.tools["broken"] = broken
        self.inputs = {"question": "Who?"}

    def script(self, *steps) -> None:
        self.w.ok("configure_lm", {"provider": "dummy", "script": list(steps)})

    def run_react(self, **extra) -> dict:
        return self.w.ok("execute_program", {"spec": REACT, "inputs": self.inputs, "tools": TOOLS, **extra})

    def test_tool_ok_tool_error_and_finish(self):
        self.script(
            {"tool": "search", "args": {"q": "dspy"}},
            {"tool": "broken", "args": {}},
            {"finish": True},
            {"tool": "search", "args": {"q": "never"}},
        )
        result = self.run_react()
        self.assertEqual(list(result), ["outputs", "spec_hash", "trajectory"])
        self.assertEqual(
            result["trajectory"],
            [
                {"tool": "search", "args": {"q": "dspy"}, "observation": {"hits": ["about dspy"]}},
                {"tool": "broken", "args": {}, "observation": {"error": {"code": "unavailable", "message": "the index is down"}}},
            ],
        )
        self.assertEqual(list(result["trajectory"][0]), ["tool", "args", "observation"])
        compiled = CompiledSpec(REACT)
        self.assertEqual(result["spec_hash"], compiled.hash)
        self.assertEqual(compiled.spec["kind"], "react")
        self.assertEqual(result["outputs"], dummy(REACT, self.inputs), "the dummy outputs, with the react spec's hash")
        self.assertNotEqual(result["outputs"], dummy({**REACT, "kind": "predict"}, self.inputs))
        self.assertEqual([c["tool"] for c in self.w.calls_seen], ["search", "broken"])
        self.assertEqual(len({c["parent"] for c in self.w.calls_seen}), 1)

    def test_max_iters_and_end_of_script(self):
        self.script(*[{"tool": "search", "args": {"q": str(i)}} for i in range(21)])
        self.assertEqual(len(self.run_react()["trajectory"]), 20, "max_iters defaults to 20, as dspy.ReAct's does")
        self.assertEqual([s["args"]["q"] for s in self.run_react(max_iters=2)["trajectory"]], ["0", "1"])
        self.assertEqual(len(self.run_react(max_iters=100)["trajectory"]), 21, "the end of the script ends the loop")
        self.script({"finish": True}, {"tool": "search", "args": {"q": "x"}})
        self.assertEqual(self.run_react()["trajectory"], [])

    def test_no_script_and_reset(self):
        self.assertEqual(self.run_react()["trajectory"], [])
        self.script({"tool": "search", "args": {"q": "x"}})
        self.assertEqual(len(self.run_react()["trajectory"]), 1)
        self.w.ok("reset")
        self.assertEqual(self.run_react()["trajectory"], [], "reset clears the script")
        self.assertEqual(len(self.w.calls_seen), 1)

    def test_streamed_react(self):
        self.script({"tool": "search", "args": {"q": "dspy"}})
        self.w.auto_credit = 1
        request_id = self.w.call("execute_program", {"spec": REACT, "inputs": self.inputs, "tools": TOOLS}, stream=1)
        reply = self.w.response(request_id)
        self.assertEqual(reply["result"]["trajectory"][0]["observation"], {"hits": ["about dspy"]})
        outputs = reply["result"]["outputs"]
        want = [{"field": name, "delta": d} for name, value in outputs.items() for d in expected_deltas(value)]
        self.assertEqual([c["data"] for c in self.w.chunks[request_id]], want)
        self.assertEqual(reply["chunks"], len(want))

    def test_deadline_while_waiting_on_a_tool(self):
        self.script({"tool": "slow", "args": {}})
        started = time.monotonic()
        error = self.w.error("execute_program", {"spec": REACT, "inputs": self.inputs, "tools": TOOLS}, deadline_ms=300)
        self.assertEqual(error["code"], "deadline_exceeded")
        self.assertLess(time.monotonic() - started, 5)
        self.w.wait_until(lambda: self.w.call_cancels, what="the cancel frame")
        self.assertEqual(self.w.call_cancels, [self.w.calls[0]["id"]])

    def test_cancel_while_waiting_on_a_tool(self):
        self.script({"tool": "slow", "args": {}})
        request_id = self.w.call("execute_program", {"spec": REACT, "inputs": self.inputs}, stream=8)
        self.w.wait_until(lambda: self.w.calls, what="the call")
        self.w.ok("cancel", {"id": request_id})
        reply = self.w.response(request_id)
        self.assertEqual((reply["error"]["code"], reply["chunks"]), ("canceled", 0))
        self.w.wait_until(lambda: self.w.call_cancels, what="the cancel frame")

    def test_spec(self):
        compiled = CompiledSpec(spec_of([("q", "")], [("reasoning", ""), ("a", "int")], kind="react"))
        self.assertEqual([f.name for f in compiled.outputs], ["reasoning", "a"], "react adds no output")
        self.assertEqual(compiled.spec["kind"], "react")
        predict = CompiledSpec(spec_of([("q", "")], [("reasoning", ""), ("a", "int")]))
        self.assertNotEqual(compiled.hash, predict.hash)
        from dspgo_worker.canonical import sha256_hex

        self.assertEqual(compiled.hash, sha256_hex(canonical_json({**predict.spec, "kind": "react"})))


class ReactProcessTest(unittest.TestCase):
    def test_react_through_a_worker_process(self):
        worker = WorkerProcess(self)
        worker.tools["search"] = lambda args: [args["q"].upper()]
        self.assertTrue(worker.request("configure_lm", {"provider": "dummy", "script": [{"tool": "search", "args": {"q": "go"}}, {"tool": "missing", "args": {}}]})["success"])

        def missing(args):
            raise WorkerError("not_found", "no tool 'missing'")

        worker.tools["missing"] = missing
        reply = worker.request("execute_program", {"spec": REACT, "inputs": {"question": "?"}, "tools": TOOLS[:1]})
        self.assertTrue(reply["success"], reply)
        self.assertEqual(
            reply["result"]["trajectory"],
            [
                {"tool": "search", "args": {"q": "go"}, "observation": ["GO"]},
                {"tool": "missing", "args": {}, "observation": {"error": {"code": "not_found", "message": "no tool 'missing'"}}},
            ],
        )
        self.assertEqual([c["id"] for c in worker.calls_seen], [1, 2])


if __name__ == "__main__":
    unittest.main()
