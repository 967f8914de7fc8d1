"""The program command set: configure_lm, create/execute/delete_program, get_stats, reset."""

from __future__ import annotations

import importlib.util
import json
import time
import unittest

from dspgo_worker.dummy import dummy_outputs
from dspgo_worker.programs import ProgramState
from dspgo_worker.spec import CompiledSpec

from .helpers import InProcessWorker, WorkerProcess
from .test_spec import load_dummy_cases, spec_of

QA = spec_of([("question", "")], [("answer", "")])
PROGRAM_COMMANDS = ("configure_lm", "create_program", "execute_program", "delete_program", "get_stats", "reset")


def expected(spec: dict, inputs: dict) -> dict:
    compiled = CompiledSpec(spec)
    return json.loads(json.dumps(dummy_outputs(compiled, compiled.convert_inputs(inputs))))


class ProgramCommandsTest(unittest.TestCase):
    def setUp(self):
        self.w = InProcessWorker(self)

    def create(self, spec: dict) -> str:
        return self.w.ok("create_program", {"program_id": "p", "spec": spec})["spec_hash"]

    def test_commands_are_always_registered(self):
        described = {c["name"]: c for c in self.w.ok("describe")["commands"]}
        for name in PROGRAM_COMMANDS:
            self.assertIn(name, described)
            self.assertFalse(described[name]["diagnostics"])
            self.assertFalse(described[name]["inline"])
        self.assertEqual(described["execute_program"]["args"]["spec_hash"]["type"], "str")
        self.assertEqual(described["configure_lm"]["args"]["temperature"]["type"], "float")

    def test_golden_vectors(self):
        for case in load_dummy_cases():
            with self.subTest(case=case["name"]):
                spec_hash = self.create(case["spec"])
                self.assertEqual(spec_hash, case["spec_hash"])
                result = self.w.ok("execute_program", {"spec_hash": spec_hash, "inputs": case["inputs"]})
                self.assertEqual(result, {"outputs": case["outputs"], "spec_hash": case["spec_hash"]})

    def test_create_is_idempotent(self):
        first = self.create(QA)
        self.assertEqual(self.create(QA), first)
        self.assertEqual(len(first), 64)
        self.assertEqual(self.w.ok("get_stats")["programs"], 1)

    def test_create_errors(self):
        cases = [
            ({"spec": spec_of([("q", "")], [])}, "signature has no outputs"),
            ({"spec": spec_of([("a", "tensor")], [("b", "")])}, 'unknown type "tensor"'),
            ({"spec": spec_of([("a", "")], [("a", "")])}, '"a" is used twice'),
            ({"spec": {**QA, "extra": True}}, 'unknown field "extra"'),
            ({}, "command 'create_program': missing required argument 'spec'"),
            ({"spec": None}, "command 'create_program': missing required argument 'spec'"),
            ({"spec": "question -> answer"}, "'spec'"),
            ({"spec": QA, "bogus": 1}, "'bogus'"),
            ({"spec": QA, "program_id": 3}, "'program_id'"),
        ]
        for args, want in cases:
            with self.subTest(want=want):
                error = self.w.error("create_program", args)
                self.assertEqual(error["code"], "invalid_argument")
                self.assertIn(want, error["message"])

    def test_unknown_hash_is_spec_not_found_then_resend(self):
        inputs = {"question": "?"}
        spec_hash = CompiledSpec(QA).hash
        error = self.w.error("execute_program", {"program_id": "qa", "spec_hash": spec_hash, "inputs": inputs})
        self.assertEqual(error["code"], "not_found")
        self.assertEqual(error["type"], "SpecNotFound")
        self.assertIn(spec_hash, error["message"])
        result = self.w.ok("execute_program", {"spec_hash": spec_hash, "spec": QA, "inputs": inputs})
        self.assertEqual(result, {"outputs": expected(QA, inputs), "spec_hash": spec_hash})
        result = self.w.ok("execute_program", {"spec_hash": spec_hash, "inputs": inputs})
        self.assertEqual(result["outputs"], expected(QA, inputs), "the resent spec was cached")
        # A spec without spec_hash runs too (the Go mock accepts it).
        self.assertEqual(self.w.ok("execute_program", {"spec": QA, "inputs": inputs})["spec_hash"], spec_hash)

    def test_spec_hash_mismatch(self):
        other = self.create(spec_of([("q", "")], [("a", "")]))
        error = self.w.error("execute_program", {"spec_hash": other, "spec": QA, "inputs": {"question": "?"}})
        self.assertEqual(error["code"], "invalid_argument")
        self.assertIn(other, error["message"])
        self.assertIn(CompiledSpec(QA).hash, error["message"])

    def test_input_errors(self):
        spec_hash = self.create(spec_of([("question", ""), ("n", "int")], [("answer", "")]))
        cases = [
            ({"question": "?"}, 'input "n" is missing'),
            ({"question": "?", "n": 1, "extra": 2}, 'input "extra" is not in the signature'),
            ({"question": "?", "n": "one"}, 'input n: expected int, got string "one"'),
            ({"question": [3], "n": 1}, "input question[0]: expected str, got number 3"),
            ({"question": None, "n": 1}, "input question: expected str, got null"),
            ({"question": "?", "n": True}, "input n: expected int, got bool"),
        ]
        for inputs, want in cases:
            with self.subTest(want=want):
                error = self.w.error("execute_program", {"spec_hash": spec_hash, "inputs": inputs})
                self.assertEqual(error["code"], "invalid_argument")
                self.assertIn(want, error["message"])
        for args in ({"spec_hash": spec_hash}, {"spec_hash": spec_hash, "inputs": None}):
            error = self.w.error("execute_program", args)
            self.assertEqual(
                (error["code"], error["message"]),
                ("invalid_argument", "command 'execute_program': missing required argument 'inputs'"),
            )
        error = self.w.error("execute_program", {"spec_hash": spec_hash, "inputs": ["?"]})
        self.assertEqual(error["code"], "invalid_argument")
        self.assertIn("'inputs'", error["message"])

    def test_missing_arguments_are_named(self):
        """One message for one mistake: the argument missing, worded as the Go backends
        word it (program.MissingArg), never what its absence leads to."""
        cases = [
            ("execute_program", {"inputs": {"question": "?"}}, "spec_hash"),
            ("execute_program", {"spec_hash": "", "inputs": {"question": "?"}}, "spec_hash"),
            ("execute_program", {"spec_hash": None, "spec": None, "inputs": {"question": "?"}}, "spec_hash"),
            ("execute_program", {"spec": QA}, "inputs"),
            ("delete_program", {}, "spec_hash"),
            ("delete_program", {"spec_hash": None}, "spec_hash"),
            ("configure_lm", {"model": "m"}, "provider"),
            ("create_program", {"program_id": "p"}, "spec"),
        ]
        for command, args, name in cases:
            with self.subTest(command=command, args=args):
                error = self.w.error(command, args)
                self.assertEqual(
                    (error["code"], error["message"]),
                    ("invalid_argument", f"command '{command}': missing required argument '{name}'"),
                )
        # spec_hash is not needed with the spec.
        self.assertEqual(self.w.ok("execute_program", {"spec": QA, "inputs": {"question": "?"}})["spec_hash"], CompiledSpec(QA).hash)

    def test_typed_inputs_hash_as_in_go(self):
        spec = spec_of([("n", "int"), ("x", "float")], [("a", "")])
        spec_hash = self.create(spec)
        one = self.w.ok("execute_program", {"spec_hash": spec_hash, "inputs": {"n": 3, "x": 2}})
        two = self.w.ok("execute_program", {"spec_hash": spec_hash, "inputs": {"n": 3.0, "x": 2.0}})
        self.assertEqual(one, two, "3 and 3.0 are the same int; 2 and 2.0 the same float")

    def test_delete(self):
        spec_hash = self.create(QA)
        self.assertEqual(self.w.ok("delete_program", {"spec_hash": spec_hash}), {"deleted": True})
        error = self.w.error("delete_program", {"spec_hash": spec_hash})
        self.assertEqual(error["code"], "not_found")
        self.assertIn(spec_hash, error["message"])
        self.assertEqual(self.w.error("delete_program", {"spec_hash": "0000"})["code"], "not_found")
        error = self.w.error("execute_program", {"spec_hash": spec_hash, "inputs": {"question": "?"}})
        self.assertEqual(error["type"], "SpecNotFound")

    def test_configure_lm(self):
        self.assertEqual(self.w.ok("configure_lm", {"provider": "dummy"}), {"provider": "dummy", "model": "", "engine": "native"})
        self.assertEqual(
            self.w.ok("configure_lm", {"provider": "dummy", "engine": "native", "verify": True, "temperature": 0}),
            {"provider": "dummy", "model": "", "engine": "native"},
        )
        spec_hash = self.create(QA)
        result = self.w.ok("execute_program", {"spec_hash": spec_hash, "inputs": {"question": "?"}})
        self.assertEqual(result["outputs"], expected(QA, {"question": "?"}))

    def test_configure_lm_lists_every_bad_field(self):
        error = self.w.error(
            "configure_lm",
            {"provider": "nonexistent", "temperature": 3, "max_tokens": -1, "timeout_ms": -2, "delay_ms": -3,
             "engine": "tensorflow", "api_key_env": "NOT-A-NAME"},
        )
        self.assertEqual(error["code"], "invalid_argument")
        for part in ('provider "nonexistent" is unknown', "temperature 3 is outside [0, 2]", "max_tokens must not be negative",
                     "timeout_ms must not be negative", "delay_ms must not be negative", 'engine "tensorflow" is unknown',
                     'api_key_env is not an environment variable name (its value is not shown: it may be the key itself)'):
            self.assertIn(part, error["message"])
        cases = [
            ({"provider": "openai"}, "model is required for the openai provider"),
            ({}, "command 'configure_lm': missing required argument 'provider'"),
            ({"provider": ""}, 'provider "" is unknown'),
            ({"provider": "dummy", "temperature": 9}, "temperature 9 is outside"),
            ({"provider": "dummy", "temperature": "hot"}, "'temperature'"),
            ({"provider": "dummy", "max_tokens": 1.5}, "'max_tokens'"),
            ({"provider": "dummy", "api_key": "sk-x"}, "'api_key'"),
            ({"provider": "dummy", "dspy_adapter": "yaml"}, 'dspy_adapter "yaml" is unknown (known: chat, json, xml, baml)'),
            ({"provider": "openai", "model": "m", "engine": "native", "dspy_adapter": "xml"}, 'dspy_adapter "xml" needs the dspy engine (engine is native)'),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                error = self.w.error("configure_lm", args)
                self.assertEqual(error["code"], "invalid_argument")
                self.assertIn(want, error["message"])
        self.assertEqual(self.w.ok("get_stats")["lm"], {"provider": "dummy", "model": ""}, "bad configurations change nothing")

    def test_engine_selection_follows_whether_dspy_imports(self):
        if importlib.util.find_spec("dspy") is not None:
            for engine in ("auto", "dspy"):
                self.assertEqual(self.w.ok("configure_lm", {"provider": "openai", "model": "m", "engine": engine})["engine"], "dspy")
            self.assertEqual(self.w.ok("configure_lm", {"provider": "dummy", "engine": "dspy"})["engine"], "native", "the dummy is native")
            return
        for provider in ({"provider": "openai", "model": "m"}, {"provider": "dummy"}):
            error = self.w.error("configure_lm", {**provider, "engine": "dspy"})
            self.assertEqual(error["code"], "failed_precondition")
            self.assertIn("dspy", error["message"])
        # auto falls back to the native engine, but for a DSPy adapter only DSPy runs.
        self.assertEqual(self.w.ok("configure_lm", {"provider": "openai", "model": "m"})["engine"], "native")
        for adapter in ("chat", "json"):
            self.assertEqual(self.w.ok("configure_lm", {"provider": "openai", "model": "m", "dspy_adapter": adapter})["engine"], "native")
        for adapter in ("xml", "baml"):
            error = self.w.error("configure_lm", {"provider": "openai", "model": "m", "dspy_adapter": adapter})
            self.assertEqual(error["code"], "failed_precondition")
            self.assertIn(f"dspy_adapter '{adapter}' needs the dspy engine: ", error["message"])

    def test_stats_and_reset(self):
        spec_hash = self.create(QA)
        self.w.ok("execute_program", {"spec_hash": spec_hash, "inputs": {"question": "?"}})
        self.w.error("execute_program", {"spec_hash": "nope", "inputs": {}})
        self.w.error("no_such_command")
        self.w.ok("configure_lm", {"provider": "openai", "model": "gpt-test", "engine": "native"})
        stats = self.w.ok("get_stats")
        self.assertEqual(
            stats["calls"],
            {"create_program": 1, "execute_program": 2, "no_such_command": 1, "configure_lm": 1, "get_stats": 1},
        )
        self.assertEqual(stats["failures"], 2)
        self.assertEqual(stats["in_flight"], 0)
        self.assertEqual(stats["programs"], 1)
        self.assertEqual(stats["worker_id"], "inproc")
        self.assertGreater(stats["rss_bytes"], 1 << 20)
        self.assertEqual(stats["lm"], {"provider": "openai", "model": "gpt-test"})
        self.assertIsInstance(stats["uptime_ms"], int)
        self.assertEqual(
            sorted(stats),
            sorted(["worker_id", "pid", "programs", "calls", "failures", "in_flight", "rss_bytes", "lm", "lms", "uptime_ms"]),
        )

        self.assertEqual(self.w.ok("reset"), {"reset": True})
        stats = self.w.ok("get_stats")
        self.assertEqual(stats["calls"], {"get_stats": 1})
        self.assertEqual((stats["failures"], stats["programs"]), (0, 0))
        self.assertEqual(stats["lm"], {"provider": "dummy", "model": ""}, "reset restores the dummy LM")
        self.assertEqual(self.w.error("execute_program", {"spec_hash": spec_hash, "inputs": {"question": "?"}})["type"], "SpecNotFound")

    def test_delay_deadline_cancel_and_in_flight(self):
        spec_hash = self.create(QA)
        self.w.ok("configure_lm", {"provider": "dummy", "delay_ms": 30_000})
        started = time.monotonic()
        error = self.w.error("execute_program", {"spec_hash": spec_hash, "inputs": {"question": "slow"}}, deadline_ms=150)
        self.assertEqual(error["code"], "deadline_exceeded")
        self.assertLess(time.monotonic() - started, 5)

        slow = self.w.call("execute_program", {"spec_hash": spec_hash, "inputs": {"question": "slow"}})
        self.assertEqual(self.w.ok("get_stats")["in_flight"], 1)
        self.w.ok("cancel", {"id": slow})
        self.assertEqual(self.w.response(slow)["error"]["code"], "canceled")

        self.w.ok("configure_lm", {"provider": "dummy"})
        result = self.w.ok("execute_program", {"spec_hash": spec_hash, "inputs": {"question": "fast"}})
        self.assertEqual(result["outputs"], expected(QA, {"question": "fast"}))

    def test_concurrent_executions_get_their_own_outputs(self):
        spec = spec_of([("question", ""), ("n", "int")], [("answer", ""), ("score", "float")])
        spec_hash = self.create(spec)
        ids = {self.w.call("execute_program", {"spec_hash": spec_hash, "inputs": {"question": f"q{i}", "n": i}}): i for i in range(32)}
        for request_id, i in ids.items():
            reply = self.w.response(request_id)
            self.assertEqual(reply["result"]["outputs"], expected(spec, {"question": f"q{i}", "n": i}))


class GoFloatTest(unittest.TestCase):
    def test_formats_like_go_percent_v(self):
        from dspgo_worker.lmconfig import go_float

        cases = {3.0: "3", 2.5: "2.5", -1.0: "-1", 2.0000001: "2.0000001", 123456.0: "123456", 1234567.0: "1.234567e+06",
                 1e20: "1e+20", 1e-05: "1e-05", 0.0001: "0.0001", -3.5e-07: "-3.5e-07", 0.0: "0"}
        for value, want in cases.items():
            self.assertEqual(go_float(value), want, value)


class StateTest(unittest.TestCase):
    def test_lru_bound(self):
        w = InProcessWorker(self, max_specs=2)
        specs = [spec_of([(f"q{i}", "")], [("a", "")]) for i in range(3)]
        hashes = [w.ok("create_program", {"spec": s})["spec_hash"] for s in specs[:2]]
        w.ok("execute_program", {"spec_hash": hashes[0], "inputs": {"q0": "x"}})  # q0 is now the most recent
        hashes.append(w.ok("create_program", {"spec": specs[2]})["spec_hash"])
        self.assertEqual(w.ok("get_stats")["programs"], 2)
        self.assertEqual(w.error("execute_program", {"spec_hash": hashes[1], "inputs": {"q1": "x"}})["type"], "SpecNotFound")
        w.ok("execute_program", {"spec_hash": hashes[0], "inputs": {"q0": "x"}})
        w.ok("execute_program", {"spec_hash": hashes[2], "inputs": {"q2": "x"}})

    def test_byte_bound(self):
        """Specs are dropped, least recently used first, while their canonical JSON adds up to
        more than max_spec_bytes; the newest stays even when it alone is larger; the sizes
        kept add up as specs come and go (a reset, a delete)."""
        big = [spec_of([(f"q{i}", "")], [("a", "")], instructions="x" * 3000) for i in range(4)]
        w = InProcessWorker(self, max_spec_bytes=10_000)
        hashes = [w.ok("create_program", {"spec": s})["spec_hash"] for s in big[:3]]
        self.assertEqual(w.ok("get_stats")["programs"], 3)
        w.ok("execute_program", {"spec_hash": hashes[0], "inputs": {"q0": "x"}})  # q0 is now the most recent
        hashes.append(w.ok("create_program", {"spec": big[3]})["spec_hash"])
        self.assertEqual(w.ok("get_stats")["programs"], 3)
        self.assertEqual(w.error("execute_program", {"spec_hash": hashes[1], "inputs": {"q1": "x"}})["type"], "SpecNotFound")
        state = w.worker.state("programs", ProgramState)
        self.assertLessEqual(state.spec_bytes(), 10_000)
        self.assertEqual(state.spec_bytes(), sum(state.lookup(h).size for h in (hashes[0], hashes[2], hashes[3])))
        w.ok("delete_program", {"spec_hash": hashes[2]})
        self.assertEqual(state.spec_bytes(), sum(state.lookup(h).size for h in (hashes[0], hashes[3])))
        huge = w.ok("create_program", {"spec": spec_of([("q", "")], [("a", "")], instructions="y" * 20_000)})["spec_hash"]
        self.assertEqual(w.ok("get_stats")["programs"], 1, "the newest alone, larger than the bound")
        w.ok("execute_program", {"spec_hash": huge, "inputs": {"q": "x"}})
        w.ok("reset")
        self.assertEqual(state.spec_bytes(), 0)

    def test_workers_do_not_share_state(self):
        a, b = InProcessWorker(self, "a"), InProcessWorker(self, "b")
        spec_hash = a.ok("create_program", {"spec": QA})["spec_hash"]
        a.ok("configure_lm", {"provider": "openai", "model": "m", "engine": "native"})
        self.assertEqual(b.error("execute_program", {"spec_hash": spec_hash, "inputs": {"question": "?"}})["type"], "SpecNotFound")
        stats = b.ok("get_stats")
        self.assertEqual((stats["programs"], stats["lm"]["provider"], stats["calls"]), (0, "dummy", {"execute_program": 1, "get_stats": 1}))
        self.assertEqual(a.ok("get_stats")["lm"]["provider"], "openai")


class ProgramCommandsProcessTest(unittest.TestCase):
    """The same commands through a real worker process."""

    def test_golden_vectors_spec_resend_and_stats(self):
        worker = WorkerProcess(self, "--worker-id", "w-prog")
        self.assertTrue(set(PROGRAM_COMMANDS) <= set(worker.hello["commands"]))
        for case in load_dummy_cases():
            with self.subTest(case=case["name"]):
                args = {"program_id": case["name"], "spec_hash": case["spec_hash"], "inputs": case["inputs"]}
                reply = worker.request("execute_program", args)
                if not reply["success"]:  # as the host does: resend with the spec
                    self.assertEqual((reply["error"]["code"], reply["error"]["type"]), ("not_found", "SpecNotFound"))
                    reply = worker.request("execute_program", {**args, "spec": case["spec"]})
                self.assertTrue(reply["success"], reply)
                self.assertEqual(reply["result"], {"outputs": case["outputs"], "spec_hash": case["spec_hash"]})
        stats = worker.request("get_stats")["result"]
        self.assertEqual(stats["pid"], worker.proc.pid)
        self.assertEqual(stats["worker_id"], "w-prog")
        self.assertGreater(stats["rss_bytes"], 0)
        self.assertEqual(stats["calls"]["ping"], 1, "the init ping is counted")
        worker.request("shutdown")
        self.assertEqual(worker.wait_exit(), 0)


if __name__ == "__main__":
    unittest.main()
