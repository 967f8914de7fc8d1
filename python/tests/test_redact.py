"""``lm.redact``: an API key echoed by a server in any encoding leaves no piece of itself."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import unittest
from unittest import mock
from urllib.parse import quote, quote_plus

from dspgo_worker.redact import REDACT_PIECE, redact

from .helpers import PYTHON_DIR, HandlerModuleMixin

#: Keys with the characters that differ across encodings: '/', '+', '=', '"', '\\', '%',
#: '&', '<', a space, non-ASCII (two, three and four UTF-8 bytes) and a control character.
KEYS = [
    "sk-proj-AbC/dEf+GhI=jKl/MnO+pQr=StU/vWx",
    'sk-"quoted"\\back\\slash"-0123456789abcdef',
    "sk-%41lready%2Fpercent%-encoded&<tag>0123",
    "sk-spaces and plus+signs+0123456789abcdef",
    "sk-éàü-ключ-密钥-🎉🔑-0123456789abcdef",
    "sk-tab\there-newline\nthere-0123456789",
    "AbCdEfGhIjKl/+==",  # short: 16 characters
]


def lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def upper_json(text: str) -> str:
    return re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), text)


def go_json(key: str) -> str:
    """Go's encoding/json: <, > and & escaped, non-ASCII kept."""
    body = json.dumps(key, ensure_ascii=False)[1:-1]
    return body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


#: Every way a server may echo a key, by name.
ENCODINGS = {
    "raw": lambda k: k,
    "quote": lambda k: quote(k, safe=""),
    "quote keeping /": lambda k: quote(k),
    "quote_plus": quote_plus,
    "quote_plus keeping /": lambda k: quote_plus(k, safe="/"),
    "quote, lower-case hex": lambda k: lower_hex(quote(k, safe="")),
    "quote_plus, lower-case hex": lambda k: lower_hex(quote_plus(k)),
    "twice quoted": lambda k: quote(quote(k, safe=""), safe=""),
    "json": lambda k: json.dumps(k, ensure_ascii=False)[1:-1],
    "json, ascii": lambda k: json.dumps(k)[1:-1],
    "json, ascii, upper-case hex": lambda k: upper_json(json.dumps(k)[1:-1]),
    "json, slash escaped": lambda k: json.dumps(k)[1:-1].replace("/", "\\/"),
    "json of Go": go_json,
    "json of the quoted key": lambda k: json.dumps(quote(k, safe=""))[1:-1],
    "html": html.escape,
    "html, numeric": lambda k: "".join(f"&#{ord(c)};" if not c.isalnum() else c for c in k),
    "base64": lambda k: base64.b64encode(k.encode()).decode(),
    "base64 url-safe": lambda k: base64.urlsafe_b64encode(k.encode()).decode(),
    "basic auth": lambda k: "Basic " + base64.b64encode(("user:" + k).encode()).decode(),
    "basic auth, no user": lambda k: "Basic " + base64.b64encode((":" + k).encode()).decode(),
    "bearer in a query": lambda k: "?api_key=" + quote_plus(k) + "&x=1",
}


def pieces(text: str, n: int = REDACT_PIECE):
    """Every run of ``n`` characters of ``text``."""
    return {text[i : i + n] for i in range(len(text) - n + 1)}


