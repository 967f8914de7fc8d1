"""The engines' cross-check for ``react`` programs: the test LM server (``internal/lmtest``)
replies with the same scripted steps to both engines, and the native engine sends exactly
the requests ``dspy.ReAct`` (DSPy 3.4.1, default ChatAdapter) sends, reads the same tool
calls from the replies, and gives the same outputs and trajectory. The dspy half needs
dspy (:func:`~tests.lmserver.require_dspy`); the native half alone runs anywhere."""

from __future__ import annotations

import inspect
import json
import os
import unittest
from unittest import mock

from dspgo_worker.chat_format import INCOMPLETE_DEMO_PREFIX, build_messages
from dspgo_worker.errors import WorkerError
from dspgo_worker.react import extract_spec, format_trajectory, step_instructions, step_spec
from dspgo_worker.spec import CompiledSpec

from .helpers import InProcessWorker
from .lmserver import LMServer, require_dspy
from .test_spec import spec_of

KEY_ENV = "DSPGO_TEST_REACT_ENGINES_KEY"

#: A react program with instructions, a typed output and a demo (which goes to the extraction).
SPEC = {
    **spec_of([("question", "str")], [("answer", "str"), ("confidence", "float")], kind="react"),
    "instructions": "Answer the question about a book.\nUse the tools.",
    "demos": [{"inputs": {"question": "Who wrote Emma?"}, "outputs": {"answer": "Jane Austen", "confidence": 0.9}}],
}
INPUTS = {"question": "Who wrote the Go book?"}
TOOLS = [
    {"name": "search", "description": "Searches the library.\nReturns hits.",
     "schema": {"type": "object", "properties": {"q": {"type": "string", "description": "the query"}}, "required": ["q"]}},
    {"name": "lookup", "description": "Looks a book up.", "schema": {"type": "object", "properties": {"title": {"type": "string"}}}},
    {"name": "broken", "description": "", "schema": {}},
]


def step(thought: str, tool: str, args: dict) -> str:
    """A ChatAdapter reply to a ReAct step."""
    return (f"[[ ## next_thought ## ]]\n{thought}\n\n[[ ## next_tool_name ## ]]\n{tool}\n\n"
            f"[[ ## next_tool_args ## ]]\n{json.dumps(args)}\n\n[[ ## completed ## ]]\n")


#: The extraction's reply: reasoning, then the outputs.
EXTRACT = ("[[ ## reasoning ## ]]\nThe lookup names the authors.\n\n[[ ## answer ## ]]\nDonovan and Kernighan\n\n"
           "[[ ## confidence ## ]]\n0.75\n\n[[ ## completed ## ]]\n")
#: Two tool calls, a failing one, finish, then the extraction.
REPLIES = [
    step("I should search.", "search", {"q": "Go book"}),
    step("Look the first hit up.", "lookup", {"title": "The Go Programming Language"}),
    step("Try the broken one.", "broken", {}),
    step("I know enough.", "finish", {}),
    EXTRACT,
]


def broken(args: dict) -> dict:
    raise WorkerError("unavailable", "the catalogue is down")


