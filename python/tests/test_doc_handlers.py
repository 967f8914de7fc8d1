"""The handler examples of docs/protocol.md ("User commands") load and answer as shown."""

from __future__ import annotations

import re
import tempfile
import unittest
from pathlib import Path

from .helpers import PYTHON_DIR, WorkerProcess

DOC = PYTHON_DIR.parent / "docs" / "protocol.md"

#: Arguments to call each documented command with, and the result it must give.
CALLS = {
    "word_count": ({"text": "two words"}, {"words": 2}),
    "slow_echo": ({"text": "hi"}, {"text": "hi"}),
}


def handler_examples() -> list[str]:
    """The Python blocks of the doc that register commands."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return [block for block in blocks if "@command(" in block]


class DocHandlersTest(unittest.TestCase):
    def test_examples_run(self):
        examples = handler_examples()
        self.assertGreaterEqual(len(examples), 2, "the doc's handler examples were not found")
        with tempfile.TemporaryDirectory(prefix="dspgo-doc-handlers-") as tmp:
            modules = []
            for i, source in enumerate(examples):
                name = f"doc_handlers_{i}"
                Path(tmp, f"{name}.py").write_text(source, encoding="utf-8")
                modules += ["--handlers", name]
            worker = WorkerProcess(self, *modules, pythonpath=(tmp,))
            names = {c["name"] for c in worker.request("describe")["result"]["commands"]}
            documented = {name for source in examples for name in re.findall(r'@command\("(\w+)"', source)}
            self.assertLessEqual(documented, names)
            self.assertEqual(documented, set(CALLS), "every documented command is called here")
            for name, (args, want) in CALLS.items():
                reply = worker.request(name, args)
                self.assertEqual(reply.get("result"), want, reply)


if __name__ == "__main__":
    unittest.main()