class RedactTest(unittest.TestCase):
    def assert_hidden(self, echoed: str, key: str, what: str, encoded_whole: bool = True) -> None:
        text = f"error from the server: {echoed} (end)"
        out = redact(text, key)
        self.assertTrue(out.startswith("error from the server: "), f"{what}: the text around stays: {out!r}")
        self.assertTrue(out.endswith(" (end)"), f"{what}: the text around stays: {out!r}")
        self.assertIn("[REDACTED]", out, what)
        if encoded_whole:  # the echo is the key, encoded: no piece of it survives
            for piece in pieces(echoed):
                self.assertNotIn(piece, out, f"{what}: a piece of the echo survives in {out!r}")
        for piece in pieces(key):
            self.assertNotIn(piece, out, f"{what}: a piece of the key survives in {out!r}")
        # Nor in what is left of a base64 text (a user name encoded with the key).
        for run in re.findall(r"[A-Za-z0-9+/_-]{8,}=*", out):
            for alphabet in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    decoded = alphabet(run + "=" * (-len(run) % 4)).decode("utf-8", "replace")
                except ValueError:
                    continue
                for piece in pieces(key):
                    self.assertNotIn(piece, decoded, f"{what}: a piece of the key survives base64-encoded in {out!r}")

    def test_every_encoding_of_every_key(self):
        tried = 0
        for key in KEYS:
            for name, encode in ENCODINGS.items():
                echoed = encode(key)
                if name.startswith("base64") or name.startswith("basic"):
                    if len(key.encode()) < 12:
                        continue
                with self.subTest(key=key, encoding=name):
                    self.assert_hidden(echoed, key, name, encoded_whole=not name.startswith(("basic", "bearer")))
                tried += 1
        self.assertGreaterEqual(tried, len(KEYS) * len(ENCODINGS) - 2 * len(KEYS))

    def test_the_tail_of_an_encoded_key(self):
        """The review's case: the key URL-encoded; its tail (after the last encoded
        character) used to survive, and so did the pieces between encoded characters."""
        key = KEYS[0]
        for name in ("quote", "quote_plus", "json, slash escaped", "quote, lower-case hex"):
            echoed = ENCODINGS[name](key)
            with self.subTest(encoding=name):
                out = redact(f"invalid key {echoed}", key)
                self.assertEqual(out, "invalid key [REDACTED]")

    def test_echoes_in_part(self):
        for key in KEYS:
            for name in ("raw", "quote", "json, ascii", "html"):
                encoded = ENCODINGS[name](key)
                for echoed in (encoded[:REDACT_PIECE + 3], encoded[-(REDACT_PIECE + 3):], key[:4] + "..." + encoded[-(REDACT_PIECE + 1):]):
                    with self.subTest(key=key, encoding=name, echoed=echoed):
                        out = redact(f"key {echoed} refused", key)
                        for piece in pieces(key):
                            self.assertNotIn(piece, out)

    def test_nothing_else_is_touched(self):
        key = KEYS[0]
        for text in ("", "no key here", "sk-proj", "AbC dEf GhI", "[REDACTED]", "%2F%2B%3D", "é🎉"):
            self.assertEqual(redact(text, key), text)
        self.assertEqual(redact("text", None), "text")
        self.assertEqual(redact("text", ""), "text")
        self.assertEqual(redact("key sk-abc", "sk-abc"), "key [REDACTED]")

    def test_every_occurrence(self):
        key = KEYS[0]
        text = " | ".join(encode(key) for encode in ENCODINGS.values())
        out = redact(text, key)
        self.assertEqual(out.count("[REDACTED]") >= len(ENCODINGS), True, out)
        for piece in pieces(key):
            self.assertNotIn(piece, out)



class SafeURLTest(unittest.TestCase):
    """``lm.safe_url``, the base URL shown in messages: no piece of its credentials, however
    they are written (as Go's ``secret.URL``)."""

    def test_credentials_are_hidden_however_written(self):
        from dspgo_worker.lmconfig import safe_url

        password = 'pa/ss+w=rd"\\é#?@-S3CR3T'
        tried = 0
        for written in (password, quote(password, safe=""), quote_plus(password), lower_hex(quote(password, safe=""))):
            for url in (
                f"https://user:{written}@llm.example/v1",
                f"https://{written}@llm.example/v1",
                f"user:{written}@llm.example:8080/v1",
            ):
                tried += 1
                shown = safe_url(url)
                self.assertNotIn("3CR3", shown, url)
                self.assertNotIn("user", shown, url)
                self.assertTrue(shown.endswith("@llm.example/v1") or shown.endswith("@llm.example:8080/v1"), shown)
        self.assertEqual(tried, 12)
        self.assertEqual(safe_url("https://api.openai.com/v1"), "https://api.openai.com/v1")
        self.assertEqual(safe_url("https://u:p@host/v1"), "https://***@host/v1")


