"""The worker's source keeps the security rules: no eval, exec or pickle, and
nothing written to shared temporary paths."""

from __future__ import annotations

import re
import unittest
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dspgo_worker"

FORBIDDEN = {
    "eval": re.compile(r"(?<![\w.])eval\("),
    "exec": re.compile(r"(?<![\w.])exec\("),
    "pickle": re.compile(r"\bimport pickle\b|\bfrom pickle\b|\bpickle\."),
    "marshal": re.compile(r"\bimport marshal\b|\bmarshal\.loads\b"),
    "/tmp": re.compile(r"['\"]/tmp"),
    "tempfile": re.compile(r"\bimport tempfile\b|\btempfile\."),
}


class SourceRulesTest(unittest.TestCase):
    def test_no_forbidden_constructs(self):
        sources = sorted(PACKAGE.glob("*.py"))
        self.assertGreater(len(sources), 5)
        for path in sources:
            text = path.read_text(encoding="utf-8")
            for name, pattern in FORBIDDEN.items():
                with self.subTest(file=path.name, rule=name):
                    self.assertIsNone(pattern.search(text), f"{path.name} uses {name}")


if __name__ == "__main__":
    unittest.main()
