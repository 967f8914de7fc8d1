"""Token usage and the reply cache of the native engine, against the test LM server
(the dspy engine's are in test_dspy_engine)."""

from __future__ import annotations

import unittest

from .helpers import InProcessWorker
from .lmserver import LMServer
from .test_spec import spec_of

SPEC = spec_of([("question", "str")], [("answer", "str"), ("n", "int")])
INPUTS = {"question": "What is Go?"}


class NativeUsageAndCacheTest(unittest.TestCase):
    def setUp(self):
        self.lm = LMServer(self)
        self.w = InProcessWorker(self)

    def configure(self, **extra) -> None:
        self.w.ok("configure_lm", {"provider": "openai", "model": "test-model", "base_url": self.lm.url, "engine": "native", **extra})

    def test_usage_is_the_lm_usage_summed(self):
        self.configure()
        result = self.w.ok("execute_program", {"spec": SPEC, "inputs": INPUTS})
        self.assertEqual(result["outputs"]["n"], self.w.ok("execute_program", {"spec": SPEC, "inputs": INPUTS})["outputs"]["n"])
        usage = result["usage"]
        self.assertGreater(usage["prompt_tokens"], 0)
        self.assertGreater(usage["completion_tokens"], 0)
        self.assertEqual(usage["total_tokens"], usage["prompt_tokens"] + usage["completion_tokens"])

    def test_a_stream_reports_usage_too(self):
        self.configure()
        self.w.auto_credit = 1
        request_id = self.w.call("execute_program", {"spec": SPEC, "inputs": INPUTS}, stream=4)
        reply = self.w.response(request_id)
        self.assertTrue(reply["success"], reply)
        self.assertGreater(reply["result"]["usage"]["completion_tokens"], 0)
        self.assertTrue(self.lm.requests()[0]["stream"])

    def test_react_sums_every_step(self):
        self.configure()
        spec = {**spec_of([("city", "str")], [("forecast", "str")]), "kind": "react"}
        self.w.tools["weather"] = lambda args: {"sky": "clear"}
        tools = [{"name": "weather", "description": "", "schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
        result = self.w.ok("execute_program", {"spec": spec, "inputs": {"city": "Oslo"}, "tools": tools})
        self.assertEqual([s["tool"] for s in result["trajectory"]], ["weather"])
        self.assertEqual(len(self.lm.requests()), 3, "a tool step, the finish step, the answer")
        self.assertGreater(result["usage"]["prompt_tokens"], 0)

    def test_dummy_reports_no_usage(self):
        self.assertNotIn("usage", self.w.ok("execute_program", {"spec": SPEC, "inputs": INPUTS}))

    def test_cache_is_off_unless_configured(self):
        self.configure()
        for _ in range(2):
            self.assertIn("usage", self.w.ok("execute_program", {"spec": SPEC, "inputs": INPUTS}))
        self.assertEqual(len(self.lm.requests()), 2)

        self.lm.reset()
        self.configure(cache=True, temperature=0.25)
        first = self.w.ok("execute_program", {"spec": SPEC, "inputs": INPUTS})
        second = self.w.ok("execute_program", {"spec": SPEC, "inputs": INPUTS})
        self.assertEqual(first["outputs"], second["outputs"])
        self.assertEqual(len(self.lm.requests()), 1, "the second reply came from the cache")
        self.assertNotIn("usage", second, "a cached reply reports no usage")
        self.w.auto_credit = 1
        request_id = self.w.call("execute_program", {"spec": SPEC, "inputs": INPUTS}, stream=4)
        reply = self.w.response(request_id)
        self.assertEqual(reply["result"]["outputs"], first["outputs"])
        self.assertEqual(len(self.lm.requests()), 1, "a stream of the same request is served from the cache too")
        self.assertEqual("".join(c["data"]["delta"] for c in self.w.chunks[request_id] if c["data"]["field"] == "answer"), first["outputs"]["answer"])

    def test_verify_never_uses_the_cache(self):
        for _ in range(2):
            self.configure(cache=True, verify=True)
        self.assertEqual(len(self.lm.requests()), 2)


if __name__ == "__main__":
    unittest.main()
