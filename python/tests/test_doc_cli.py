"""docs/protocol.md's "Worker command line" names every option of the worker and its default."""

from __future__ import annotations

import argparse
import re
import unittest

from dspgo_worker.cli import build_parser

from .helpers import PYTHON_DIR

DOC = PYTHON_DIR.parent / "docs" / "protocol.md"


def section() -> str:
    """The text of the doc's section on the worker's command line."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"^## Worker command line.*?(?=^## )", text, re.S | re.M)
    assert match, "the section was not found"
    return match.group(0)


class DocCommandLineTest(unittest.TestCase):
    def test_every_option_and_default_is_documented(self):
        doc = section()
        synopsis = re.search(r"`python3 -m dspgo_worker (.*?)`", doc, re.S)
        self.assertIsNotNone(synopsis)
        assert synopsis
        options = 0
        for action in build_parser()._actions:
            long = [o for o in action.option_strings if o.startswith("--")]
            if not long or long[0] == "--help":
                continue
            options += 1
            option = long[0]
            self.assertRegex(synopsis.group(1), rf"\[{re.escape(option)}[\] ]", f"{option} is not in the synopsis")
            if action.choices:
                self.assertIn("|".join(action.choices), synopsis.group(1), f"{option}'s choices")
            default = action.default
            if option == "--worker-id":
                self.assertIn("`--worker-id worker-<pid>`", doc)
            elif default not in (None, False, "", [], argparse.SUPPRESS):
                self.assertIn(f"`{option} {default}`", doc, f"{option}'s default")
        self.assertGreaterEqual(options, 10, "the parser's options were not found")


if __name__ == "__main__":
    unittest.main()
