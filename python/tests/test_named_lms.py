"""Named LM configurations: configure_lm's ``name`` and execute_program's ``lm``."""

from __future__ import annotations

import json
import os
import unittest
from unittest import mock

from dspgo_worker.errors import WorkerError
from dspgo_worker.lmconfig import LMConfig
from dspgo_worker.programs import MAX_NAMED_LMS, ProgramState

from .helpers import InProcessWorker
from .lmserver import LMServer, dspy_importable, require_dspy
from .test_programs import QA, expected

KEY_ENV = "DSPGO_TEST_NAMED_LM_KEY"
SECRET = "sk-named-lm-test-key-0123456789"


class ProgramStateTest(unittest.TestCase):
    def test_names_live_beside_the_default(self):
        state = ProgramState()
        default = state.lm
        self.assertEqual(state.lm_named(""), default)
        self.assertEqual(state.lm_names(), {})
        fast, slow = LMConfig(provider="openai", model="fast"), LMConfig(provider="openai", model="slow")
        state.set_lm(fast, "fast")
        state.set_lm(slow, "slow")
        self.assertIs(state.lm_named("fast"), fast)
        self.assertIs(state.lm_named("slow"), slow)
        self.assertIs(state.lm, default, "a named configuration leaves the default alone")
        self.assertEqual(state.lm_names(), {"fast": fast, "slow": slow})

        other = LMConfig(provider="openai", model="other")
        state.set_lm(other)
        self.assertIs(state.lm, other)
        self.assertIs(state.lm_named("fast"), fast, "a new default leaves the names alone")
        faster = LMConfig(provider="openai", model="faster")
        state.set_lm(faster, "fast")
        self.assertIs(state.lm_named("fast"), faster, "a name's new configuration replaces its old one only")
        self.assertIs(state.lm_named("slow"), slow)

    def test_unknown_name_is_not_found_naming_it(self):
        state = ProgramState()
        with self.assertRaises(WorkerError) as caught:
            state.lm_named("fast")
        self.assertEqual(caught.exception.code, "not_found")
        self.assertEqual(str(caught.exception), 'LM "fast" is not configured (configure_lm with "name": "fast" sets it)')

    def test_a_worker_keeps_a_bounded_number_of_names(self):
        """No caller grows a worker's configurations without bound (Go's
        program.MaxNamedLMs, worded alike): a name past MAX_NAMED_LMS is
        resource_exhausted; a known name is replaced, and the default set, all the same."""
        state = ProgramState()
        for i in range(MAX_NAMED_LMS):
            state.set_lm(LMConfig(model=f"m{i}"), f"n{i}")
        with self.assertRaises(WorkerError) as caught:
            state.set_lm(LMConfig(model="x"), "one_more")
        self.assertEqual(caught.exception.code, "resource_exhausted")
        self.assertEqual(str(caught.exception),
                         f'a worker keeps at most {MAX_NAMED_LMS} named LM configurations: "one_more" would be one more (reset drops them)')
        state.set_lm(LMConfig(model="again"), "n0")
        state.set_lm(LMConfig(model="default"))
        self.assertEqual(state.lm_named("n0").model, "again")
        self.assertEqual(len(state.lm_names()), MAX_NAMED_LMS)
        state.reset()
        state.set_lm(LMConfig(model="x"), "one_more")

    def test_reset_drops_the_names_and_restores_the_dummy(self):
        state = ProgramState()
        dummy = state.lm
        state.set_lm(LMConfig(provider="openai", model="m"))
        state.set_lm(LMConfig(provider="openai", model="n"), "n")
        state.reset()
        self.assertIs(state.lm, dummy)
        self.assertEqual(state.lm_names(), {})
        with self.assertRaises(WorkerError):
            state.lm_named("n")


