"""Literals of every value DSPy 3.4.1's string signatures take (strings with quotes and
escapes, True, False, None, floats, mixes): the native engine's messages are DSPy's
ChatAdapter's (its type names and "must exactly match … one of:" notes), both engines send
the same and read a reply alike (against the real dspy when it is installed). Parsing and
conversion are protocol/testdata/types.json's (test_types, Go's internal/program), and DSPy's
parsing and reading of them test_dspy_signatures's."""

from __future__ import annotations

import os
import threading
import unittest
from http.server import ThreadingHTTPServer
from unittest import mock

from dspgo_worker.chat_format import build_messages
from dspgo_worker.fieldtypes import parse_type
from dspgo_worker.spec import CompiledSpec

from .helpers import InProcessWorker
from .lmserver import LMServer, require_dspy
from .test_defaults import _FixedReply as FixedReply

KEY_ENV = "DSPGO_TEST_LITERALS_KEY"

#: Literals of each kind of value, in inputs and outputs.
SPEC = {
    "signature": {
        "inputs": [{"name": "flag", "type": "Literal[True, False]"}, {"name": "choice", "type": "Literal['a', None]"}],
        "outputs": [
            {"name": "yes", "type": "Literal[True, False]"},
            {"name": "quote", "type": "Literal[\"it's\", 'say \"hi\"', 'both \\'\"', 'back\\\\slash']"},
            {"name": "maybe", "type": "Literal['a', None]"},
            {"name": "ratio", "type": "Literal[1.5, 2.5]"},
            {"name": "mixed", "type": "Literal['x', 1, 2.5, True, None]"},
            {"name": "many", "type": "list[Literal[True, None]]"},
        ],
    },
    "instructions": "Pick.",
}
INPUTS = {"flag": True, "choice": None}
#: A reply to SPEC, each value as an LM may write it, and what both engines read of it.
REPLY = (
    "[[ ## yes ## ]]\nFalse\n\n[[ ## quote ## ]]\n'say \"hi\"'\n\n[[ ## maybe ## ]]\nNone\n\n[[ ## ratio ## ]]\n2.5\n\n"
    "[[ ## mixed ## ]]\n1\n\n[[ ## many ## ]]\n[true, null]\n\n[[ ## completed ## ]]"
)
READ = {"yes": False, "quote": 'say "hi"', "maybe": None, "ratio": 2.5, "mixed": 1, "many": [True, None]}


class PromptTest(unittest.TestCase):
    def test_native_system_message(self):
        compiled = CompiledSpec(SPEC)
        system = build_messages(compiled, compiled.convert_inputs(INPUTS))[0]["content"]
        for want in (
            "1. `flag` (Literal[True, False])",
            "2. `choice` (Literal['a', None])",
            "2. `quote` (Literal[\"it's\", 'say \"hi\"', 'both \\'\"', 'back\\slash'])",
            "4. `ratio` (Literal[1.5, 2.5])",
            "5. `mixed` (Literal['x', 1, 2.5, True, None])",
            "6. `many` (list[Literal[True, None]])",
            "{yes}        # note: the value you produce must exactly match (no extra characters) one of: True; False",
            "{quote}        # note: the value you produce must exactly match (no extra characters) one of: it's; say \"hi\"; both '\"; back\\slash",
            "{mixed}        # note: the value you produce must exactly match (no extra characters) one of: x; 1; 2.5; True; None",
            '{many}        # note: the value you produce must adhere to the JSON schema: {"type": "array", "items": {"enum": [true, null]}}',
        ):
            self.assertIn(want, system)

    def test_json_schemas(self):
        for text, want in (
            ("Literal[True, False]", {"enum": [True, False], "type": "boolean"}),
            ("Literal[None]", {"const": None, "type": "null"}),
            ("Literal[1.5]", {"const": 1.5, "type": "number"}),
            ("Literal['a', None]", {"enum": ["a", None]}),
            ("Literal[1, 2.5]", {"enum": [1, 2.5]}),
            ("Literal[\"it's\"]", {"const": "it's", "type": "string"}),
        ):
            with self.subTest(type=text):
                self.assertEqual(parse_type(text).json_schema(), want)

    def test_json_schemas_are_pydantics(self):
        require_dspy(self)
        from pydantic import TypeAdapter

        from dspgo_worker.dspy_engine import python_type

        for text in ("Literal[True, False]", "Literal[None]", "Literal[1.5, 2.0]", "Literal['a', None]", "Literal[1, True]",
                     "Literal['x', 1, 2.5, True, None]", "list[Literal[1.0, 'a']]", "dict[str, Literal[False]]"):
            with self.subTest(type=text):
                t = parse_type(text)
                self.assertEqual(t.json_schema(), TypeAdapter(python_type(t)).json_schema())

    def test_as_dspys_chat_adapter_writes_them(self):
        require_dspy(self)
        from dspgo_worker.dspy_engine import ENGINE, _answering_predictor, import_dspy

        dspy = import_dspy()
        for kind in ("predict", "chain_of_thought"):
            with self.subTest(kind=kind):
                compiled = CompiledSpec({**SPEC, "kind": kind})
                predictor = _answering_predictor(ENGINE.module(dspy, compiled), [f.name for f in compiled.outputs])
                inputs = compiled.convert_inputs(INPUTS)
                self.assertEqual(build_messages(compiled, inputs), dspy.ChatAdapter().format(predictor.signature, demos=[], inputs=inputs))


class BothEnginesTest(unittest.TestCase):
    """Both engines send the same messages (the test LM server records them) and read a
    reply to the same values."""

    def setUp(self):
        require_dspy(self)
        patcher = mock.patch.dict(os.environ, {KEY_ENV: "sk-literals"})
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
            self.w.ok("execute_program", {"spec": SPEC, "inputs": INPUTS})
            (sent[engine],) = [r["messages"] for r in lm.requests()]
        self.assertEqual(sent["dspy"], sent["native"])
        self.assertIn("one of: True; False", sent["native"][0]["content"])

    def test_same_reading(self):
        server = ThreadingHTTPServer(("127.0.0.1", 0), FixedReply)
        server.reply = REPLY
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(thread.join)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        for engine in ("dspy", "native"):
            with self.subTest(engine=engine):
                self.configure(f"http://127.0.0.1:{server.server_address[1]}/v1", engine)
                got = self.w.ok("execute_program", {"spec": SPEC, "inputs": INPUTS})
                self.assertEqual(got["outputs"], READ)
                self.assertIs(got["outputs"]["yes"], False)


if __name__ == "__main__":
    unittest.main()
