"""``compile_program`` (dspgo_worker.optimize): its argument checks on any interpreter, and
DSPy's optimizers against the test LM server's ``needs_demos`` model in the dspy
environment, the metric answered by this test as the host."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import unittest
from unittest import mock

from .helpers import InProcessWorker, WorkerProcess
from .lmserver import DSPY_EXPECTED_ENV, LMServer, dspy_importable, require_dspy
from .test_spec import spec_of

KEY_ENV = "DSPGO_TEST_OPTIMIZE_KEY"
SPEC = spec_of([("food", "str")], [("category", "str")])


def example(food: str, category: str) -> dict:
    return {"inputs": {"food": food}, "outputs": {"category": category}}


#: Pairs that share a word, so each teaches the other (as in python/compile_test.go).
TRAINSET = [
    example("ripe apple", "fruit"), example("apple juice", "fruit"),
    example("raw carrot", "vegetable"), example("carrot soup", "vegetable"),
]


def exact(args: dict) -> dict:
    """The metric: 1 when the predicted category is the example's."""
    return {"score": float(args["prediction"]["category"] == args["example"]["outputs"]["category"])}


#: MIPROv2 with few enough trials and candidates to take about a second on the test LM.
MIPRO_V2 = {"name": "MIPROv2", "num_trials": 6, "num_candidates": 3, "max_bootstrapped_demos": 1,
            "max_labeled_demos": 2, "minibatch_size": 0}
#: The validation set the MIPROv2 runs score candidates on.
VALSET = [example("apple tart", "fruit"), example("carrot cake", "vegetable")]


def compile_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("dspgo-compile-")]


def require_optuna(testcase: unittest.TestCase) -> None:
    """Skip the test when optuna (which MIPROv2 needs) cannot be imported here, or fail it
    where the run expects the dspy environment, whose lock includes optuna."""
    if importlib.util.find_spec("optuna") is not None:
        return
    if os.environ.get(DSPY_EXPECTED_ENV) == "1":
        testcase.fail("optuna cannot be imported, but this run expects the dspy environment (run make deps)")
    testcase.skipTest("optuna is not installed in this interpreter")


class ArgumentTest(unittest.TestCase):
    """Checked before dspy is imported: the same on every interpreter."""

    def setUp(self):
        self.w = InProcessWorker(self)

    def compile_error(self, **args) -> dict:
        full = {"spec": SPEC, "optimizer": {"name": "LabeledFewShot"}, "trainset": TRAINSET, **args}
        return self.w.error("compile_program", full)

    def test_bad_arguments_are_invalid_naming_what(self):
        for args, words in [
            ({"optimizer": {"name": "COPRO"}}, "optimizer.name 'COPRO' is unknown"),
            ({"optimizer": {"name": "LabeledFewShot", "max_rounds": 2}}, "takes no 'max_rounds'"),
            ({"optimizer": {"name": "BootstrapFewShot", "max_labeled_demos": -1}}, "optimizer.max_labeled_demos"),
            ({"optimizer": {"name": "BootstrapFewShot", "metric_threshold": "high"}}, "optimizer.metric_threshold"),
            ({"optimizer": {"name": "MIPROv2", "auto": "light"}}, "MIPROv2 needs a metric"),
            ({"optimizer": {"name": "MIPROv2", "num_trials": 3}, "metric": True}, "num_trials and num_candidates"),
            ({"optimizer": {"name": "MIPROv2", "auto": "light", "num_trials": 3, "num_candidates": 2}, "metric": True},
             "not both"),
            ({"optimizer": {"name": "MIPROv2", "auto": "fast"}, "metric": True}, "optimizer.auto"),
            ({"trainset": []}, "trainset is empty"),
            ({"trainset": [{"inputs": {"food": "x"}, "outputs": {}}]}, "trainset example 0 holds no output"),
            ({"valset": [{"inputs": {}, "outputs": {"category": "y"}}]}, "valset example 0 holds no input"),
            ({"trainset": [{"inputs": {"food": [1]}, "outputs": {}}]}, "trainset: demo 0: input food[0]"),
            ({"spec": {**SPEC, "kind": "react"}}, "a react program cannot be compiled"),
        ]:
            with self.subTest(words=words):
                error = self.compile_error(**args)
                self.assertEqual(error["code"], "invalid_argument", error)
                self.assertIn(words, error["message"])

    def test_without_dspy_it_is_a_failed_precondition_naming_dspy(self):
        if dspy_importable():
            self.skipTest("dspy is importable here")
        error = self.compile_error()
        self.assertEqual(error["code"], "failed_precondition")
        self.assertIn("dspy", error["message"])


