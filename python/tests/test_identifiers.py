"""Field names: the worker's rule (signature.name_problem) against the shared vectors
(protocol/testdata/names.json), against what Python itself says of every code point
(internal/program/testdata/identifiers.txt, which Go's TestNameRuleAllCodePoints reads too,
and this Python's own str.isidentifier, \\w and NFKC), and in specs."""

import re
import unicodedata
import unittest

from dspgo_worker.errors import WorkerError
from dspgo_worker.signature import name_problem, parse_signature
from dspgo_worker.spec import CompiledSpec

from .helpers import TESTDATA_DIR, load_testdata

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


if __name__ == "__main__":
    unittest.main()
