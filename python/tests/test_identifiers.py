"""Field names: the worker's rule (signature.name_problem) against the shared vectors
(protocol/testdata/names.json), against what Python itself says of every code point
(internal/program/testdata/identifiers.txt, which Go's TestNameRuleAllCodePoints reads too,
and this Python's own str.isidentifier, \\w and NFKC), and in specs."""

import os
import re
import threading
import unicodedata
import unittest
from http.server import ThreadingHTTPServer
from unittest import mock

from dspgo_worker.chat_format import build_messages, parse_reply, split_sections
from dspgo_worker.errors import WorkerError
from dspgo_worker.signature import name_problem, parse_signature
from dspgo_worker.spec import CompiledSpec

from .helpers import TESTDATA_DIR, InProcessWorker, assert_same_fields, load_testdata
from .lmserver import require_dspy
from .test_defaults import _FixedReply
from .test_reply_sections import streamed

_WORD = re.compile(r"\w\Z")


def verdict(name: str) -> str:
    """name_problem's answer as identifiers.txt writes Python's: ok, ident, word or nfkc."""
    p = name_problem(name)
    if not p:
        return "ok"
    if "not a valid identifier" in p:
        return "ident"
    if "ChatAdapter" in p:
        return "word"
    return "nfkc" if "NFKC" in p else "unknown: " + p


def native(name: str) -> str:
    """What this Python says of name, as identifiers.txt writes it."""
    if not name.isidentifier():
        return "ident"
    if not all(_WORD.match(c) for c in name):
        return "word"
    return "ok" if unicodedata.is_normalized("NFKC", name) else "nfkc"


class NameTest(unittest.TestCase):
    def test_vectors(self):
        for v in load_testdata("names.json")["names"]:
            with self.subTest(name=v["name"]):
                self.assertEqual(name_problem(v["name"]), v["problem"])
                spec = {"signature": {"inputs": [{"name": "q"}], "outputs": [{"name": v["name"]}]}}
                if not v["problem"]:
                    self.assertEqual([f.name for f in CompiledSpec(spec).outputs], [v["name"]])
                    continue
                with self.assertRaises(WorkerError) as cm:
                    CompiledSpec(spec)
                self.assertIn(f'output field name {v["name"]!r}'.replace("'", '"') + " " + v["problem"], str(cm.exception))

    def test_all_code_points(self):
        """Every code point c, as "c" and "ac", against identifiers.txt (Python 3.11's
        verdicts); on a Python of another Unicode, against this one's own where it
        knows the character in both versions."""
        path = TESTDATA_DIR.parent.parent / "internal" / "program" / "testdata" / "identifiers.txt"
        same = unicodedata.unidata_version == "14.0.0"
        bad = []
        for line in path.read_text().splitlines():
            if line.startswith("#"):
                continue
            lo, hi, alone, after = line.split()
            for cp in range(int(lo, 16), int(hi, 16) + 1):
                if 0xD800 <= cp <= 0xDFFF:
                    continue  # no UTF-8: a spec cannot hold one
                c = chr(cp)
                for name, want in ((c, alone), ("a" + c, after)):
                    got = verdict(name)
                    if same and native(name) != want:
                        bad.append((hex(cp), name, "identifiers.txt is not this Python's"))
                    if got != want and not (not same and got == "ident" and native(name) == "ident"):
                        bad.append((hex(cp), name, got, want))
        self.assertEqual(bad[:20], [])

    def test_the_table_is_gos(self):
        """identifier_table.CLASSES is Go's identClasses (both written by gen_identifiers.py)."""
        from dspgo_worker.identifier_table import CLASSES

        go = (TESTDATA_DIR.parent.parent / "internal" / "program" / "identifiers_table.go").read_text()
        ranges = tuple((int(lo, 16), int(hi, 16), int(k)) for lo, hi, k in re.findall(r"\{0x([0-9A-F]+), 0x([0-9A-F]+), (\d)\}", go))
        self.assertGreater(len(ranges), 1000)
        self.assertEqual(ranges, CLASSES)

    def test_parse_signature(self):
        self.assertEqual([f["name"] for f in parse_signature("frage, question -> réponse, 答え")["outputs"]], ["réponse", "答え"])
        with self.assertRaises(WorkerError) as cm:
            parse_signature("ﬁeld -> x")
        self.assertIn("NFKC", str(cm.exception))

    def test_model_fields(self):
        spec = {"signature": {"inputs": [{"name": "q"}], "outputs": [{"name": "a", "type": "Antwort"}], "models": [
            {"name": "Antwort", "fields": [{"name": "größe", "type": "int"}]}]}}
        self.assertEqual([f.name for f in CompiledSpec(spec).models["Antwort"].fields], ["größe"])
        spec["signature"]["models"][0]["fields"][0]["name"] = "ﬁeld"
        with self.assertRaises(WorkerError) as cm:
            CompiledSpec(spec)
        self.assertIn('model "Antwort" field name "ﬁeld" is not in NFKC form', str(cm.exception))