class OptimizeTest(unittest.TestCase):
    """The optimizers through the real dspy against the needs_demos model."""

    def setUp(self):
        require_dspy(self)
        self.lm = LMServer(self)
        patcher = mock.patch.dict(os.environ, {KEY_ENV: "sk-test"})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.w = InProcessWorker(self)
        self.w.ok("configure_lm", {"provider": "openai", "model": "test-model+needs_demos", "base_url": self.lm.url,
                                   "api_key_env": KEY_ENV, "engine": "dspy"})

    def compile(self, optimizer: dict, metric: bool = True, valset: list | None = None, **fields) -> dict:
        args = {"spec": SPEC, "optimizer": optimizer, "trainset": TRAINSET, "metric": metric}
        if valset is not None:
            args["valset"] = valset
        return self.w.request("compile_program", args, **fields)

    def test_labeled_few_shot_makes_the_trainset_demos(self):
        reply = self.compile({"name": "LabeledFewShot", "k": 3}, metric=False)
        self.assertTrue(reply["success"], reply)
        result = reply["result"]
        self.assertEqual(len(result["demos"]), 3)
        for demo in result["demos"]:
            self.assertIn(demo, TRAINSET)
        self.assertEqual(result["instructions"], "", "the spec's instructions, unchanged")
        self.assertNotIn("score", result)
        self.assertEqual(self.lm.requests(), [], "LabeledFewShot calls no LM")

    def test_bootstrap_calls_the_hosts_metric_and_streams_progress(self):
        self.w.tools["metric"] = exact
        self.w.auto_credit = 16
        reply = self.compile({"name": "BootstrapFewShot", "max_bootstrapped_demos": 2, "max_labeled_demos": 4}, stream=16)
        self.assertTrue(reply["success"], reply)
        calls = self.w.calls_seen
        self.assertGreaterEqual(len(calls), 2)
        first = calls[0]["args"]
        self.assertEqual((first["set"], first["index"], first["trace"]), ("trainset", 0, True))
        self.assertEqual(first["example"], TRAINSET[0])
        self.assertEqual(first["prediction"], {"category": "fruit"}, "taught by apple juice")
        demos = reply["result"]["demos"]
        self.assertEqual(len(demos), 4, "2 bootstrapped, 2 labeled")
        progress = [c["data"] for c in self.w.chunks.get(reply["id"], [])]
        self.assertEqual([p["event"] for p in progress], ["metric"] * len(calls))
        self.assertEqual(progress[-1]["calls"], len(calls))
        self.assertEqual(progress[-1]["mean"], 1.0)
        self.assertEqual(compile_threads(), [])

    def test_optional_inputs_stay_as_the_examples_hold_them(self):
        """An Optional input an example leaves out stays out of the demos the optimizer makes
        from it (bootstrapped from its trace, or labeled), and one it holds as null stays
        null: the demos are the examples' own, and the spec takes them."""
        from dspgo_worker.spec import CompiledSpec

        spec = spec_of([("food", "str"), ("hint", "Optional[str]")], [("category", "str")])
        trainset = [{"inputs": {"food": "ripe apple"}, "outputs": {"category": "fruit"}},
                    {"inputs": {"food": "apple juice", "hint": None}, "outputs": {"category": "fruit"}},
                    {"inputs": {"food": "raw carrot", "hint": "a root"}, "outputs": {"category": "vegetable"}},
                    {"inputs": {"food": "carrot soup"}, "outputs": {"category": "vegetable"}}]
        self.w.tools["metric"] = exact
        self.w.auto_credit = 16
        reply = self.w.request("compile_program", {"spec": spec, "optimizer": {"name": "BootstrapFewShot", "max_bootstrapped_demos": 2,
                               "max_labeled_demos": 4}, "trainset": trainset, "metric": True}, stream=16)
        self.assertTrue(reply["success"], reply)
        demos = reply["result"]["demos"]
        self.assertEqual(len(demos), 4)
        for demo in demos:
            self.assertIn(demo, trainset)
        self.assertEqual(self.w.calls_seen[0]["args"]["example"], trainset[0], "the metric's example, as given")
        CompiledSpec({**spec, "demos": demos})

    def test_the_optimizer_runs_with_the_configured_dspy_adapter(self):
        """An LM configured with dspy_adapter json optimizes with dspy.JSONAdapter, as
        its programs run: every request of the compile is in its format."""
        self.w.ok("configure_lm", {"provider": "openai", "model": "test-model+needs_demos", "base_url": self.lm.url,
                                   "api_key_env": KEY_ENV, "engine": "dspy", "dspy_adapter": "json"})
        self.w.tools["metric"] = exact
        self.w.auto_credit = 16
        reply = self.compile({"name": "BootstrapFewShot", "max_bootstrapped_demos": 2, "max_labeled_demos": 2}, stream=16)
        self.assertTrue(reply["success"], reply)
        formats = {r["format"] for r in self.lm.requests()}
        self.assertEqual(formats, {"json"})

    def test_random_search_reports_each_evaluation(self):
        self.w.tools["metric"] = exact
        self.w.auto_credit = 64
        reply = self.compile({"name": "BootstrapFewShotWithRandomSearch", "num_candidate_programs": 1,
                              "max_bootstrapped_demos": 1, "max_labeled_demos": 2}, stream=64)
        self.assertTrue(reply["success"], reply)
        evaluations = [c["data"] for c in self.w.chunks[reply["id"]] if c["data"]["event"] == "evaluation"]
        self.assertEqual(len(evaluations), 4, "zero-shot, labeled, unshuffled, one shuffle")
        self.assertEqual(evaluations[0]["score"], 0.0, "zero-shot: no demo teaches")
        self.assertEqual(reply["result"]["score"], evaluations[-1]["best"])

    def test_a_metric_error_fails_the_compile_with_its_code(self):
        from dspgo_worker.errors import WorkerError

        def failing(args):
            raise WorkerError("resource_exhausted", "metric quota")

        self.w.tools["metric"] = failing
        reply = self.compile({"name": "BootstrapFewShot"})
        self.assertFalse(reply["success"])
        self.assertEqual(reply["error"]["code"], "resource_exhausted")
        self.assertIn("metric quota", reply["error"]["message"])
        self.assertEqual(len(self.w.calls_seen), 1, "the optimizer stopped at the first failure")

    def test_cancel_stops_the_optimizer(self):
        request_id = self.w.call("compile_program", {"spec": SPEC, "optimizer": {"name": "BootstrapFewShot"},
                                                     "trainset": TRAINSET, "metric": True})
        self.w.wait_until(lambda: self.w.calls, what="the first metric call")
        lm_calls = len(self.lm.requests())
        self.assertEqual(self.w.ok("cancel", {"id": request_id})["state"], "running")
        reply = self.w.response(request_id)
        self.assertEqual(reply["error"]["code"], "canceled")
        self.assertEqual(compile_threads(), [], "the optimizer's thread ended before the answer")
        self.assertEqual(len(self.lm.requests()), lm_calls, "no LM call after the cancel")
        self.assertEqual(len(self.w.calls_seen), 1)

    def test_mipro_v2_proposes_instructions(self):
        require_optuna(self)
        self.w.tools["metric"] = exact
        reply = self.compile(MIPRO_V2, valset=VALSET)
        self.assertTrue(reply["success"], reply)
        result = reply["result"]
        fields = {f["name"] for r in self.lm.requests() for f in r.get("fields") or []}
        self.assertIn("proposed_instruction", fields, "the test LM answered the instruction proposer")
        self.assertTrue(result["instructions"].startswith("proposed_instruction "), "the proposed instruction won")
        self.assertEqual(result["score"], 100.0, "with a demo set that teaches the valset")
        self.assertEqual(len(result["demos"]), 2)

    def test_mipro_v2_without_optuna_is_a_failed_precondition_naming_optuna(self):
        self.w.tools["metric"] = exact
        with mock.patch.dict(sys.modules, {"optuna": None}):  # import optuna fails, find_spec finds none
            error = self.w.error("compile_program", {"spec": SPEC, "optimizer": {"name": "MIPROv2", "auto": "light"},
                                                     "trainset": TRAINSET, "metric": True})
        self.assertEqual(error["code"], "failed_precondition")
        self.assertIn("optuna", error["message"])
        self.assertEqual(self.w.calls_seen, [], "refused before the optimizer started")
        self.assertEqual(self.lm.requests(), [])

    def test_the_dummy_lm_cannot_serve_dspy(self):
        self.w.ok("configure_lm", {"provider": "dummy", "name": "offline"})
        reply = self.compile({"name": "LabeledFewShot"}, metric=False)
        self.assertTrue(reply["success"], "the default LM is the test server's")
        error = self.w.error("compile_program", {"spec": SPEC, "optimizer": {"name": "LabeledFewShot"},
                                                 "trainset": TRAINSET, "lm": "offline"})
        self.assertEqual(error["code"], "failed_precondition")
        self.assertIn("dummy", error["message"])


