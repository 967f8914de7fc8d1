"""The dspy engine, against a fake ``dspy`` module put on sys.path by the tests.

The fake records what it is called with and returns canned predictions; the real dspy is
never needed (nor used: these tests are skipped where it is installed).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path
from unittest import mock

from .helpers import InProcessWorker, WorkerProcess
from .test_spec import load_dummy_cases, spec_of

KEY_ENV = "DSPGO_TEST_DSPY_KEY"
SECRET = "sk-dspy-test-key-0123456789"

FAKE_DSPY = textwrap.dedent(
    '''
    """A fake dspy: records calls in CALLS, answers with canned values by output type."""
    import contextlib
    import threading
    import typing

    CALLS = []
    ANSWERS = {}      # output name -> value, overriding the canned one
    DROP = set()      # output names left out of predictions
    RAISE = None      # an exception to raise from a prediction
    SCRIPT = []       # the steps ReAct takes: (tool name, args)
    _local = threading.local()


    class InputField:
        def __init__(self, desc=None, **kwargs):
            self.role, self.desc = "input", desc


    class OutputField:
        def __init__(self, desc=None, **kwargs):
            self.role, self.desc = "output", desc


    class Signature:
        def __init__(self, fields, instructions):
            self.fields, self.instructions = fields, instructions


    def make_signature(fields, instructions=None, signature_name="StringSignature"):
        CALLS.append(("make_signature", {n: (t, f.role, f.desc) for n, (t, f) in fields.items()}, instructions))
        return Signature(dict(fields), instructions)


    class LM:
        def __init__(self, model, **kwargs):
            self.model, self.kwargs = model, kwargs
            CALLS.append(("LM", model, dict(kwargs)))


    @contextlib.contextmanager
    def context(**settings):
        previous = getattr(_local, "settings", {})
        _local.settings = {**previous, **settings}
        try:
            yield
        finally:
            _local.settings = previous


    def configure(**settings):
        raise AssertionError("dspgo must not configure dspy globally")


    class Prediction:
        def __init__(self, **values):
            self.__dict__.update(values)

        def __getitem__(self, key):
            return self.__dict__[key]


    def canned(tp, name, lm):
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is list:
            return [canned(args[0], name, lm), canned(args[0], name, lm)]
        if origin is dict:
            return {"k": canned(args[1], name, lm)}
        if origin is typing.Literal:
            return args[-1]
        if tp is bool:
            return True
        if tp is int:
            return 7
        if tp is float:
            return 0.25
        key = "yes" if lm.kwargs.get("api_key") else "no"
        return f"{name} by {lm.model} at {lm.kwargs.get('api_base')} t={lm.kwargs.get('temperature')} key={key}"


    class Predict:
        def __init__(self, signature):
            self.signature = signature
            CALLS.append((type(self).__name__, signature))

        def outputs(self, lm):
            return {n: canned(t, n, lm) for n, (t, f) in self.signature.fields.items() if f.role == "output"}

        def __call__(self, **inputs):
            lm = getattr(_local, "settings", {}).get("lm")
            CALLS.append(("call", type(self).__name__, inputs, lm))
            if lm is None:
                raise RuntimeError("No LM is loaded.")
            if RAISE is not None:
                raise RAISE
            values = {**self.outputs(lm), **ANSWERS}
            return Prediction(**{n: v for n, v in values.items() if n not in DROP})


    class ChainOfThought(Predict):
        def outputs(self, lm):
            return {"reasoning": "because", **super().outputs(lm)}


    class Tool:
        def __init__(self, func, name=None, desc=None, args=None, **kwargs):
            self.func, self.name, self.desc, self.args = func, name or func.__name__, desc, args
            CALLS.append(("Tool", self.name, desc, args))

        def __call__(self, **kwargs):
            return self.func(**kwargs)


    class ReAct(Predict):
        """Takes the steps of SCRIPT (as dspy's, a failing tool's error is its observation)."""

        def __init__(self, signature, tools, max_iters=10):
            self.signature, self.tools, self.max_iters = signature, {t.name: t for t in tools}, max_iters
            CALLS.append(("ReAct", signature, sorted(self.tools), max_iters))

        def __call__(self, **inputs):
            lm = getattr(_local, "settings", {}).get("lm")
            if lm is None:
                raise RuntimeError("No LM is loaded.")
            trajectory = {}
            for i, (name, args) in enumerate(SCRIPT[: self.max_iters]):
                try:
                    observation = self.tools[name](**args)
                except Exception as exc:
                    observation = f"Execution error in {name}: {exc}"
                trajectory.update({f"tool_name_{i}": name, f"tool_args_{i}": args, f"observation_{i}": observation})
            return Prediction(trajectory=trajectory, **{**self.outputs(lm), **ANSWERS})
    '''
)


@unittest.skipIf(importlib.util.find_spec("dspy") is not None, "a real dspy is installed; the fake would be shadowed")
class DspyEngineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fake_dir = tempfile.TemporaryDirectory(prefix="dspgo-fake-dspy-")
        cls.addClassCleanup(cls.fake_dir.cleanup)
        Path(cls.fake_dir.name, "dspy.py").write_text(FAKE_DSPY, encoding="utf-8")

    def setUp(self):
        sys.path.insert(0, self.fake_dir.name)
        importlib.invalidate_caches()
        self.addCleanup(self._unload)
        self.dspy = importlib.import_module("dspy")
        patcher = mock.patch.dict(os.environ, {KEY_ENV: SECRET})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.w = InProcessWorker(self)
        self.base = {"provider": "openai", "model": "gpt-x", "base_url": "http://127.0.0.1:9/v1", "api_key_env": KEY_ENV}

    def _unload(self):
        sys.path.remove(self.fake_dir.name)
        sys.modules.pop("dspy", None)
        importlib.invalidate_caches()

    def calls(self, kind: str) -> list:
        return [c for c in self.dspy.CALLS if c[0] == kind]

    def test_auto_selects_dspy_and_builds_signature_lm_and_module(self):
        result = self.w.ok("configure_lm", {**self.base, "temperature": 0.3, "max_tokens": 50})
        self.assertEqual(result, {"provider": "openai", "model": "gpt-x", "engine": "dspy"})
        self.assertEqual(self.dspy.CALLS, [], "configure_lm builds nothing and calls nothing")
        spec = spec_of(
            [("question", ""), ("n", "int")],
            [("s", ""), ("i", "int"), ("f", "float"), ("b", "bool"), ("l", "list[int]"), ("d", "dict[str, list[float]]"), ("lit", "Literal['a', 'b']")],
            instructions="Be brief.",
        )
        spec["signature"]["inputs"][0]["description"] = "what is asked"
        outputs = self.w.ok("execute_program", {"spec": spec, "inputs": {"question": "Q?", "n": 2.0}})["outputs"]
        self.assertEqual(
            outputs,
            {"s": "s by openai/gpt-x at http://127.0.0.1:9/v1 t=0.3 key=yes", "i": 7, "f": 0.25, "b": True, "l": [7, 7], "d": {"k": [0.25, 0.25]}, "lit": "b"},
        )
        self.assertEqual(list(outputs), ["s", "i", "f", "b", "l", "d", "lit"])

        (signature_call,) = self.calls("make_signature")
        fields, instructions = signature_call[1], signature_call[2]
        self.assertEqual(instructions, "Be brief.")
        self.assertEqual(list(fields), ["question", "n", "s", "i", "f", "b", "l", "d", "lit"])
        self.assertEqual(fields["question"], (str, "input", "what is asked"))
        self.assertEqual(fields["n"], (int, "input", None))
        self.assertEqual(fields["l"][:2], (list[int], "output"))
        self.assertEqual(fields["d"][:2], (dict[str, list[float]], "output"))
        import typing

        self.assertEqual(fields["lit"][0], typing.Literal["a", "b"])
        self.assertEqual(len(self.calls("Predict")), 1)
        (lm_call,) = self.calls("LM")
        self.assertEqual(lm_call[1:], ("openai/gpt-x", {"api_base": "http://127.0.0.1:9/v1", "api_key": SECRET, "temperature": 0.3, "max_tokens": 50}))
        (call,) = self.calls("call")
        self.assertEqual(call[1:3], ("Predict", {"question": "Q?", "n": 2}))
        self.assertIs(type(call[2]["n"]), int, "the module gets converted inputs")

        # The compiled module is reused; the LM is made per run (the key is read each time).
        self.w.ok("execute_program", {"spec": spec, "inputs": {"question": "again", "n": 1}})
        self.assertEqual((len(self.calls("make_signature")), len(self.calls("LM"))), (1, 2))

    def test_chain_of_thought(self):
        self.w.ok("configure_lm", {**self.base, "engine": "dspy"})
        spec = spec_of([("question", "")], [("answer", "int")], kind="chain_of_thought")
        outputs = self.w.ok("execute_program", {"spec": spec, "inputs": {"question": "?"}})["outputs"]
        self.assertEqual(outputs, {"reasoning": "because", "answer": 7})
        self.assertEqual(list(outputs), ["reasoning", "answer"])
        self.assertEqual(len(self.calls("ChainOfThought")), 1)
        self.assertNotIn("reasoning", self.calls("make_signature")[0][1], "dspy adds reasoning itself")

    def test_outputs_are_converted_and_checked(self):
        self.w.ok("configure_lm", self.base)
        spec = spec_of([("q", "")], [("a", ""), ("n", "int"), ("x", "float")])
        self.dspy.ANSWERS.update({"n": "12", "x": 3})
        self.assertEqual(self.w.ok("execute_program", {"spec": spec, "inputs": {"q": "?"}})["outputs"]["n"], 12)
        self.dspy.DROP.add("x")
        error = self.w.error("execute_program", {"spec": spec, "inputs": {"q": "?"}})
        self.assertEqual((error["code"], error["type"]), ("internal", "OutputError"))
        self.assertIn('output "x" is missing', error["message"])
        self.dspy.DROP.clear()
        self.dspy.ANSWERS["n"] = "many"
        error = self.w.error("execute_program", {"spec": spec, "inputs": {"q": "?"}})
        self.assertIn("output n: expected int", error["message"])

    def test_dspy_errors_map_to_codes_without_the_key(self):
        self.w.ok("configure_lm", self.base)
        spec = spec_of([("q", "")], [("a", "")])
        for name, code in (("RateLimitError", "resource_exhausted"), ("AuthenticationError", "failed_precondition"), ("ValueError", "internal")):
            with self.subTest(name=name):
                error_class = type(name, (Exception,), {})
                self.dspy.RAISE = error_class(f"failed with key {SECRET}")
                error = self.w.error("execute_program", {"spec": spec, "inputs": {"q": "?"}})
                self.assertEqual(error["code"], code)
                self.assertIn(name, error["message"])
                self.assertNotIn(SECRET, error["message"])
        self.dspy.RAISE = None

    def test_native_and_dummy_do_not_use_dspy(self):
        self.assertEqual(self.w.ok("configure_lm", {**self.base, "engine": "native"})["engine"], "native")
        self.assertEqual(self.w.ok("configure_lm", {"provider": "dummy", "engine": "dspy"})["engine"], "native")
        case = load_dummy_cases()[0]
        result = self.w.ok("execute_program", {"spec": case["spec"], "inputs": case["inputs"]})
        self.assertEqual(result["outputs"], case["outputs"], "the dummy rule, whatever the engine")
        self.assertEqual(self.dspy.CALLS, [])

    def test_react_calls_host_tools(self):
        from dspgo_worker.errors import WorkerError

        self.w.ok("configure_lm", self.base)
        self.w.tools["search"] = lambda args: {"hits": [args["q"]]}

        def broken(args):
            raise WorkerError("unavailable", "index down")

        self.w.tools["broken"] = broken
        self.dspy.SCRIPT[:] = [("search", {"q": "x"}), ("broken", {}), ("search", {"q": "never"})]
        spec = spec_of([("question", "")], [("answer", ""), ("n", "int")], kind="react")
        tools = [
            {"name": "search", "description": "Finds.", "schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
            {"name": "broken"},
        ]
        result = self.w.ok("execute_program", {"spec": spec, "inputs": {"question": "?"}, "tools": tools, "max_iters": 2})
        self.assertEqual(
            result["trajectory"],
            [
                {"tool": "search", "args": {"q": "x"}, "observation": {"hits": ["x"]}},
                {"tool": "broken", "args": {}, "observation": {"error": {"code": "unavailable", "message": "index down"}}},
            ],
        )
        self.assertEqual(result["outputs"]["n"], 7)
        self.assertTrue(result["outputs"]["answer"].startswith("answer by openai/gpt-x"))
        (react,) = self.calls("ReAct")
        self.assertEqual(react[2:], (["broken", "search"], 2))
        self.assertEqual(
            sorted(c[1:] for c in self.calls("Tool")),
            [("broken", "", {}), ("search", "Finds.", {"q": {"type": "string"}})],
        )
        self.assertEqual([c["parent"] for c in self.w.calls_seen], [self.w.calls_seen[0]["parent"]] * 2)

        # Streamed: the outputs as chunks once the run is done.
        self.dspy.SCRIPT[:] = []
        self.w.auto_credit = 1
        request_id = self.w.call("execute_program", {"spec": spec, "inputs": {"question": "?"}, "tools": tools}, stream=1)
        reply = self.w.response(request_id)
        self.assertEqual(reply["result"]["trajectory"], [])
        chunks = [c["data"] for c in self.w.chunks[request_id]]
        self.assertEqual(chunks[-1], {"field": "n", "delta": "7"})
        self.assertEqual("".join(c["delta"] for c in chunks if c["field"] == "answer"), reply["result"]["outputs"]["answer"])
        self.assertEqual(reply["chunks"], len(chunks))

    def test_real_worker_process_with_fake_dspy(self):
        worker = WorkerProcess(self, pythonpath=(self.fake_dir.name,))
        reply = worker.request("configure_lm", {**self.base, "model": "openai/local-model", "temperature": 1})
        self.assertEqual(reply["result"]["engine"], "dspy", reply)
        spec = spec_of([("q", "")], [("a", ""), ("tags", "list[str]")])
        reply = worker.request("execute_program", {"spec": spec, "inputs": {"q": "?"}})
        self.assertTrue(reply["success"], reply)
        expected_a = "a by openai/local-model at http://127.0.0.1:9/v1 t=1.0 key=yes"
        self.assertEqual(reply["result"]["outputs"], {"a": expected_a, "tags": [f"tags{expected_a[1:]}"] * 2})
        self.assertNotIn(SECRET, worker.stderr_text())


if __name__ == "__main__":
    unittest.main()
