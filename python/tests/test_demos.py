"""Demos (few-shot examples) in both engines' prompts.

The native engine writes a spec's demos as DSPy's ChatAdapter (3.4.1) formats them; these
tests pin the messages, compare them with DSPy's own ``format_demos`` where dspy can be
imported, and check that the requests the test LM server (``internal/lmtest``) records
carry them, from both engines. The validation of demos is in test_spec.py (the golden
vectors Go checks too).
"""

from __future__ import annotations

import os
import unittest
from unittest import mock

from dspgo_worker.chat_format import INCOMPLETE_DEMO_PREFIX, build_messages, demo_messages
from dspgo_worker.spec import CompiledSpec

from .helpers import InProcessWorker
from .lmserver import LMServer, dspy_importable, require_dspy
from .test_spec import spec_of

KEY_ENV = "DSPGO_TEST_DEMOS_KEY"

RAG = spec_of([("question", "str"), ("context", "list[str]")], [("answer", "str"), ("confidence", "float")],
              instructions="Answer from the context.")
RAG_DEMOS = [
    {"inputs": {"question": "Who wrote it?", "context": ["Ann wrote it.", "Bob read it."]},
     "outputs": {"answer": "Ann", "confidence": 1}},
    {"inputs": {"question": "When?\n", "context": []}, "outputs": {"answer": "In 1999", "confidence": 0.25},
     "reasoning": "The context says nothing; guess."},
]
RAG_INPUTS = {"question": "What is Go?", "context": ["Go is a language."]}


def with_demos(spec: dict, demos: list[dict], kind: str = "") -> dict:
    if kind != "chain_of_thought":
        demos = [{k: v for k, v in d.items() if k != "reasoning"} for d in demos]
    return {**spec, "kind": kind, "demos": demos}


#: DSPy's RAG program as its tutorial writes it ("context, question -> answer", untyped
#: fields, a list of passages given to ``context``) with the demos an optimizer leaves:
#: one without the context (a trainset example), values that are no strings in str
#: fields, a null.
UNTYPED_RAG = spec_of([("context", ""), ("question", "")], [("answer", "")])
UNTYPED_RAG_DEMOS = [
    {"inputs": {"question": "Who read it?"}, "outputs": {"answer": "Bo"}},
    {"inputs": {"context": ["Ann wrote it.", "Bo read it.\nTwice, «slowly»."], "question": "Who wrote it?"}, "outputs": {"answer": "Ann"}},
    {"inputs": {"context": ["One passage."], "question": 42}, "outputs": {"answer": {"k": [1, 2.5, "é"]}}},
    {"inputs": {"context": [], "question": None}, "outputs": {"answer": True}},
    {"inputs": {"context": "Plain text.", "question": "Why?"}, "outputs": {}, "reasoning": "Because."},
]
UNTYPED_RAG_INPUTS = {"context": ["Go is a language.", "It has goroutines."], "question": "What is Go?"}

#: Every kind of value: as DSPy writes them (str() of a scalar, JSON of a list or dict).
TYPED = {
    **spec_of([("n", "int"), ("flag", "bool"), ("m", "dict[int, float]"), ("x", "Any")],
              [("o", "Optional[int]"), ("t", "tuple[int, str]"), ("lit", "Literal['a', 'b']")]),
    "demos": [
        {"inputs": {"n": 3, "flag": True, "m": {"7": 1, "-1": 0.5}, "x": {"k": [1, 2.5, None, "é"]}}, "outputs": {"o": 5, "t": [1, "x"], "lit": "b"}},
        {"inputs": {"n": -1, "flag": False, "m": {}, "x": None}, "outputs": {"o": None, "t": [0, ""], "lit": "a"}},
    ],
}


