"""The Go fuzz corpus of the frame decoder, driven through the Python decoder.

protocol/testdata/fuzz/FuzzReadFrame holds the inputs Go's fuzzer found
interesting (``go test fuzz v1`` files). Every one must either decode or fail
with a FrameError of a shared kind: never another exception, never a hang.
"""

from __future__ import annotations

import io
import unittest
from pathlib import Path

from dspgo_worker.errors import WorkerError
from dspgo_worker.protocol import ERROR_KINDS, FrameError, decode_message, parse_request, read_frame

CORPUS = Path(__file__).resolve().parents[2] / "protocol" / "testdata" / "fuzz" / "FuzzReadFrame"

_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34, "'": 39}


def go_bytes(literal: str) -> bytes:
    """Decode the Go string literal of a ``[]byte("...")`` corpus line."""
    assert literal.startswith('[]byte("') and literal.endswith('")'), literal[:40]
    s = literal[len('[]byte("') : -2]
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        e = s[i + 1]
        if e in _SIMPLE:
            out.append(_SIMPLE[e])
            i += 2
        elif e == "x":
            out.append(int(s[i + 2 : i + 4], 16))
            i += 4
        elif e in "uU":
            n = 4 if e == "u" else 8
            out += chr(int(s[i + 2 : i + 2 + n], 16)).encode("utf-8", "surrogatepass")
            i += 2 + n
        else:  # octal \NNN
            out.append(int(s[i + 1 : i + 4], 8))
            i += 4
    return bytes(out)


class FuzzCorpusTest(unittest.TestCase):
    def test_corpus_decodes_or_fails_cleanly(self):
        files = sorted(CORPUS.glob("*"))
        self.assertGreater(len(files), 20, "the corpus is committed")
        kinds_seen = set()
        for path in files:
            lines = path.read_text(encoding="utf-8").splitlines()
            self.assertEqual(lines[0], "go test fuzz v1", path.name)
            stream = io.BytesIO(go_bytes(lines[1]))
            with self.subTest(path.name):
                while True:
                    try:
                        body = read_frame(stream, 1 << 16)
                    except FrameError as exc:
                        kinds_seen.add(exc.kind)
                        self.assertTrue(exc.fatal, exc.kind)
                        break
                    if body is None:
                        break
                    try:
                        message = decode_message(body)
                    except FrameError as exc:
                        self.assertIn(exc.kind, ERROR_KINDS)
                        kinds_seen.add(exc.kind)
                        continue
                    try:
                        parse_request(message)
                    except WorkerError:
                        pass
        self.assertGreater(len(kinds_seen), 3, f"the corpus exercises several error kinds: {sorted(kinds_seen)}")


if __name__ == "__main__":
    unittest.main()