if __name__ == "__main__":
    unittest.main()


#: A handler module whose command writes the key of the LM's variable to stderr the ways a
#: library may: a log record (as DSPy logs a failed example), a handler made at import time
#: (as LiteLLM's own), a print (stdout is stderr in a worker) and a write in two pieces.
LEAKY_MODULE = '''
import logging, os, sys
from dspgo_worker import command

_own = logging.getLogger("leaky.own")
_own.addHandler(logging.StreamHandler())  # sys.stderr as it is when the module is imported
_own.propagate = False

@command("leak", inline=True)
def leak(args, ctx):
    key = os.environ["DSPGO_TEST_LEAK_KEY"]
    logging.getLogger("dspy.teleprompt").error("Failed to run example due to Incorrect API key provided: %s", key)
    _own.warning("LiteLLM: bad key %s", key)
    print("printed", key)
    sys.stderr.write("written " + key[:10])
    sys.stderr.write(key[10:] + " end\\n")
    sys.stderr.flush()
    return {}
'''


class ScrubbedStderrTest(HandlerModuleMixin, unittest.TestCase):
    """What a worker writes to stderr holds no configured LM's key: its log, and what a
    library logs or prints there (the host logs it, and a crash's error quotes its tail)."""

    handler_module = "leaky_handlers"
    handler_source = LEAKY_MODULE

    def test_the_key_of_a_configured_lm_never_reaches_stderr(self):
        key = "sk-live-ZZq7Hw3Kp9Lm2Nx5Rt8Vb1Cd4Fg6"
        with mock.patch.dict(os.environ, {"DSPGO_TEST_LEAK_KEY": key}):
            w = self.start_with_handlers()
        self.addCleanup(w.close)
        for command, args in (("configure_lm", {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                                                 "api_key_env": "DSPGO_TEST_LEAK_KEY", "engine": "native", "name": "named"}),
                              ("leak", {})):
            self.assertTrue(w.request(command, args)["success"], command)
        text = w.wait_stderr(lambda t: "end" in t)
        for marker in ("Incorrect API key provided: [REDACTED]", "LiteLLM: bad key [REDACTED]", "printed [REDACTED]",
                       "written [REDACTED] end"):
            self.assertIn(marker, text)
        self.assertNotIn(key[:REDACT_PIECE], text)
        self.assertNotIn(key[-REDACT_PIECE:], text)


#: A worker's stderr under a collection that logs from a __del__ while the scrubber holds
#: its lock (as aiohttp's "Unclosed client session" does through LiteLLM).
GC_LOGGING = """
import gc, logging, os, sys
from dspgo_worker.log import setup_logging
from dspgo_worker import redact
setup_logging("w", "info")
redact.watch_secret("DSPGO_TEST_LEAK_KEY")
class Cycle:
    def __init__(self): self.me = self
    def __del__(self): logging.getLogger("asyncio").error("Unclosed client session %s", os.environ["DSPGO_TEST_LEAK_KEY"])
gc.set_threshold(2)
for i in range(2000):
    Cycle()
    sys.stderr.write("line %d %s\\n" % (i, os.environ["DSPGO_TEST_LEAK_KEY"]))
sys.stderr.flush()
print("finished", file=sys.__stdout__)
"""


class ScrubbedStreamReentryTest(unittest.TestCase):
    def test_a_write_while_scrubbing_neither_hangs_nor_leaks(self):
        import subprocess
        import sys

        key = "sk-live-ZZq7Hw3Kp9Lm2Nx5Rt8Vb1Cd4Fg6"
        env = {**os.environ, "DSPGO_TEST_LEAK_KEY": key, "PYTHONPATH": str(PYTHON_DIR)}
        done = subprocess.run([sys.executable, "-c", GC_LOGGING], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        self.assertEqual(done.stdout, "finished\n")
        self.assertNotIn(key[:REDACT_PIECE], done.stderr)
        self.assertEqual(done.stderr.count("[REDACTED]"), 4000)