class ReactEnginesTest(unittest.TestCase):
    def setUp(self):
        self.lm = LMServer(self)
        patcher = mock.patch.dict(os.environ, {KEY_ENV: "sk-react"})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.w = InProcessWorker(self)
        self.w.tools["search"] = lambda args: {"hits": ["The Go Programming Language", "Go in Action"], "query": args["q"]}
        self.w.tools["lookup"] = lambda args: ["Alan Donovan", "Brian Kernighan"]
        self.w.tools["broken"] = broken

    def run_on(self, engine: str, replies: list[str], model: str = "test-model", spec: dict | None = None,
               **args) -> tuple[dict, list[dict]]:
        """One execution on ``engine`` of ``spec`` (default :data:`SPEC`) answered by
        ``replies``: its result and the messages of each request it sent."""
        self.lm.reset()
        got = self.w.ok("configure_lm", {"provider": "openai", "model": model, "base_url": self.lm.url,
                                         "api_key_env": KEY_ENV, "engine": engine})
        self.assertEqual(got["engine"], engine)
        self.lm.script(*replies)
        result = self.w.ok("execute_program", {"spec": spec or SPEC, "inputs": INPUTS, "tools": TOOLS, **args})
        return result, [r["messages"] for r in self.lm.requests()]

    def check_native(self, result: dict, requests: list[dict], steps: int) -> None:
        """What the native engine's run shows of DSPy's ReAct, whichever engine it is
        compared with."""
        self.assertEqual(len(requests), steps + 1, "the steps, then the extraction")
        system = requests[0][0]["content"]
        self.assertIn("`next_tool_name` (Literal['search', 'lookup', 'broken', 'finish'])", system)
        self.assertIn(step_instructions(CompiledSpec(SPEC), TOOLS).splitlines()[-1], system)
        self.assertIn("(1) search, whose description is <desc>Searches the library.  Returns hits.</desc>. It takes arguments "
                      "{'q': {'type': 'string', 'description': 'the query'}}.", system)
        self.assertIn("(3) broken. It takes arguments {}.", system)
        self.assertEqual(requests[0][-1]["content"].split("\n\n")[1], "[[ ## trajectory ## ]]", "no trajectory yet")
        extraction = requests[-1]
        self.assertIn("`reasoning`", extraction[0]["content"])
        self.assertTrue(extraction[1]["content"].startswith(INCOMPLETE_DEMO_PREFIX), "the demo, without trajectory and reasoning")
        self.assertIn("[[ ## thought_0 ## ]]\nI should search.", extraction[-1]["content"])
        self.assertEqual(result["outputs"], {"answer": "Donovan and Kernighan", "confidence": 0.75})

    def test_native_and_dspy_send_the_same_requests(self):
        """Two tool calls, a tool error, finish and the extraction: the same five requests
        from both engines, the same outputs and trajectory."""
        require_dspy(self)
        by_dspy, dspy_requests = self.run_on("dspy", REPLIES)
        by_native, native_requests = self.run_on("native", REPLIES)
        self.check_native(by_native, native_requests, 4)
        self.assertEqual(len(dspy_requests), len(native_requests))
        for i, (want, got) in enumerate(zip(dspy_requests, native_requests)):
            self.assertEqual(want, got, f"request {i}: dspy.ReAct's messages")
        self.assertEqual(by_native["outputs"], by_dspy["outputs"])
        self.assertEqual(by_native["trajectory"], by_dspy["trajectory"])
        self.assertEqual(by_native["trajectory"], [
            {"tool": "search", "args": {"q": "Go book"},
             "observation": {"hits": ["The Go Programming Language", "Go in Action"], "query": "Go book"}},
            {"tool": "lookup", "args": {"title": "The Go Programming Language"}, "observation": ["Alan Donovan", "Brian Kernighan"]},
            {"tool": "broken", "args": {}, "observation": {"error": {"code": "unavailable", "message": "the catalogue is down"}}},
        ])
        last = native_requests[-1][-1]["content"]
        self.assertIn('[[ ## observation_0 ## ]]\n{"hits": ["The Go Programming Language", "Go in Action"], "query": "Go book"}', last)
        self.assertIn("[[ ## observation_1 ## ]]\n[1] «Alan Donovan»\n[2] «Brian Kernighan»", last)
        self.assertIn('[[ ## observation_2 ## ]]\n{"error": {"code": "unavailable", "message": "the catalogue is down"}}', last)
        self.assertIn("[[ ## tool_name_3 ## ]]\nfinish\n\n[[ ## tool_args_3 ## ]]\n{}\n\n[[ ## observation_3 ## ]]\nCompleted.", last)

    def test_step_instructions_replace_reacts(self):
        """An optimized program's step instructions (what MIPROv2 wrote for ReAct.react):
        every step's system message holds them in place of ReAct's text, as DSPy reads them
        (cleaned), the extraction keeps the program's; the same requests on both engines."""
        spec = {**SPEC, "step_instructions": "  Pick the tool that answers best.\n    Then finish.\n"}
        by_native, native_requests = self.run_on("native", REPLIES, spec=spec)
        for i, messages in enumerate(native_requests[:-1]):
            self.assertTrue(messages[0]["content"].endswith("\nIn adhering to this structure, your objective is: \n"
                                                            "        Pick the tool that answers best.\n        Then finish."), f"step {i}")
            self.assertNotIn("You are an Agent", messages[0]["content"])
            self.assertIn("`next_tool_name` (Literal['search', 'lookup', 'broken', 'finish'])", messages[0]["content"])
        self.assertIn("Answer the question about a book.", native_requests[-1][0]["content"], "the extraction's")
        self.assertEqual(by_native["outputs"], {"answer": "Donovan and Kernighan", "confidence": 0.75})
        require_dspy(self)
        by_dspy, dspy_requests = self.run_on("dspy", REPLIES, spec=spec)
        self.assertEqual(len(dspy_requests), len(native_requests))
        for i, (want, got) in enumerate(zip(dspy_requests, native_requests)):
            self.assertEqual(want, got, f"request {i}: dspy.ReAct's messages")
        self.assertEqual(by_native["outputs"], by_dspy["outputs"])
        self.assertEqual(by_native["trajectory"], by_dspy["trajectory"])

    def test_demos_of_the_steps_and_the_extraction(self):
        """An optimized program's demos (what BootstrapFewShot put on ReAct.react and
        ReAct.extract.predict): every step shows the step demos (a first step's empty
        trajectory, a later one's, one without a trajectory, which DSPy shows as
        incomplete, first), the extraction its demos with their trajectory and reasoning;
        the same requests on both engines."""
        first = "[[ ## thought_0 ## ]]\nI should search.\n\n[[ ## tool_name_0 ## ]]\nsearch"
        spec = {**SPEC, "step_demos": [
            {"inputs": {"question": "Who wrote Emma?"}, "trajectory": "",
             "outputs": {"next_thought": "Search the library.", "next_tool_name": "search", "next_tool_args": {"q": "Emma"}}},
            {"inputs": {"question": "Who wrote Emma?"}, "trajectory": first,
             "outputs": {"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}}},
            {"inputs": {"question": "Who wrote Dune?"},
             "outputs": {"next_thought": "Look it up.", "next_tool_name": "lookup", "next_tool_args": {"title": "Dune", "n": 1.5}}},
        ], "demos": [
            *SPEC["demos"],
            {"inputs": {"question": "Who wrote Emma?"}, "trajectory": first, "reasoning": "The search names Austen.",
             "outputs": {"answer": "Jane Austen", "confidence": 1.0}},
        ]}
        by_native, native_requests = self.run_on("native", REPLIES, spec=spec)
        for i, messages in enumerate(native_requests[:-1]):
            self.assertEqual(len(messages), 2 + 2 * 3, f"step {i}: the system message, three demos, the step's input")
            self.assertTrue(messages[1]["content"].startswith(INCOMPLETE_DEMO_PREFIX), f"step {i}: the demo without a trajectory first")
            self.assertIn('[[ ## next_tool_args ## ]]\n{"title": "Dune", "n": 1.5}', messages[2]["content"])
            self.assertEqual(messages[3]["content"], "[[ ## question ## ]]\nWho wrote Emma?\n\n[[ ## trajectory ## ]]",
                             "a first step's empty trajectory: a complete demo")
            self.assertIn(f"[[ ## trajectory ## ]]\n{first}", messages[5]["content"])
        extraction = native_requests[-1]
        self.assertEqual(len(extraction), 2 + 2 * 2)
        self.assertTrue(extraction[1]["content"].startswith(INCOMPLETE_DEMO_PREFIX), "the demo without trajectory and reasoning")
        self.assertIn(f"[[ ## trajectory ## ]]\n{first}", extraction[3]["content"])
        self.assertTrue(extraction[4]["content"].startswith("[[ ## reasoning ## ]]\nThe search names Austen."))
        require_dspy(self)
        by_dspy, dspy_requests = self.run_on("dspy", REPLIES, spec=spec)
        self.assertEqual(len(dspy_requests), len(native_requests))
        for i, (want, got) in enumerate(zip(dspy_requests, native_requests)):
            self.assertEqual(want, got, f"request {i}: dspy.ReAct's messages")
        self.assertEqual(by_native["outputs"], by_dspy["outputs"])
        self.assertEqual(by_native["trajectory"], by_dspy["trajectory"])

    def test_max_iters_bounds_the_loop(self):
        """max_iters 2: two steps (no finish), then the extraction, on both engines."""
        require_dspy(self)
        replies = [*REPLIES[:2], EXTRACT]
        by_dspy, dspy_requests = self.run_on("dspy", replies, max_iters=2)
        by_native, native_requests = self.run_on("native", replies, max_iters=2)
        self.check_native(by_native, native_requests, 2)
        self.assertEqual(dspy_requests, native_requests, "dspy.ReAct's messages")
        self.assertEqual([s["tool"] for s in by_native["trajectory"]], ["search", "lookup"])
        self.assertEqual(by_native["trajectory"], by_dspy["trajectory"])
        self.assertEqual(by_native["outputs"], by_dspy["outputs"])
        self.assertNotIn("observation_2", native_requests[-1][-1]["content"])

    def test_a_trajectory_too_long_for_the_context_window_is_truncated(self):
        """With a context window that the third step's prompt overflows, both engines drop
        the oldest tool call from the trajectory and ask again, as dspy.ReAct does: the
        same requests (the refused ones included), outputs and trajectory."""
        require_dspy(self)
        _, full = self.run_on("native", REPLIES)
        tokens = [sum(len(m["content"].split()) for m in messages) for messages in full]
        window = tokens[2] - 1
        model = f"test-model+max_context={window}"
        by_dspy, dspy_requests = self.run_on("dspy", REPLIES, model=model)
        statuses = [r["status"] for r in self.lm.requests()]
        by_native, native_requests = self.run_on("native", REPLIES, model=model)
        self.assertEqual([r["status"] for r in self.lm.requests()], statuses)
        self.assertIn(400, statuses, "a prompt overflowed the window")
        self.assertEqual(len(dspy_requests), len(native_requests))
        for i, (want, got) in enumerate(zip(dspy_requests, native_requests)):
            self.assertEqual(want, got, f"request {i}: dspy.ReAct's messages")
        self.assertEqual(by_native["outputs"], by_dspy["outputs"])
        self.assertEqual(by_native["trajectory"], by_dspy["trajectory"])
        self.assertEqual(len(by_native["trajectory"]), 3, "every call, truncated or not")
        self.assertNotIn("[[ ## observation_0 ## ]]", native_requests[-1][-1]["content"], "the oldest call was dropped")

    def test_what_fails_dspy_fails_both(self):
        """A list of numbers observed (DSPy 3.4.1's numbered list takes none), and a step
        reply that does not parse, after the JSONAdapter request DSPy's ChatAdapter falls
        back to (the same on both engines): the run fails on both engines."""
        require_dspy(self)
        self.w.tools["lookup"] = lambda args: [1, 2]
        retried = {}
        for engine in ("dspy", "native"):
            with self.subTest(engine=engine):
                self.lm.reset()
                self.w.ok("configure_lm", {"provider": "openai", "model": "test-model", "base_url": self.lm.url,
                                           "api_key_env": KEY_ENV, "engine": engine})
                self.lm.script(REPLIES[1], "no step here", "no step either")
                error = self.w.error("execute_program", {"spec": SPEC, "inputs": INPUTS, "tools": TOOLS})
                self.assertIn(engine == "native" and "cannot write a list holding int" or "TypeError", error["message"])
                self.lm.reset()
                self.lm.script("no step here", "no step either")
                error = self.w.error("execute_program", {"spec": SPEC, "inputs": INPUTS, "tools": TOOLS})
                self.assertEqual(error["code"], "internal")
                requests = self.lm.requests()
                self.assertEqual(len(requests), 2, "DSPy's JSONAdapter asks again")
                self.assertEqual(requests[1]["format"], "json")
                retried[engine] = json.loads(requests[1]["body"])["messages"]
        self.assertEqual(retried["native"], retried["dspy"], "the same JSONAdapter request")

    def test_native_alone(self):
        """The native engine's run, without dspy: its requests show DSPy's ReAct."""
        result, requests = self.run_on("native", REPLIES)
        self.check_native(result, requests, 4)
        self.assertEqual(len(result["trajectory"]), 3)

    def test_native_stream(self):
        """A streamed react run sends the same requests; the extraction's outputs are
        streamed, not its reasoning."""
        _, plain = self.run_on("native", REPLIES)
        self.lm.reset()
        self.lm.script(*REPLIES)
        self.w.auto_credit = 16
        request_id = self.w.call("execute_program", {"spec": SPEC, "inputs": INPUTS, "tools": TOOLS}, stream=16)
        reply = self.w.response(request_id)
        self.assertTrue(reply["success"], reply)
        self.assertEqual([r["messages"] for r in self.lm.requests()], plain)
        fields = {c["data"]["field"] for c in self.w.chunks.get(request_id, [])}
        self.assertEqual(fields, {"answer", "confidence"})
        self.assertEqual(reply["result"]["outputs"], {"answer": "Donovan and Kernighan", "confidence": 0.75})


class ReactSpecTest(unittest.TestCase):
    def test_a_field_named_as_one_react_adds(self):
        spec = spec_of([("trajectory", "str")], [("answer", "str")], kind="react")
        for make in (lambda c: step_spec(c, TOOLS), extract_spec):
            with self.assertRaisesRegex(WorkerError, "react: .*trajectory.*dspy.ReAct adds the input trajectory"):
                make(CompiledSpec(spec))
        spec = spec_of([("question", "str")], [("reasoning", "str")], kind="react")
        with self.assertRaisesRegex(WorkerError, "react: .*reasoning"):
            extract_spec(CompiledSpec(spec))


class AgainstDSPyReActTest(unittest.TestCase):
    """The step's and the extraction's signatures are those of the ``dspy.ReAct`` the dspy
    engine builds for the same program and tools."""

    def test_signatures(self):
        require_dspy(self)
        from dspgo_worker.dspy_engine import ENGINE, import_dspy

        dspy = import_dspy()
        specs = {
            "instructions": SPEC,
            "none": spec_of([("question", "str"), ("k", "int")], [("answer", "list[str]")], kind="react"),
            "indented": {**SPEC, "instructions": "  First line.\n    Indented more.\n  Back.\n"},
        }
        toolsets = {
            "tools": TOOLS,
            "none": [],
            "a host finish": [TOOLS[0], {"name": "finish", "description": "Host's own.", "schema": {}}, TOOLS[1]],
        }
        for spec_name, spec in specs.items():
            for tools_name, tools in toolsets.items():
                with self.subTest(spec=spec_name, tools=tools_name):
                    c = CompiledSpec(spec)
                    react = dspy.ReAct(ENGINE.signature(dspy, c), tools=ENGINE.tools(dspy, tools, None, []))
                    for ours, theirs in ((step_spec(c, tools), react.react.signature), (extract_spec(c), react.extract.predict.signature)):
                        self.assertEqual(inspect.cleandoc(ours.instructions), theirs.instructions, "as DSPy reads them")
                        self.assertEqual([f.name for f in ours.inputs], list(theirs.input_fields))
                        self.assertEqual([f.name for f in ours.outputs], list(theirs.output_fields))
                        adapter = dspy.ChatAdapter()
                        self.assertEqual(build_messages(ours, {})[0]["content"],
                                         adapter.format(theirs, demos=[], inputs={})[0]["content"], "the system message")


class TrajectoryFormatTest(unittest.TestCase):
    def test_values_as_dspy_writes_a_str_fields(self):
        trajectory = {"thought_0": "t", "tool_args_0": {"a": [1, 2]}, "observation_0": [{"k": 1}, ["x"], "y\nz"],
                      "observation_1": [], "observation_2": 3, "observation_3": None}
        self.assertEqual(format_trajectory(trajectory), "\n\n".join([
            "[[ ## thought_0 ## ]]\nt",
            '[[ ## tool_args_0 ## ]]\n{"a": [1, 2]}',
            "[[ ## observation_0 ## ]]\n[1] «{'k': 1}»\n[2] «['x']»\n[3] «««\n    y\n    z\n»»»",
            "[[ ## observation_1 ## ]]\nN/A",
            "[[ ## observation_2 ## ]]\n3",
            "[[ ## observation_3 ## ]]\nNone",
        ]))
        self.assertEqual(format_trajectory({}), "")
        with self.assertRaisesRegex(WorkerError, "cannot write a list holding int"):
            format_trajectory({"observation_0": [1, 2]})


if __name__ == "__main__":
    unittest.main()