class QuietTest(unittest.TestCase):
    """A compile's progress goes to the progress chunks: DSPy's prints, tqdm's bars and
    DSPy's narration reach no stderr line of a worker process, which holds JSON log
    records only; at debug level the prints and DSPy's INFO records are DEBUG records."""

    def test_a_compile_writes_only_log_records_on_stderr(self):
        require_dspy(self)
        require_optuna(self)
        lm = LMServer(self)
        with mock.patch.dict(os.environ, {KEY_ENV: "sk-test"}):
            worker = WorkerProcess(self, "--log-level", "debug")
        worker.tools["metric"] = exact
        reply = worker.request("configure_lm", {"provider": "openai", "model": "test-model+needs_demos", "base_url": lm.url,
                                                "api_key_env": KEY_ENV, "engine": "dspy"})
        self.assertTrue(reply["success"], reply)
        for optimizer in ({"name": "BootstrapFewShotWithRandomSearch", "num_candidate_programs": 1,
                           "max_bootstrapped_demos": 1, "max_labeled_demos": 2}, MIPRO_V2):
            reply = worker.request("compile_program", {"spec": SPEC, "optimizer": optimizer, "trainset": TRAINSET,
                                                       "valset": VALSET, "metric": True}, timeout=60)
            self.assertTrue(reply["success"], reply)
        worker.close_stdin()
        self.assertEqual(worker.wait_exit(), 0)

        records = []
        for line in worker.stderr_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                self.fail(f"a stderr line that is no log record: {line!r}")
            self.assertIsInstance(record, dict, line)
            records.append(record)
        printed = [r for r in records if r.get("source") == "print"]
        self.assertIn("Will attempt to bootstrap 1 candidate sets.", [r["msg"] for r in printed], "the random search's print")
        for r in printed:
            self.assertEqual(r["level"], "debug", r)
            self.assertIn(r["optimizer"], ("BootstrapFewShotWithRandomSearch", "MIPROv2"), r)
            self.assertIn("request_id", r)
        dspy_logs = [r for r in records if r["logger"].startswith("dspy.")]
        steps = [r for r in dspy_logs if "==> STEP 1: BOOTSTRAP FEWSHOT EXAMPLES <==" in r["msg"]]
        self.assertEqual([r["level"] for r in steps], ["debug"], "MIPROv2's narration, an INFO record of DSPy's, is DEBUG")
        self.assertTrue([r for r in dspy_logs if r["msg"].startswith("Average Metric")], "DSPy's Evaluate logs its score")
        self.assertFalse([r for r in dspy_logs if r["level"] == "info"], "DSPy's INFO records are DEBUG records")
        self.assertFalse([r for r in records if "it/s" in r["msg"] or "\r" in r["msg"]], "no tqdm bar")

if __name__ == "__main__":
    unittest.main()