class NamedLMCommandsTest(unittest.TestCase):
    def setUp(self):
        self.w = InProcessWorker(self)
        self.spec_hash = self.w.ok("create_program", {"spec": QA})["spec_hash"]

    def execute(self, deadline_ms=None, **args):
        """The reply of an execution; with ``deadline_ms`` when given (for the slow one)."""
        fields = {} if deadline_ms is None else {"deadline_ms": deadline_ms}
        return self.w.request("execute_program", {"spec_hash": self.spec_hash, "inputs": {"question": "?"}, **args}, **fields)

    def test_each_execution_runs_with_the_configuration_it_names(self):
        self.w.ok("configure_lm", {"provider": "dummy", "delay_ms": 30_000, "name": "slow"})
        self.w.ok("configure_lm", {"provider": "dummy", "name": "quick"})
        for args in ({}, {"lm": ""}, {"lm": "quick"}):
            with self.subTest(args=args):
                reply = self.execute(**args)
                self.assertTrue(reply["success"], reply)
                self.assertEqual(reply["result"]["outputs"], expected(QA, {"question": "?"}), "the LM is not part of the outputs")
        self.assertEqual(self.execute(200, lm="slow")["error"]["code"], "deadline_exceeded", "the slow one's delay")

        # A new default leaves the names alone, and a name's new configuration replaces
        # only its own.
        self.w.ok("configure_lm", {"provider": "dummy", "delay_ms": 30_000})
        self.assertEqual(self.execute(200)["error"]["code"], "deadline_exceeded")
        self.assertTrue(self.execute(lm="quick")["success"])
        self.w.ok("configure_lm", {"provider": "dummy", "name": "slow"})
        self.assertTrue(self.execute(lm="slow")["success"])

    def test_stats_list_the_names_and_reset_drops_them(self):
        self.w.ok("configure_lm", {"provider": "openai", "model": "m-b", "engine": "native", "name": "b"})
        self.w.ok("configure_lm", {"provider": "dummy", "name": "a"})
        stats = self.w.ok("get_stats")
        self.assertEqual(stats["lm"], {"provider": "dummy", "model": ""}, "the default is unchanged")
        self.assertEqual(stats["lms"], {"a": {"provider": "dummy", "model": ""}, "b": {"provider": "openai", "model": "m-b"}})
        self.assertEqual(list(stats["lms"]), ["a", "b"], "sorted by name")
        self.w.ok("reset")
        self.assertEqual(self.w.ok("get_stats")["lms"], {})
        error = self.w.error("execute_program", {"spec": QA, "inputs": {"question": "?"}, "lm": "a"})
        self.assertEqual(error["code"], "not_found")
        self.assertIn('"a"', error["message"])

    def test_unknown_name_is_not_found_naming_it(self):
        error = self.execute(lm="nowhere")["error"]
        self.assertEqual(error["code"], "not_found")
        self.assertEqual(error["message"], 'LM "nowhere" is not configured (configure_lm with "name": "nowhere" sets it)')

    def test_bad_names_are_invalid_argument(self):
        for name, want in [
            ("a b", 'name "a b" may hold only letters, digits, \'_\' and \'-\' (at most 64)'),
            ("a.b", 'name "a.b" may hold'),
            ("é", 'name "é" may hold'),
            ("x" * 65, "(at most 64)"),
            (3, "command 'configure_lm': argument 'name' must be of type str, got integer"),
        ]:
            with self.subTest(name=name):
                error = self.w.error("configure_lm", {"provider": "dummy", "name": name})
                self.assertEqual(error["code"], "invalid_argument")
                self.assertIn(want, error["message"])
        self.assertEqual(self.w.ok("get_stats")["lms"], {}, "a refused configuration sets nothing")
        self.w.ok("configure_lm", {"provider": "dummy", "name": "x" * 64})
        self.w.ok("configure_lm", {"provider": "dummy", "name": "A_z-09"})
        error = self.execute(lm=7)["error"]
        self.assertEqual((error["code"], error["message"]),
                         ("invalid_argument", "command 'execute_program': argument 'lm' must be of type str, got integer"))


class NamedLMsOnTheTestServerTest(unittest.TestCase):
    """Two named configurations of two models: each request reaches the LM server with the
    model of the configuration its execution names, on both engines."""

    def setUp(self):
        self.lm = LMServer(self)
        patcher = mock.patch.dict(os.environ, {KEY_ENV: SECRET})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.w = InProcessWorker(self)

    def check(self, engine: str):
        for name in ("alpha", "beta"):
            config = {"provider": "openai", "model": f"model-{name}", "base_url": self.lm.url, "api_key_env": KEY_ENV, "engine": engine}
            self.assertEqual(self.w.ok("configure_lm", {**config, "name": name})["engine"], engine)
        self.lm.reset()
        spec_hash = self.w.ok("create_program", {"spec": QA})["spec_hash"]
        sent = {}
        for i in range(8):  # in flight together: the worker runs them concurrently
            name = ("alpha", "beta")[i % 2]
            sent[self.w.call("execute_program", {"spec_hash": spec_hash, "inputs": {"question": f"ask-{i}-x"}, "lm": name})] = name
        for request_id in sent:
            reply = self.w.response(request_id)
            self.assertTrue(reply["success"], reply)
        models = {}
        for request in self.lm.requests():
            text = json.dumps(request["messages"])
            (question,) = [i for i in range(8) if f"ask-{i}-x" in text]
            models[question] = request["model"]
        want = {i: ("model-alpha", "model-beta")[i % 2] for i in range(8)}
        self.assertEqual(models, want)
        error = self.w.error("execute_program", {"spec_hash": spec_hash, "inputs": {"question": "?"}, "lm": "gamma"})
        self.assertEqual(error["code"], "not_found")

    def test_native_engine(self):
        self.check("native")

    def test_dspy_engine(self):
        require_dspy(self)
        self.assertTrue(dspy_importable())
        self.check("dspy")
