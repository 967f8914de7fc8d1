"""pydantic's constraints on a signature's fields (``dspy.OutputField(ge=0, le=1)``):
protocol/testdata/constraints.json's cases, which Go's internal/program checks too, and
the "Constraints:" line both engines write as DSPy 3.4.1 writes it (against the real dspy
when it is installed)."""

from __future__ import annotations

import os
import threading
import unittest
from http.server import ThreadingHTTPServer
from unittest import mock

from dspgo_worker.chat_format import build_messages
from dspgo_worker.constraints import KINDS, python_value
from dspgo_worker.spec import CompiledSpec

from .helpers import InProcessWorker, check_spec_cases, load_testdata
from .lmserver import LMServer, require_dspy
from .test_defaults import _FixedReply as FixedReply

KEY_ENV = "DSPGO_TEST_CONSTRAINTS_KEY"


def constraint(name: str, value) -> dict:
    return {"name": name, "value": value}


#: Every constraint, on fields of several types, some in an order other than DSPy's map's.
SPEC = {
    "signature": {
        "inputs": [{"name": "text", "constraints": [constraint("min_length", 2), constraint("max_length", "100")]}],
        "outputs": [
            {"name": "score", "type": "float", "description": "between 0 and 1", "constraints": [constraint("le", 1.0), constraint("ge", 0)]},
            {"name": "n", "type": "Optional[int]", "constraints": [constraint("gt", "0"), constraint("multiple_of", "2e0")]},
            {"name": "f", "type": "float", "constraints": [constraint("allow_inf_nan", False), constraint("lt", "1e-7")]},
            {"name": "tags", "type": "list[str]"},
        ],
    },
    "instructions": "Score the text.",
}


class ConstraintVectorsTest(unittest.TestCase):
    def test_specs(self):
        cases = load_testdata("constraints.json")["specs"]
        self.assertGreater(len(cases), 10)
        check_spec_cases(self, cases)

    def test_every_constraint_of_dspy_is_known(self):
        require_dspy(self)
        from dspy.signatures.field import PYDANTIC_CONSTRAINT_MAP

        self.assertEqual({name: words for name, (_, words) in KINDS.items()}, PYDANTIC_CONSTRAINT_MAP)

    def test_python_values(self):
        for text, want in (("0", 0), ("-3", -3), ("1.0", 1.0), ("1e-05", 1e-05), ("True", True), ("False", False)):
            with self.subTest(text=text):
                value = python_value(text)
                self.assertEqual((type(value), value, str(value)), (type(want), want, text))


class PromptTest(unittest.TestCase):
    def test_native_system_message(self):
        compiled = CompiledSpec({**SPEC, "kind": "chain_of_thought"})
        system = build_messages(compiled, compiled.convert_inputs({"text": "hello"}))[0]["content"]
        self.assertIn(
            "Your input fields are:\n1. `text` (str): \nConstraints: minimum length: 2, maximum length: 100\n"
            "Your output fields are:\n1. `reasoning` (str): \n2. `score` (float): between 0 and 1\n"
            "Constraints: less than or equal to: 1.0, greater than or equal to: 0\n"
            "3. `n` (Union[int, NoneType]): \nConstraints: greater than: 0, a multiple of the given number: 2.0\n"
            "4. `f` (float): \nConstraints: allow 'inf', '-inf', 'nan' values: False, less than: 1e-07\n"
            "5. `tags` (list[str]):\n", system)

    def test_as_dspys_chat_adapter_writes_them(self):
        require_dspy(self)
        from dspgo_worker.dspy_engine import ENGINE, _answering_predictor, import_dspy

        dspy = import_dspy()
        for kind in ("predict", "chain_of_thought"):
            with self.subTest(kind=kind):
                compiled = CompiledSpec({**SPEC, "kind": kind})
                predictor = _answering_predictor(ENGINE.module(dspy, compiled), [f.name for f in compiled.outputs])
                inputs = compiled.convert_inputs({"text": "hello"})
                self.assertEqual(build_messages(compiled, inputs), dspy.ChatAdapter().format(predictor.signature, demos=[], inputs=inputs))


class BothEnginesTest(unittest.TestCase):
    """Both engines send the same messages (the test LM server records them), and read a
    reply without checking its values against the constraints, as DSPy does."""

    def setUp(self):
        require_dspy(self)
        patcher = mock.patch.dict(os.environ, {KEY_ENV: "sk-constraints"})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.w = InProcessWorker(self)

    def configure(self, url: str, engine: str) -> None:
        self.w.ok("configure_lm", {"provider": "openai", "model": "test-model", "base_url": url, "api_key_env": KEY_ENV, "engine": engine})

    def test_same_messages(self):
        lm = LMServer(self)
        sent = {}
        for engine in ("dspy", "native"):
            lm.reset()
            self.configure(lm.url, engine)
            self.w.ok("execute_program", {"spec": SPEC, "inputs": {"text": "hello"}})
            (sent[engine],) = [r["messages"] for r in lm.requests()]
        self.assertEqual(sent["dspy"], sent["native"])
        self.assertIn("Constraints: less than or equal to: 1.0, greater than or equal to: 0", sent["native"][0]["content"])

    def test_values_are_not_checked(self):
        server = ThreadingHTTPServer(("127.0.0.1", 0), FixedReply)
        server.reply = "[[ ## score ## ]]\n7\n\n[[ ## n ## ]]\n3\n\n[[ ## f ## ]]\n0.5\n\n[[ ## tags ## ]]\n[]\n\n[[ ## completed ## ]]"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(thread.join)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        for engine in ("dspy", "native"):
            with self.subTest(engine=engine):
                self.configure(f"http://127.0.0.1:{server.server_address[1]}/v1", engine)
                got = self.w.ok("execute_program", {"spec": SPEC, "inputs": {"text": "hello"}})
                self.assertEqual(got["outputs"], {"score": 7.0, "n": 3, "f": 0.5, "tags": []})