#: A signature whose fields, and a model's, are named in French, German, Japanese and
#: Russian letters, with a demo.
SPEC = {
    "signature": {
        "inputs": [{"name": "frage", "type": "str", "description": "la question"}, {"name": "größe", "type": "int"}],
        "outputs": [{"name": "réponse", "type": "str"}, {"name": "答え", "type": "Antwort", "description": "構造化"},
                    {"name": "Ответ_2", "type": "list[int]"}],
        "models": [{"name": "Antwort", "fields": [{"name": "wörter", "type": "list[str]"}, {"name": "名前", "type": "str"}]}],
    },
    "instructions": "Réponds.",
    "demos": [{"inputs": {"frage": "deux?", "größe": 2}, "outputs": {"réponse": "deux", "答え": {"wörter": ["zwei"], "名前": "二"}, "Ответ_2": [2]}}],
}
INPUTS = {"frage": "trois?", "größe": 3}
#: A reply to SPEC, as an LM writes it, and the outputs read from it.
REPLY = ("[[ ## réponse ## ]]\ntrois\n\n[[ ## 答え ## ]]\n{\"wörter\": [\"drei\"], \"名前\": \"三\"}\n\n"
         "[[ ## Ответ_2 ## ]]\n[3, 3]\n\n[[ ## completed ## ]]")
OUTPUTS = {"réponse": "trois", "答え": {"wörter": ["drei"], "名前": "三"}, "Ответ_2": [3, 3]}


class NativeEngineTest(unittest.TestCase):
    """The native engine's prompt names the fields, and reads and streams their sections."""

    def test_prompt_and_reply(self):
        compiled = CompiledSpec(SPEC)
        messages = build_messages(compiled, compiled.convert_inputs(INPUTS))
        self.assertIn("1. `réponse` (str)", messages[0]["content"])
        self.assertIn("[[ ## größe ## ]]\n3", messages[-1]["content"])
        self.assertIn('"wörter"', messages[0]["content"])  # the model's JSON schema
        self.assertEqual(list(split_sections(REPLY)), ["réponse", "答え", "Ответ_2", "completed"])
        assert_same_fields(self, parse_reply(compiled, REPLY), OUTPUTS)

    def test_streamed_a_character_at_a_time(self):
        compiled = CompiledSpec(SPEC)
        joined, order = streamed(list(REPLY), {}, compiled)
        self.assertEqual(joined, {k: v for k, v in split_sections(REPLY).items() if k != "completed"})
        self.assertEqual(list(dict.fromkeys(order)), ["réponse", "答え", "Ответ_2"])


class AgainstDSPyTest(unittest.TestCase):
    """DSPy 3.4.1's ChatAdapter sends the native engine's messages for SPEC, and reads the
    same outputs from its reply."""

    def setUp(self):
        require_dspy(self)
        from dspgo_worker.dspy_engine import ENGINE, import_dspy

        self.dspy = import_dspy()
        self.engine = ENGINE

    def test_messages_are_the_chat_adapters(self):
        from dspgo_worker.dspy_engine import _answering_predictor, _dspy_inputs

        dspy = self.dspy
        for kind in ("predict", "chain_of_thought"):
            with self.subTest(kind=kind):
                compiled = CompiledSpec({**SPEC, "kind": kind})
                inputs = compiled.convert_inputs(INPUTS)
                predictor = _answering_predictor(self.engine.module(dspy, compiled), [f.name for f in compiled.outputs])
                want = dspy.ChatAdapter().format(predictor.signature, predictor.demos, _dspy_inputs(dspy, compiled, inputs))
                self.assertEqual(build_messages(compiled, inputs), want)

    def test_the_reply_is_read_alike(self):
        from dspgo_worker.dspy_engine import DspyEngine

        dspy = self.dspy
        compiled = CompiledSpec(SPEC)
        parsed = dspy.ChatAdapter().parse(self.engine.signature(dspy, compiled), REPLY)
        assert_same_fields(self, DspyEngine._outputs(compiled, dspy.Prediction(**parsed)), parse_reply(compiled, REPLY))


    def test_names_refused_for_their_characters_are_not_read_by_dspy(self):
        """The names refused for a character \\w does not match (a vowel sign, a middle dot)
        are names DSPy's ChatAdapter cannot read back from a reply."""
        from dspy.utils.exceptions import AdapterParseError

        for name in ("नाम", "x·y", "e\u0301"):
            with self.subTest(name=name):
                self.assertIn("ChatAdapter", name_problem(name))
                signature = self.dspy.Signature({"q": self.dspy.InputField(), name: self.dspy.OutputField()})
                with self.assertRaises(AdapterParseError):
                    self.dspy.ChatAdapter().parse(signature, f"[[ ## {name} ## ]]\nx\n\n[[ ## completed ## ]]")


class EnginesTest(unittest.TestCase):
    """Both engines, through a worker, against an LM that gives REPLY: the same outputs."""

    def setUp(self):
        require_dspy(self)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _FixedReply)
        self.server.reply = REPLY
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(thread.join)
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        patcher = mock.patch.dict(os.environ, {"DSPGO_TEST_NAMES_KEY": "sk-names"})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.w = InProcessWorker(self)

    def test_both_engines_read_the_outputs(self):
        url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        for engine in ("dspy", "native"):
            with self.subTest(engine=engine):
                self.w.ok("configure_lm", {"provider": "openai", "model": "test-model", "base_url": url,
                                           "api_key_env": "DSPGO_TEST_NAMES_KEY", "engine": engine})
                outputs = self.w.ok("execute_program", {"spec": SPEC, "inputs": INPUTS})["outputs"]
                assert_same_fields(self, outputs, OUTPUTS)


if __name__ == "__main__":
    unittest.main()