class NativeDemoMessagesTest(unittest.TestCase):
    def test_predict(self):
        c = CompiledSpec(with_demos(RAG, RAG_DEMOS))
        self.assertEqual(demo_messages(c), [
            {"role": "user", "content": "[[ ## question ## ]]\nWho wrote it?\n\n[[ ## context ## ]]\n[\"Ann wrote it.\", \"Bob read it.\"]"},
            {"role": "assistant", "content": "[[ ## answer ## ]]\nAnn\n\n[[ ## confidence ## ]]\n1.0\n\n[[ ## completed ## ]]\n"},
            {"role": "user", "content": "[[ ## question ## ]]\nWhen?\n\n\n[[ ## context ## ]]\n[]"},
            {"role": "assistant", "content": "[[ ## answer ## ]]\nIn 1999\n\n[[ ## confidence ## ]]\n0.25\n\n[[ ## completed ## ]]\n"},
        ])

    def test_chain_of_thought_shows_a_demo_without_reasoning_first_as_incomplete(self):
        c = CompiledSpec(with_demos(RAG, RAG_DEMOS, "chain_of_thought"))
        messages = demo_messages(c)
        self.assertEqual([m["role"] for m in messages], ["user", "assistant"] * 2)
        self.assertEqual(messages[0]["content"], INCOMPLETE_DEMO_PREFIX + "\n\n[[ ## question ## ]]\nWho wrote it?\n\n"
                         "[[ ## context ## ]]\n[\"Ann wrote it.\", \"Bob read it.\"]")
        self.assertEqual(messages[1]["content"], "[[ ## reasoning ## ]]\nNot supplied for this particular example. \n\n"
                         "[[ ## answer ## ]]\nAnn\n\n[[ ## confidence ## ]]\n1.0\n\n[[ ## completed ## ]]\n")
        self.assertEqual(messages[3]["content"], "[[ ## reasoning ## ]]\nThe context says nothing; guess.\n\n"
                         "[[ ## answer ## ]]\nIn 1999\n\n[[ ## confidence ## ]]\n0.25\n\n[[ ## completed ## ]]\n")

    def test_values_are_written_as_dspy_writes_them(self):
        messages = demo_messages(CompiledSpec(TYPED))
        # The demo holding nulls is incomplete to DSPy, so it comes first.
        self.assertTrue(messages[0]["content"].startswith(INCOMPLETE_DEMO_PREFIX))
        self.assertIn("[[ ## flag ## ]]\nFalse", messages[0]["content"])
        self.assertIn("[[ ## x ## ]]\nNone", messages[0]["content"])
        self.assertIn("[[ ## o ## ]]\nNone", messages[1]["content"])
        self.assertEqual(messages[2]["content"], "[[ ## n ## ]]\n3\n\n[[ ## flag ## ]]\nTrue\n\n[[ ## m ## ]]\n{\"7\": 1.0, \"-1\": 0.5}\n\n"
                         "[[ ## x ## ]]\n{\"k\": [1, 2.5, null, \"é\"]}")
        self.assertEqual(messages[3]["content"], "[[ ## o ## ]]\n5\n\n[[ ## t ## ]]\n[1, \"x\"]\n\n[[ ## lit ## ]]\nb\n\n[[ ## completed ## ]]\n")

    def test_demos_come_between_the_system_message_and_the_input(self):
        c = CompiledSpec(with_demos(RAG, RAG_DEMOS))
        messages = build_messages(c, c.convert_inputs(RAG_INPUTS))
        self.assertEqual(messages[1:-1], demo_messages(c))
        self.assertEqual([m["role"] for m in messages], ["system", "user", "assistant", "user", "assistant", "user"])
        self.assertIn("What is Go?", messages[-1]["content"])
        self.assertEqual(len(build_messages(CompiledSpec(RAG), RAG_INPUTS)), 2, "no demos, no demo messages")


@unittest.skipUnless(dspy_importable(), "dspy is not installed in this interpreter")
class AgainstDSPyTest(unittest.TestCase):
    """The native engine's demo messages are DSPy's ``ChatAdapter.format_demos`` for the
    module the dspy engine builds, with the demos it sets."""

    def test_format_demos(self):
        from dspgo_worker.dspy_engine import ENGINE, _answering_predictor, import_dspy

        dspy = import_dspy()
        specs = {
            "predict": with_demos(RAG, RAG_DEMOS),
            "chain_of_thought": with_demos(RAG, RAG_DEMOS, "chain_of_thought"),
            "typed": TYPED,
            "typed_chain_of_thought": {**TYPED, "kind": "chain_of_thought"},
            "untyped_rag_incomplete": with_demos(UNTYPED_RAG, UNTYPED_RAG_DEMOS[:-1]),
            "untyped_rag_chain_of_thought": with_demos(UNTYPED_RAG, UNTYPED_RAG_DEMOS, "chain_of_thought"),
        }
        for name, spec in specs.items():
            with self.subTest(spec=name):
                c = CompiledSpec(spec)
                module = ENGINE.module(dspy, c)
                predictor = _answering_predictor(module, [f.name for f in c.outputs])
                self.assertEqual(len(predictor.demos), len(spec["demos"]))
                want = dspy.ChatAdapter().format_demos(predictor.signature, predictor.demos)
                self.assertEqual(demo_messages(c), want)


