"""The LM endpoint's base URL: ``configure_lm`` refuses one no request can be sent to,
by the rules of protocol/testdata/base_urls.json, which Go's internal/lmurl checks too;
no message quotes the URL's credentials."""

from __future__ import annotations

import unittest
from urllib.parse import quote

from dspgo_worker.lmconfig import base_url_problem, hide_credentials

from .helpers import InProcessWorker, load_testdata


class BaseURLVectorsTest(unittest.TestCase):
    """protocol/testdata/base_urls.json, as Go's tests read it."""

    def test_every_case(self):
        cases = load_testdata("base_urls.json")["cases"]
        self.assertTrue(any(c["problem"] == "" for c in cases) and any(c["problem"] for c in cases))
        for case in cases:
            with self.subTest(url=case["url"], note=case["note"]):
                self.assertEqual(base_url_problem(case["url"]), case["problem"])


class ConfigureLMBaseURLTest(unittest.TestCase):
    def setUp(self):
        self.w = InProcessWorker(self)

    def test_the_probes_are_refused_when_configured(self):
        for base_url, problem in (
            ("http://[::1", "base_url has an IPv6 address without its closing ']' (write one as http://[::1]:8000/v1)"),
            ("http://127.0.0.1:abc/v1", "base_url has a port that is not a number from 1 to 65535"),
            ("http://user:S3CR3T@127.0.0.1:70000/v1", "base_url has a port that is not a number from 1 to 65535"),
        ):
            for provider in ("openai", "dummy"):
                with self.subTest(base_url=base_url, provider=provider):
                    error = self.w.error("configure_lm", {"provider": provider, "model": "m", "base_url": base_url})
                    self.assertEqual(error["code"], "invalid_argument")
                    self.assertEqual(error["message"], "configure_lm: " + problem)

    def test_in_the_order_of_go(self):
        error = self.w.error("configure_lm", {"provider": "openai", "base_url": "http://h:0", "api_key_env": "1X"})
        self.assertEqual(
            error["message"],
            "configure_lm: model is required for the openai provider; base_url has a port that is not a number from 1 to 65535; "
            'api_key_env is not an environment variable name (its value is not shown: it may be the key itself)',
        )

    def test_good_urls_are_taken(self):
        for base_url in ("", "http://127.0.0.1:8000/v1", "https://user:p%40ss@[::1]/v1", "HTTPS://LM.example"):
            with self.subTest(base_url=base_url):
                self.assertEqual(self.w.ok("configure_lm", {"provider": "openai", "model": "m", "base_url": base_url})["provider"], "openai")


class HideCredentialsTest(unittest.TestCase):
    """``hide_credentials``: what urllib and http.client say about a URL, without its
    credentials, whole or in part, as written or decoded."""

    def test_messages_quoting_the_credentials(self):
        password = "pa:ss@w/rd-S3CR3T"
        written = quote(password, safe="")
        for url in (f"http://user:{written}@127.0.0.1/v1", f"http://{written}@127.0.0.1/v1"):
            for text in (
                f"nonnumeric port: '{written}@127.0.0.1'",  # http.client's, of the host urllib passes on
                "nonnumeric port: 'w/rd-S3CR3T@127.0.0.1'",
                f"unknown url type: '{url}'",
                f"user:{password}",
                f"{written} and {password}",
            ):
                with self.subTest(url=url, text=text):
                    hidden = hide_credentials(text, url)
                    self.assertNotIn("3CR3", hidden)
                    self.assertIn("***", hidden)

    def test_text_without_credentials_is_kept(self):
        self.assertEqual(hide_credentials("nonnumeric port: 'abc'", "http://127.0.0.1:abc/v1"), "nonnumeric port: 'abc'")
        self.assertEqual(hide_credentials("[Errno 111] Connection refused", "http://u:pw@h/v1"), "[Errno 111] Connection refused")


if __name__ == "__main__":
    unittest.main()