class DemosReachTheLMTest(unittest.TestCase):
    """The requests the test LM server records hold the demos, from both engines."""

    def setUp(self):
        self.lm = LMServer(self)
        patcher = mock.patch.dict(os.environ, {KEY_ENV: "sk-demos"})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.w = InProcessWorker(self)

    def run_on(self, engine: str, spec: dict, inputs: dict, **args) -> list[dict]:
        """The messages of each request one execution on ``engine`` sent."""
        self.lm.reset()
        got = self.w.ok("configure_lm", {"provider": "openai", "model": "test-model", "base_url": self.lm.url,
                                         "api_key_env": KEY_ENV, "engine": engine})
        self.assertEqual(got["engine"], engine)
        self.w.ok("execute_program", {"spec": spec, "inputs": inputs, **args})
        return [r["messages"] for r in self.lm.requests()]

    def test_native(self):
        for kind in ("predict", "chain_of_thought"):
            with self.subTest(kind=kind):
                spec = with_demos(RAG, RAG_DEMOS, kind)
                (messages,) = self.run_on("native", spec, RAG_INPUTS)
                self.assertEqual(messages[1:-1], demo_messages(CompiledSpec(spec)))

    def test_dspy_and_native_send_the_same_demos(self):
        require_dspy(self)
        for kind in ("predict", "chain_of_thought"):
            with self.subTest(kind=kind):
                spec = with_demos(RAG, RAG_DEMOS, kind)
                (by_dspy,) = self.run_on("dspy", spec, RAG_INPUTS)
                (by_native,) = self.run_on("native", spec, RAG_INPUTS)
                self.assertEqual(len(by_dspy), 6, "system, two demo pairs, the input")
                self.assertEqual(by_dspy, by_native, "DSPy's ChatAdapter's messages, the system message included")

    def test_dspys_rag_program_as_its_tutorial_writes_it(self):
        """Untyped fields, a list of passages in ``context``, incomplete demos: both engines
        send DSPy's messages (a numbered list of «passages», the incomplete demos first)."""
        require_dspy(self)
        for kind, demos in (("predict", UNTYPED_RAG_DEMOS[:-1]), ("chain_of_thought", UNTYPED_RAG_DEMOS)):
            with self.subTest(kind=kind):
                spec = with_demos(UNTYPED_RAG, demos, kind)
                (by_dspy,) = self.run_on("dspy", spec, UNTYPED_RAG_INPUTS)
                (by_native,) = self.run_on("native", spec, UNTYPED_RAG_INPUTS)
                self.assertEqual(by_dspy, by_native, "DSPy's ChatAdapter's messages, the system message included")
                self.assertIn("[[ ## context ## ]]\n[1] «Go is a language.»\n[2] «It has goroutines.»", by_native[-1]["content"])
                self.assertTrue(by_native[1]["content"].startswith(INCOMPLETE_DEMO_PREFIX))

    def test_react(self):
        """The demos go to ReAct's extraction step (trajectory and reasoning not supplied),
        on both engines, which send the same requests; no step shows them."""
        require_dspy(self)
        spec = with_demos(RAG, RAG_DEMOS, "react")
        tools = [{"name": "search", "description": "Searches.", "schema": {"type": "object", "properties": {"q": {"type": "string"}}}}]
        self.w.tools["search"] = lambda args: {"hits": [args.get("q")]}
        sent = {}
        for engine in ("dspy", "native"):
            with self.subTest(engine=engine):
                requests = sent[engine] = self.run_on(engine, spec, RAG_INPUTS, tools=tools, max_iters=2)
                self.assertGreaterEqual(len(requests), 2, "steps, then the outputs")
                *steps, final = requests
                for step in steps:
                    self.assertNotIn("Who wrote it?", str(step), "no demo in a step")
                demos = [m for m in final[1:-1]]
                self.assertEqual([m["role"] for m in demos], ["user", "assistant"] * 2)
                self.assertIn("[[ ## question ## ]]\nWho wrote it?", demos[0]["content"])
                self.assertIn("[[ ## answer ## ]]\nAnn", demos[1]["content"])
                self.assertTrue(demos[0]["content"].startswith(INCOMPLETE_DEMO_PREFIX))
                self.assertIn("[[ ## reasoning ## ]]\nNot supplied for this particular example.", demos[1]["content"])
        self.assertEqual(sent["native"], sent["dspy"], "dspy.ReAct's requests")


if __name__ == "__main__":
    unittest.main()
