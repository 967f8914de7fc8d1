"""The dspy engine through the real DSPy library, against the OpenAI-compatible test LM
server (``internal/lmtest``), in a worker served in this process.

These need dspy: the dspy environment of ``make test`` runs them (and fails them when
dspy is missing); the bare interpreter skips them.
"""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
import unittest
from unittest import mock

from .helpers import WAIT, HandlerModuleMixin, InProcessWorker, WorkerProcess, assert_same_json, exit_within
from .lmserver import LMServer, require_dspy
from .test_spec import spec_of

KEY_ENV = "DSPGO_TEST_DSPY_KEY"
SECRET = "sk-dspy-test-key-0123456789"
OTHER_KEY_ENV = "DSPGO_TEST_DSPY_OTHER_KEY"
OTHER_SECRET = "sk-dspy-other-key-9876543210"

#: Executions in flight at once in the concurrency test, and the test LM's latency there.
IN_FLIGHT, IN_FLIGHT_LATENCY = 200, 2.0
#: Most threads the worker may add while IN_FLIGHT executions wait on the LM (its loop,
#: reading thread and small thread pools; not one per execution).
IN_FLIGHT_THREADS = 24

TYPED = spec_of(
    [("question", "str"), ("n", "int")],
    [("answer", "str"), ("count", "int"), ("score", "float"), ("ok", "bool"), ("tags", "list[str]"),
     ("ids", "list[int]"), ("weights", "dict[str, float]"), ("level", "Literal['low', 'mid', 'high']")],
)
TYPED["signature"]["inputs"][0]["description"] = "the question to answer"
INPUTS = {"question": "What is Go?", "n": 3}
WEATHER_TOOLS = [{"name": "weather", "description": "Today's forecast for a city.",
                  "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
PY_TYPES = {"answer": str, "count": int, "score": float, "ok": bool, "tags": list, "ids": list, "weights": dict, "level": str}


class DspyEngineTest(unittest.TestCase):
    def setUp(self):
        require_dspy(self)
        self.lm = LMServer(self)
        patcher = mock.patch.dict(os.environ, {KEY_ENV: SECRET, OTHER_KEY_ENV: OTHER_SECRET})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.w = InProcessWorker(self)

    def configure(self, engine: str = "dspy", model: str = "test-model", **extra) -> dict:
        args = {"provider": "openai", "model": model, "base_url": self.lm.url, "api_key_env": KEY_ENV, "engine": engine, **extra}
        return self.w.ok("configure_lm", args)

    def execute(self, spec: dict, inputs: dict, **fields) -> dict:
        return self.w.ok("execute_program", {"spec": spec, "inputs": inputs}, **fields)

    def sent_by_both_engines(self, spec: dict, inputs: dict, **lm) -> dict:
        """The messages after the system one that each engine (``dspy``, ``native``) sent
        in the one LM request of a run of ``spec`` on ``inputs``, and under ``requests``
        the two requests' records."""
        sent: dict = {"requests": []}
        for engine in ("dspy", "native"):
            self.lm.reset()
            self.configure(engine, **lm)
            self.execute(spec, inputs)
            (request,) = self.lm.requests()
            sent["requests"].append(request)
            sent[engine] = json.loads(request["body"])["messages"][1:]
        return sent

    def test_predict_gives_every_type_typed(self):
        self.assertEqual(self.configure()["engine"], "dspy")
        result = self.execute(TYPED, INPUTS)
        outputs = result["outputs"]
        self.assertEqual(list(outputs), [name for name in PY_TYPES])
        for name, typ in PY_TYPES.items():
            self.assertIsInstance(outputs[name], typ, name)
        self.assertNotIsInstance(outputs["count"], bool)
        self.assertIn(outputs["level"], ("low", "mid", "high"))
        self.assertTrue(all(isinstance(i, int) for i in outputs["ids"]))
        self.assertTrue(all(isinstance(v, float) for v in outputs["weights"].values()))

    def test_the_engines_agree_on_typed_outputs(self):
        for kind in ("predict", "chain_of_thought"):
            spec = {**TYPED, "kind": kind}
            with self.subTest(kind=kind):
                self.configure("dspy")
                by_dspy = self.execute(spec, INPUTS)
                self.configure("native")
                by_native = self.execute(spec, INPUTS)
                self.assertEqual(by_dspy["outputs"], by_native["outputs"])
                if kind == "chain_of_thought":
                    self.assertEqual(next(iter(by_dspy["outputs"])), "reasoning")

    def test_a_program_of_no_inputs(self):
        """DSPy's "-> joke": both engines prompt with no input field and agree on the outputs."""
        spec = spec_of([], [("joke", "str"), ("rating", "int")])
        by_engine = {}
        for engine in ("dspy", "native"):
            self.lm.reset()
            self.configure(engine)
            by_engine[engine] = self.execute(spec, {})["outputs"]
            (request,) = self.lm.requests()
            self.assertEqual([f["name"] for f in request["fields"]], ["joke", "rating"])
            system = request["messages"][0]["content"]
            self.assertTrue(system.startswith("Your input fields are:\n\nYour output fields are:\n1. `joke` (str)"), system)
        self.assertEqual(by_engine["dspy"], by_engine["native"])
        self.assertIsInstance(by_engine["dspy"]["rating"], int)

    def test_a_conversation_history_is_written_as_dspy_writes_it(self):
        """A dspy.History input: both engines send its messages as earlier turns, the same
        turns and the same current input; its values are converted first."""
        for kind in ("predict", "chain_of_thought"):
            spec = spec_of([("question", "str"), ("history", "dspy.History")], [("answer", "str"), ("score", "int")], kind=kind)
            history = {"messages": [
                {"question": "Who wrote it?", "answer": "Ann", "score": 3},
                {"question": ["a", "b"], "answer": "both"},
                {"answer": "an output alone"},
                {"question": "Why?"},
            ]}
            sent = {}
            for engine in ("dspy", "native"):
                with self.subTest(kind=kind, engine=engine):
                    self.lm.reset()
                    self.configure(engine)
                    outputs = self.execute(spec, {"question": "And Bob?", "history": history})["outputs"]
                    self.assertIsInstance(outputs["score"], int)
                    (request,) = self.lm.requests()
                    sent[engine] = [(m["role"], m["content"]) for m in request["messages"][1:]]
            self.assertEqual(sent["dspy"], sent["native"], kind)
            roles = [role for role, _ in sent["dspy"]]
            self.assertEqual(roles, ["user", "assistant", "user", "assistant", "assistant", "user", "assistant", "user"])
            self.assertIn("«a»", sent["native"][2][1], "a list held by a str field is a numbered list")
        error = self.w.error("execute_program", {"spec": spec, "inputs": {"question": "?", "history": [{"question": "Who?"}]}})
        self.assertEqual(error["code"], "invalid_argument")
        self.assertIn('input history: expected dspy.History, an object {"messages": [{field: value, …}, …]}, got array', error["message"])

    def test_integer_literals(self):
        """Literal[1, 2, 3] (DSPy's scores and ratings): an input takes one of the ints, an
        output comes back as one, on both engines alike."""
        spec = spec_of([("text", "str"), ("floor", "Literal[1, 2, 3]")], [("rating", "Literal[1, 2, 3, 4, 5]"), ("sign", "Optional[Literal[0, 1]]")])
        outputs = {}
        for engine in ("dspy", "native"):
            with self.subTest(engine=engine):
                self.configure(engine)
                outputs[engine] = self.execute(spec, {"text": "Great food.", "floor": 2})["outputs"]
                self.assertIn(outputs[engine]["rating"], (1, 2, 3, 4, 5))
                self.assertIs(type(outputs[engine]["rating"]), int)
                error = self.w.error("execute_program", {"spec": spec, "inputs": {"text": "?", "floor": "2"}})
                self.assertEqual(error["code"], "invalid_argument")
                self.assertIn('input floor: expected Literal[1, 2, 3], got string "2"', error["message"])
        self.assertEqual(outputs["dspy"], outputs["native"])
        prompt = self.lm.requests()[-1]["messages"][0]["content"]
        self.assertIn("Literal[1, 2, 3, 4, 5]", prompt)

    def test_dates_and_datetimes(self):
        """datetime.date and datetime.datetime (DSPy's ``current_date: datetime.date``): the
        inputs reach the LM as DSPy writes them (the same user message from both engines, a
        demo's too), the outputs come back as their canonical text on both engines alike,
        and a bad input is refused before any request."""
        spec = spec_of([("day", "datetime.date"), ("seen", "list[datetime.datetime]")],
                       [("due", "datetime.date"), ("at", "datetime.datetime"), ("next", "Optional[datetime.date]"), ("log", "list[datetime.datetime]")])
        spec["demos"] = [{"inputs": {"day": "2026-01-02", "seen": ["2026-01-02T03:04:05+00:00"]},
                          "outputs": {"due": "2026-01-09", "at": "2026-01-02 09:30", "next": None, "log": []}}]
        inputs = {"day": "2026-12-07", "seen": ["2026-12-07T11:05:00.5+01:00", "2026-12-07 12:00Z"]}
        sent = self.sent_by_both_engines(spec, inputs)
        self.assertEqual(sent["dspy"][:-1], sent["native"][:-1], "the demo")
        asked = {engine: sent[engine][-1]["content"].split("Respond with")[0] for engine in ("dspy", "native")}
        self.assertEqual(asked["dspy"], asked["native"], "the inputs (the notes of the list outputs differ)")
        for engine in ("dspy", "native"):
            self.assertIn("`[[ ## due ## ]]` (must be formatted as a valid Python date), then `[[ ## at ## ]]` (must be formatted as a valid Python datetime)",
                          sent[engine][-1]["content"], engine)
        self.assertEqual(sent["native"][-1]["content"].split("\n\n")[:2],
                         ["[[ ## day ## ]]\n2026-12-07", '[[ ## seen ## ]]\n["2026-12-07T11:05:00.500000+01:00", "2026-12-07T12:00:00Z"]'])
        self.assertIn("[[ ## seen ## ]]\n[\"2026-01-02T03:04:05Z\"]", sent["native"][0]["content"], "the demo's datetime, canonical")
        self.assertIn("[[ ## at ## ]]\n2026-01-02T09:30:00\n", sent["native"][1]["content"])

        outputs = {}
        for engine in ("dspy", "native"):
            with self.subTest(engine=engine):
                self.configure(engine)
                outputs[engine] = self.execute(spec, inputs)["outputs"]
                self.assertRegex(outputs[engine]["due"], r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
                self.assertRegex(outputs[engine]["at"], r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")
                self.assertEqual(len(outputs[engine]["log"]), 2)
                error = self.w.error("execute_program", {"spec": spec, "inputs": {**inputs, "day": "7 Dec 2026"}})
                self.assertEqual(error["code"], "invalid_argument")
                self.assertEqual(error["message"], 'input day: expected datetime.date (YYYY-MM-DD), got string "7 Dec 2026"')
        self.assertEqual(outputs["dspy"], outputs["native"])
        self.assertIn('"format": "date"', self.lm.requests()[-1]["messages"][0]["content"], "DSPy's schema note of a date output")

    def test_optional_inputs_left_out(self):
        """An Optional input left out is left out of the prompt, as DSPy 3.4.1's ChatAdapter
        leaves it (no section, no warning), while a null is written "None" (and a bool
        "True"): the same user messages from both engines, and the same outputs."""
        spec = spec_of([("question", "str"), ("hint", "Optional[str]"), ("strict", "bool")], [("answer", "str")])
        spec["demos"] = [{"inputs": {"question": "Who?", "strict": False}, "outputs": {"answer": "Ann"}},
                         {"inputs": {"question": "Who?", "hint": "A name.", "strict": False}, "outputs": {"answer": "Ann"}}]
        left = self.sent_by_both_engines(spec, {"question": "Why?", "strict": True})
        self.assertEqual(left["dspy"], left["native"])
        self.assertTrue(left["native"][0]["content"].startswith("This is an example of the task, though some input or output fields are not supplied."),
                        "a demo that leaves an input out is incomplete, as DSPy shows it")
        self.assertNotIn("hint ## ]]", left["native"][0]["content"])
        self.assertIn("[[ ## hint ## ]]\nA name.", left["native"][2]["content"])
        self.assertEqual(left["native"][-1]["content"].split("\n\n")[:2], ["[[ ## question ## ]]\nWhy?", "[[ ## strict ## ]]\nTrue"])
        self.assertNotIn("hint ## ]]", left["native"][-1]["content"])
        null = self.sent_by_both_engines(spec, {"question": "Why?", "hint": None, "strict": False})
        self.assertEqual(null["dspy"], null["native"])
        self.assertIn("[[ ## hint ## ]]\nNone\n\n[[ ## strict ## ]]\nFalse", null["native"][-1]["content"])
        outputs = {}
        for engine in ("dspy", "native"):
            self.configure(engine)
            outputs[engine] = self.execute(spec, {"question": "Why?", "strict": True})["outputs"]
        self.assertEqual(outputs["dspy"], outputs["native"])

    def test_instructions_and_demos_without_inputs_as_dspy_writes_them(self):
        """Instructions as DSPy reads them (inspect.cleandoc: common indentation, blank lines
        around) and writes them (each line indented), and a demo that holds no input (its
        only input, Optional, left out) left out as DSPy leaves it: the same messages from
        both engines, the system message included."""
        spec = spec_of([("hint", "Optional[str]")], [("answer", "str")], instructions="  Answer briefly.\n      Then stop.\n\n")
        spec["demos"] = [{"inputs": {}, "outputs": {"answer": "Ann"}}, {"inputs": {"hint": "A name."}, "outputs": {"answer": "Ann"}}]
        sent = self.sent_by_both_engines(spec, {"hint": "Who?"})
        dspy_messages, native_messages = (json.loads(r["body"])["messages"] for r in sent["requests"])
        self.assertEqual(dspy_messages, native_messages)
        self.assertTrue(native_messages[0]["content"].endswith("your objective is: \n        Answer briefly.\n        Then stop."))
        self.assertEqual(len(native_messages), 4, "system, the one demo with an input, the input")

    def test_images_are_sent_as_dspy_sends_them(self):
        """dspy.Image inputs, whole, in a list, in a dict and Optional, in the run's inputs
        and a demo's: both engines send the same messages, the images as image_url content
        parts between the text's pieces, in order."""
        cat, dog, gif = "https://example.com/cat.png", "data:image/png;base64,iVBORw0KGgo=", "gs://bucket/a.gif"
        for kind in ("predict", "chain_of_thought"):
            spec = spec_of(
                [("photo", "dspy.Image"), ("labels", "list[str]"), ("more", "list[dspy.Image]"),
                 ("named", "dict[str, dspy.Image]"), ("spare", "Optional[dspy.Image]")],
                [("answer", "str"), ("score", "int")], kind=kind)
            spec["demos"] = [{"inputs": {"photo": {"url": gif}, "labels": ["x"], "more": [], "named": {"a": gif}, "spare": gif},
                              "outputs": {"answer": "a gif", "score": 1}, **({"reasoning": "it moves"} if kind == "chain_of_thought" else {})}]
            inputs = {"photo": cat, "labels": ["cat", "dog"], "more": [dog, {"url": cat}], "named": {"front": dog}, "spare": {"url": gif}}
            sent = self.sent_by_both_engines(spec, inputs, image_urls=True)
            self.assertEqual(sent["dspy"], sent["native"], kind)
            for request in sent["requests"]:
                self.assertEqual(request["images"], [gif, gif, gif, cat, dog, cat, dog, gif])
            self.assertEqual(sent["native"][-1]["content"][:3], [
                {"type": "text", "text": "[[ ## photo ## ]]\n"},
                {"type": "image_url", "image_url": {"url": cat}},
                {"type": "text", "text": '\n\n[[ ## labels ## ]]\n["cat", "dog"]\n\n[[ ## more ## ]]\n["'},
            ])

    def test_files_are_sent_as_dspy_sends_them(self):
        """dspy.File inputs (a PDF to read), in the run's inputs and a demo's: both engines
        send the same messages, each file a ``file`` content part; a file_id, a file stored
        with the provider under the worker's key, is refused."""
        pdf, txt = "data:application/pdf;base64,JVBERi0xLjQK", "data:text/plain;base64,aGVsbG8="
        spec = spec_of([("document", "dspy.File"), ("more", "list[dspy.File]"), ("question", "str")], [("answer", "str")])
        spec["demos"] = [{"inputs": {"document": {"file_data": txt, "filename": "hello.txt"}, "more": [], "question": "Who?"},
                          "outputs": {"answer": "hello"}}]
        inputs = {"document": {"file_data": pdf, "filename": "report.pdf"}, "more": [txt], "question": "What does it say?"}
        sent = self.sent_by_both_engines(spec, inputs)
        self.assertEqual(sent["dspy"], sent["native"])
        for engine in ("dspy", "native"):
            self.configure(engine)
            error = self.w.error("execute_program", {"spec": spec, "inputs": {**inputs, "document": {"file_id": "file-abc"}}})
            self.assertEqual(error["code"], "invalid_argument", engine)
            self.assertIn("input document: a file_id names a file stored with the model's provider", error["message"])
        files = [p["file"] for m in sent["native"] if isinstance(m["content"], list) for p in m["content"] if p["type"] == "file"]
        self.assertEqual(files, [{"file_data": txt, "filename": "hello.txt"}, {"file_data": pdf, "filename": "report.pdf"},
                                 {"file_data": txt, "filename": "my_file.pdf"}], "a file without a name is named as LiteLLM names it")

    def test_sounds_are_sent_as_dspy_sends_them(self):
        """dspy.Audio inputs (a recording to hear), in the run's inputs and a demo's: both
        engines send the same messages, each sound an ``input_audio`` content part."""
        spec = spec_of([("recording", "dspy.Audio"), ("question", "str")], [("answer", "str")])
        spec["demos"] = [{"inputs": {"recording": "data:audio/mp3;base64,SUQz", "question": "Who?"}, "outputs": {"answer": "Ann"}}]
        inputs = {"recording": {"data": "UklGRg==", "audio_format": "wav"}, "question": "What is said?"}
        sent = self.sent_by_both_engines(spec, inputs)
        self.assertEqual(sent["dspy"], sent["native"])
        sounds = [p["input_audio"] for m in sent["native"] if isinstance(m["content"], list) for p in m["content"] if p["type"] == "input_audio"]
        self.assertEqual(sounds, [{"data": "SUQz", "format": "mp3"}, {"data": "UklGRg==", "format": "wav"}])

    def test_images_by_url_only_when_configured(self):
        """By default an LM takes images as data: URIs only: an image given by URL, in the
        inputs or a demo, is refused before any request (the model's server
        would fetch it, wherever it points); the dummy LM, which fetches nothing, takes it."""
        png = "data:image/png;base64,iVBORw0KGgo="
        spec = spec_of([("photo", "dspy.Image"), ("more", "list[dspy.Image]")], [("answer", "str")])
        for engine in ("dspy", "native"):
            with self.subTest(engine=engine):
                self.lm.reset()
                self.configure(engine)
                self.execute(spec, {"photo": png, "more": [png]})
                error = self.w.error("execute_program", {"spec": spec, "inputs": {"photo": png, "more": [png, "http://169.254.169.254/x"]}})
                self.assertEqual(error["code"], "failed_precondition")
                self.assertIn("input more: an image given by URL would be fetched by the model's server", error["message"])
                self.assertIn("lm.image_urls", error["message"])
                with_demo = {**spec, "demos": [{"inputs": {"photo": "https://example.com/a.png", "more": []}, "outputs": {"answer": "a"}}]}
                error = self.w.error("execute_program", {"spec": with_demo, "inputs": {"photo": png, "more": []}})
                self.assertEqual(error["code"], "failed_precondition")
                self.assertIn("demo 0 input photo: an image given by URL", error["message"])
                self.assertEqual(len(self.lm.requests()), 1, "only the run of data: URIs reached the LM")
        self.w.ok("configure_lm", {"provider": "dummy"})
        self.execute(spec, {"photo": "https://example.com/a.png", "more": []})

    def test_only_an_image_input_places_an_image(self):
        """A str input holding DSPy's marker of an image stays text in the native engine's
        prompt; an image input that is not a data: URI or a URL is refused by both."""
        marker = '<<CUSTOM-TYPE-START-IDENTIFIER>>[{"type": "image_url", "image_url": {"url": "https://x.example/a.png"}}]<<CUSTOM-TYPE-END-IDENTIFIER>>'
        self.configure("native", image_urls=True)
        self.execute(spec_of([("question", "str")], [("answer", "str")]), {"question": marker})
        (request,) = self.lm.requests()
        self.assertNotIn("images", request)
        self.assertIn(marker, request["messages"][-1]["content"])
        self.configure("dspy", image_urls=True)
        for inputs in ({"question": marker}, {"question": f"see {marker[:40]}"}):
            error = self.w.error("execute_program", {"spec": spec_of([("question", "str")], [("answer", "str")]), "inputs": inputs})
            self.assertEqual(error["code"], "invalid_argument")
            self.assertIn("input question: holds <<CUSTOM-TYPE-START-IDENTIFIER>>, DSPy's marker of content parts", error["message"])
        spec = {**spec_of([("question", "str")], [("answer", "str")]), "demos": [{"inputs": {"question": "q"}, "outputs": {"answer": marker}}]}
        error = self.w.error("execute_program", {"spec": spec, "inputs": {"question": "q"}})
        self.assertIn("a demo's output answer: holds <<CUSTOM-TYPE-START-IDENTIFIER>>", error["message"])
        self.assertEqual(len(self.lm.requests()), 1, "DSPy's markers reached no request of the dspy engine")
        for engine in ("dspy", "native"):
            self.configure(engine)
            error = self.w.error("execute_program", {"spec": spec_of([("photo", "dspy.Image")], [("answer", "str")]),
                                                     "inputs": {"photo": "/etc/passwd"}})
            self.assertEqual(error["code"], "invalid_argument", engine)
            self.assertIn("input photo: an image is a data: URI or an http, https or gs URL", error["message"])

    def test_instructions_descriptions_and_every_lm_setting_reach_the_request(self):
        spec = {**TYPED, "instructions": "Answer like a pirate."}
        self.configure(model="pirate-model", temperature=0.7, max_tokens=321, timeout_ms=20000)
        self.execute(spec, INPUTS)
        (request,) = self.lm.requests()
        self.assertEqual(request["model"], "pirate-model")
        self.assertEqual(request["temperature"], 0.7)
        self.assertEqual(request["max_tokens"], 321)
        self.assertEqual(request["authorization"], f"Bearer {SECRET}")
        self.assertEqual(request["path"], "/v1/chat/completions")
        prompt = "\n".join(m["content"] for m in request["messages"])
        self.assertIn("Answer like a pirate.", prompt)
        self.assertIn("the question to answer", prompt, "a field's description")
        self.assertEqual([f["name"] for f in request["fields"]], list(PY_TYPES))

    def test_usage_is_the_lm_usage(self):
        self.configure()
        result = self.execute(TYPED, INPUTS)
        (request,) = self.lm.requests()
        usage = result["usage"]
        self.assertEqual(set(usage), {"prompt_tokens", "completion_tokens", "total_tokens"})
        self.assertGreater(usage["prompt_tokens"], 0)
        self.assertEqual(usage["total_tokens"], usage["prompt_tokens"] + usage["completion_tokens"])

    def test_cache_is_off_unless_configured(self):
        self.configure()
        first, second = self.execute(TYPED, INPUTS), self.execute(TYPED, INPUTS)
        self.assertEqual(first["outputs"], second["outputs"])
        self.assertEqual(len(self.lm.requests()), 2, "no cache by default")
        self.assertIn("usage", second)

        self.lm.reset()
        self.configure(cache=True, model="cached-model")
        first, second = self.execute(TYPED, INPUTS), self.execute(TYPED, INPUTS)
        self.assertEqual(first["outputs"], second["outputs"])
        self.assertEqual(len(self.lm.requests()), 1, "the second reply came from the cache")
        self.assertIn("usage", first)
        self.assertNotIn("usage", second, "a cached reply reports no usage")

    def test_errors_map_to_codes(self):
        cases = [
            ("test-model+status=401", "failed_precondition", None),
            ("test-model+status=400", "invalid_argument", None),
            ("test-model+garbage", "internal", "answer"),
        ]
        for model, code, named in cases:
            with self.subTest(model=model):
                self.configure(model=model)
                error = self.w.error("execute_program", {"spec": TYPED, "inputs": INPUTS})
                self.assertEqual(error["code"], code, error["message"])
                self.assertNotIn(SECRET, error["message"])
                if named:
                    self.assertIn(named, error["message"], "the message names a field")

    def test_rate_limit_is_resource_exhausted_after_the_retries(self):
        self.configure(model="test-model+status=429,retry_after=0")
        error = self.w.error("execute_program", {"spec": TYPED, "inputs": INPUTS}, timeout=60)
        self.assertEqual(error["code"], "resource_exhausted", error["message"])
        self.assertGreater(len(self.lm.requests()), 1, "retried before giving up")

    def test_a_slow_lm_is_deadline_exceeded_and_the_request_is_closed(self):
        self.configure(model="test-model+latency=30s")
        started = time.monotonic()
        error = self.w.error("execute_program", {"spec": TYPED, "inputs": INPUTS}, deadline_ms=500)
        self.assertEqual(error["code"], "deadline_exceeded")
        self.assertLess(time.monotonic() - started, 10)
        self.wait_canceled(1)

    def test_an_lm_slower_than_its_timeout_is_deadline_exceeded(self):
        self.configure(model="test-model+latency=30s", timeout_ms=300)
        started = time.monotonic()
        error = self.w.error("execute_program", {"spec": TYPED, "inputs": INPUTS})
        self.assertEqual(error["code"], "deadline_exceeded", error["message"])
        self.assertLess(time.monotonic() - started, 20)
        self.wait_canceled(1)

    def test_cancel_closes_the_http_request_and_returns_at_once(self):
        self.configure(model="test-model+latency=30s")
        request_id = self.w.call("execute_program", {"spec": TYPED, "inputs": INPUTS})
        self.wait_requests(1)
        started = time.monotonic()
        self.w.send({"id": 99, "command": "cancel", "args": {"id": request_id}})
        reply = self.w.response(request_id)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(reply["error"]["code"], "canceled")
        self.wait_canceled(1)
        from dspgo_worker.dspy_engine import SharedLMs

        runs = [runs for _, runs in self.w.worker.state("dspy_lms", SharedLMs).lms()]
        self.assertEqual(runs, [0], "the cancelled run gave its LM back")

    def test_streamed_run_hands_on_chunks_as_the_lm_sends_them(self):
        self.configure(model="test-model+chunk_delay=20ms")
        self.w.auto_credit = 1
        spec = {**TYPED, "kind": "chain_of_thought"}
        request_id = self.w.call("execute_program", {"spec": spec, "inputs": INPUTS}, stream=4)
        self.w.wait_until(lambda: self.w.chunks.get(request_id), WAIT, "a first chunk")
        self.assertFalse(self.lm.requests()[0]["done"], "the first chunk came while the LM was still sending")
        reply = self.w.response(request_id)
        self.assertTrue(reply["success"], reply)
        chunks = [c["data"] for c in self.w.chunks[request_id]]
        self.assertEqual(reply["chunks"], len(chunks))
        outputs = reply["result"]["outputs"]
        self.assertEqual(list(dict.fromkeys(c["field"] for c in chunks)), list(outputs), "fields in output order")
        self.assertEqual("".join(c["delta"] for c in chunks if c["field"] == "answer"), outputs["answer"])
        self.assertGreater(sum(1 for c in chunks if c["field"] == "answer"), 1, "a str output comes in pieces")
        self.assertIn("usage", reply["result"])
        self.assertTrue(self.lm.requests()[0]["stream"])
        self.configure(model="test-model")
        self.assertEqual(self.execute(spec, INPUTS)["outputs"], outputs, "the same outputs as without a stream")

    def test_the_json_adapter_formats_the_prompts(self):
        """dspy_adapter json runs the program with dspy.JSONAdapter, as
        dspy.configure(adapter=dspy.JSONAdapter()) does: one request in its format, the
        same typed outputs; a stream sends each field whole before the final response
        (JSON is no ChatAdapter section to cut)."""
        self.configure(dspy_adapter="json")
        outputs = self.execute(TYPED, INPUTS)["outputs"]
        (request,) = self.lm.requests()
        self.assertEqual(request["format"], "json")
        self.assertIn("Outputs will be a JSON object with the following fields.", request["messages"][0]["content"])
        self.configure()
        self.assertEqual(self.execute(TYPED, INPUTS)["outputs"], outputs, "the value rule's outputs, whatever the format")
        self.assertEqual(self.lm.requests()[-1]["format"], "chat")

        self.configure(dspy_adapter="json")
        self.w.auto_credit = 16
        request_id = self.w.call("execute_program", {"spec": TYPED, "inputs": INPUTS}, stream=16)
        reply = self.w.response(request_id)
        self.assertTrue(reply["success"], reply)
        chunks = [c["data"] for c in self.w.chunks.get(request_id, [])]
        self.assertEqual([c["field"] for c in chunks], list(outputs), "each field once, whole, in order")
        self.assertEqual(chunks[0]["delta"], outputs["answer"])
        self.assertEqual(reply["result"]["outputs"], outputs)

    def test_a_reply_that_does_not_parse_is_asked_again_as_json_adapter_asks(self):
        """DSPy 3.4.1's ChatAdapter asks again through JSONAdapter when a reply does not
        parse: the test LM answers the first request with text no adapter parses and the
        second as the prompt asks. Both engines send the same two requests (the second
        JSONAdapter's: its messages, no response_format for a model DSPy's catalog does
        not know) and give the same outputs and usage (both calls')."""
        place = {"name": "Place", "description": "A place.", "fields": [
            {"name": "city", "type": "", "description": "its name"}, {"name": "zip", "type": "Optional[int]", "description": ""}]}
        model_spec = spec_of([("question", "str")], [("place", "Place"), ("seen", "list[Place]")])
        model_spec["signature"]["models"] = [place]
        demo_spec = spec_of([("question", "str")], [("answer", "str"), ("n", "int")])
        demo_spec["demos"] = [{"inputs": {"question": "Who?"}, "outputs": {"answer": "Ann", "n": 2}},
                              {"inputs": {"question": "Why?"}, "outputs": {"answer": "So."}}]
        cases = {
            "str, int and list": (spec_of([("question", "str"), ("n", "int")], [("answer", "str"), ("count", "int"), ("tags", "list[str]")]), INPUTS),
            "a model": (model_spec, {"question": "Where?"}),
            "chain_of_thought": ({**TYPED, "kind": "chain_of_thought"}, INPUTS),
            "demos": (demo_spec, {"question": "What?"}),
            "no inputs": (spec_of([], [("joke", "str"), ("d", "Optional[dict[str, int]]")]), {}),
        }
        for name, (spec, inputs) in cases.items():
            results, bodies = {}, {}
            for engine in ("dspy", "native"):
                with self.subTest(case=name, engine=engine):
                    self.lm.reset()
                    self.configure(engine, model="test-model+garbage,fail_first=1")
                    results[engine] = self.execute(spec, inputs)
                    requests = self.lm.requests()
                    self.assertEqual([r["format"] for r in requests], ["chat", "json"])
                    bodies[engine] = [json.loads(r["body"]) for r in requests]
            with self.subTest(case=name):
                self.assertEqual(bodies["native"], bodies["dspy"])
                self.assertEqual(results["native"]["outputs"], results["dspy"]["outputs"])
                self.assertEqual(results["native"]["usage"], results["dspy"]["usage"])

    def test_the_json_requests_response_format_is_dspys(self):
        """The response_format of JSONAdapter's request (which ChatAdapter falls back to) as
        DSPy sends it for models its catalog knows: structured outputs, JSON mode for a
        model without a response schema or for a dict output, none for an unknown model."""
        place = {"name": "Place", "description": "A place.", "fields": [
            {"name": "city", "type": "", "description": "its name"}, {"name": "zip", "type": "Optional[int]", "description": ""},
            {"name": "kind", "type": "Literal['a', 'b']", "description": "", "default": "a"},
            {"name": "near", "type": "Optional[Spot]", "description": "the next one"}, {"name": "spot", "type": "Spot", "description": "its spot"}]}
        spot = {"name": "Spot", "fields": [{"name": "x", "type": "float", "description": ""}]}
        model_spec = spec_of([("question", "str")], [("place", "Place"), ("seen", "list[Place]"), ("maybe", "Optional[Place]"),
                                                     ("at", "datetime.datetime"), ("pair", "tuple[int, str]"), ("any", "Any")])
        model_spec["signature"]["models"] = [place, spot]
        defaults = spec_of([("question", "str")], [("answer", "str"), ("n", "int"), ("tags", "Optional[list[str]]")], kind="chain_of_thought")
        defaults["signature"]["outputs"][1].update(default=5, description="a count")
        specs = [model_spec, defaults, spec_of([("question", "str")], [("d", "dict[str, int]")]), TYPED]
        from dspgo_worker.response_format import json_response_format
        from dspgo_worker.spec import CompiledSpec

        for model in ("gpt-4o-mini", "openai/gpt-4o-mini", "gpt-3.5-turbo", "claude-sonnet-4-5", "test-model"):
            for i, spec in enumerate(specs):
                with self.subTest(model=model, spec=i):
                    self.lm.reset()
                    self.configure(model=model, dspy_adapter="json")
                    self.execute(spec, INPUTS if spec is TYPED else {"question": "?"})
                    (request,) = self.lm.requests()
                    sent = json.loads(request["body"]).get("response_format")
                    assert_same_json(self, json_response_format(CompiledSpec(spec), model), sent)  # its keys' order too
                    if model == "gpt-4o-mini" and i == 0:
                        self.assertEqual(sent["type"], "json_schema", "the case compares a schema")

    def test_both_engines_run_the_json_adapter(self):
        """dspy_adapter json on the native engine sends what dspy.JSONAdapter sends (its
        messages and its response_format, for a model DSPy knows and for one it does not),
        one request and no fallback, and reads the reply as it does; a stream sends each
        field whole; a react program's steps and extraction too."""
        bodies: dict = {}
        for model in ("test-model", "gpt-4o-mini"):
            for engine in ("dspy", "native"):
                for kind in ("predict", "chain_of_thought"):
                    with self.subTest(model=model, engine=engine, kind=kind):
                        self.lm.reset()
                        self.configure(engine, model=model, dspy_adapter="json")
                        outputs = self.execute({**TYPED, "kind": kind}, INPUTS)["outputs"]
                        (request,) = self.lm.requests()
                        self.assertEqual(request["format"], "json")
                        body = json.loads(request["body"])
                        bodies[model, engine, kind] = ({k: body.get(k) for k in ("messages", "response_format")}, outputs)
        for model in ("test-model", "gpt-4o-mini"):
            for kind in ("predict", "chain_of_thought"):
                with self.subTest(model=model, kind=kind):
                    self.assertEqual(bodies[model, "native", kind], bodies[model, "dspy", kind])
        self.assertIsNone(bodies["test-model", "dspy", "predict"][0]["response_format"], "a model DSPy does not know")
        self.assertEqual(bodies["gpt-4o-mini", "dspy", "predict"][0]["response_format"], {"type": "json_object"}, "a dict output")

        self.configure("native", dspy_adapter="json")
        self.w.auto_credit = 16
        request_id = self.w.call("execute_program", {"spec": TYPED, "inputs": INPUTS}, stream=16)
        reply = self.w.response(request_id)
        self.assertTrue(reply["success"], reply)
        chunks = [c["data"] for c in self.w.chunks.get(request_id, [])]
        outputs = bodies["test-model", "native", "predict"][1]
        self.assertEqual([c["field"] for c in chunks], list(outputs), "each field once, whole, in order")
        self.assertEqual(reply["result"]["outputs"], outputs)

        spec = {**spec_of([("city", "str")], [("forecast", "str")]), "kind": "react"}
        self.w.tools["weather"] = lambda args: {"city": args.get("city"), "sky": "clear"}
        sent = {}
        for engine in ("dspy", "native"):
            self.lm.reset()
            self.configure(engine, dspy_adapter="json")
            result = self.w.ok("execute_program", {"spec": spec, "inputs": {"city": "Oslo"}, "tools": WEATHER_TOOLS, "max_iters": 3})
            sent[engine] = ([json.loads(r["body"])["messages"] for r in self.lm.requests()], result)
            self.assertTrue(all(r["format"] == "json" for r in self.lm.requests()), engine)
        self.assertGreaterEqual(len(sent["dspy"][0]), 3, "steps, then the extraction")
        self.assertEqual(sent["native"], sent["dspy"], "the same steps and extraction, and the same result")

    def test_the_xml_and_baml_adapters_format_the_prompts(self):
        """dspy_adapter xml and baml run the program with dspy.XMLAdapter and DSPy's
        BAMLAdapter, as dspy.configure(adapter=…) does: one request in its format (XML
        elements; BAML's sections with a JSON reply), the same typed outputs as the chat
        format's; a stream sends each field whole before the final response."""
        spec = spec_of([("question", "str"), ("n", "int")],
                       [("answer", "str"), ("count", "int"), ("score", "float"), ("ok", "bool"), ("level", "Literal['low', 'mid', 'high']")])
        self.configure()
        outputs = self.execute(spec, INPUTS)["outputs"]
        for adapter, fmt, asks in (("xml", "xml", "Respond with the corresponding output fields wrapped in XML tags `<answer>`"),
                                   ("baml", "json", "Respond with a JSON object in the following order of fields: `answer`")):
            with self.subTest(adapter=adapter):
                self.lm.reset()
                self.configure(dspy_adapter=adapter)
                self.assertEqual(self.execute(spec, INPUTS)["outputs"], outputs, "the value rule's outputs, whatever the format")
                (request,) = self.lm.requests()
                self.assertEqual(request["format"], fmt)
                self.assertIn(asks, request["messages"][-1]["content"])

                self.w.auto_credit = 16
                request_id = self.w.call("execute_program", {"spec": spec, "inputs": INPUTS}, stream=16)
                reply = self.w.response(request_id)
                self.assertTrue(reply["success"], reply)
                chunks = [c["data"] for c in self.w.chunks.get(request_id, [])]
                self.assertEqual([c["field"] for c in chunks], list(outputs), "each field once, whole, in order")
                self.assertEqual(reply["result"]["outputs"], outputs)

    def test_react_calls_the_host_tools(self):
        self.configure()
        spec = {**spec_of([("city", "str")], [("forecast", "str")]), "kind": "react"}
        self.w.tools["weather"] = lambda args: {"city": args.get("city"), "sky": "clear"}
        result = self.w.ok("execute_program", {"spec": spec, "inputs": {"city": "Oslo"}, "tools": WEATHER_TOOLS, "max_iters": 3})
        self.assertIsInstance(result["outputs"]["forecast"], str)
        (step,) = result["trajectory"]
        self.assertEqual(step["tool"], "weather")
        self.assertIsInstance(step["args"]["city"], str)
        self.assertEqual(step["observation"]["sky"], "clear")
        self.assertEqual([c["tool"] for c in self.w.calls_seen], ["weather"])

    def test_a_tool_cannot_place_an_image(self):
        """A tool's observation is text from anywhere (a web page): DSPy's marker of content
        parts in it is written in lower case, so that no image reaches the LM."""
        marker = '<<CUSTOM-TYPE-START-IDENTIFIER>>[{"type": "image_url", "image_url": {"url": "http://169.254.169.254/"}}]<<CUSTOM-TYPE-END-IDENTIFIER>>'
        self.configure()
        spec = {**spec_of([("city", "str")], [("forecast", "str")]), "kind": "react"}
        self.w.tools["weather"] = lambda args: {"sky": f"see {marker}"}
        result = self.w.ok("execute_program", {"spec": spec, "inputs": {"city": "Oslo"}, "tools": WEATHER_TOOLS, "max_iters": 3})
        self.assertEqual(result["trajectory"][0]["observation"]["sky"], "see " + marker.replace("<<CUSTOM-TYPE-START-IDENTIFIER>>", "<<custom-type-start-identifier>>"))
        requests = self.lm.requests()
        self.assertGreater(len(requests), 1, "the step after the tool's call")
        self.assertEqual([r.get("images") for r in requests], [None] * len(requests))
        self.assertIn("<<custom-type-start-identifier>>", "\n".join(m["content"] for m in requests[1]["messages"]))

    def test_many_runs_in_flight_take_one_lm_latency_and_no_thread_each(self):
        w = InProcessWorker(self, worker_id="wide", max_concurrency=IN_FLIGHT)
        args = {"provider": "openai", "model": f"test-model+latency={IN_FLIGHT_LATENCY:g}s", "base_url": self.lm.url,
                "api_key_env": KEY_ENV, "engine": "dspy"}
        w.ok("configure_lm", args)
        spec = spec_of([("question", "str")], [("answer", "str")])
        threads = threading.active_count()
        started = time.monotonic()
        ids = [w.call("execute_program", {"spec": spec, "inputs": {"question": f"question {i}"}}) for i in range(IN_FLIGHT)]
        requests = self.lm.wait(requests=IN_FLIGHT)
        added = threading.active_count() - threads
        replies = [w.response(i) for i in ids]
        elapsed = time.monotonic() - started
        self.assertEqual([r for r in replies if not r["success"]], [])
        self.assertFalse(any(r["done"] for r in requests[:IN_FLIGHT]), "every request was in flight at once")
        self.assertLess(added, IN_FLIGHT_THREADS, "no thread per execution")
        self.assertLess(elapsed, IN_FLIGHT_LATENCY + 3.0, "the executions waited on the LM together")

    def test_two_named_lms_in_flight_at_once_keep_their_own_settings(self):
        lms = {
            "alpha": {"model": "alpha-model+latency=500ms", "api_key_env": KEY_ENV, "temperature": 0.1, "secret": SECRET},
            "beta": {"model": "beta-model+latency=500ms", "api_key_env": OTHER_KEY_ENV, "temperature": 0.9, "secret": OTHER_SECRET},
        }
        self.w = InProcessWorker(self, worker_id="two-lms", max_concurrency=16)
        for name, lm in lms.items():
            self.w.ok("configure_lm", {"provider": "openai", "model": lm["model"], "base_url": self.lm.url, "engine": "dspy",
                                       "api_key_env": lm["api_key_env"], "temperature": lm["temperature"], "name": name})
        spec = spec_of([("question", "str")], [("answer", "str")])
        runs = {}  # request id -> (LM name, question)
        for i in range(8):
            for name in lms:
                # beta's questions are longer, so a usage summed over both LMs' runs would show
                question = f"{name} question {i}" + (" with more words" * 4 if name == "beta" else "")
                request_id = self.w.call("execute_program", {"spec": spec, "inputs": {"question": question}, "lm": name})
                runs[request_id] = (name, question)
        in_flight = self.lm.wait(requests=len(runs))
        self.assertFalse(any(r["done"] for r in in_flight[: len(runs)]), "both LMs' runs were in flight at once")
        by_question = {}
        for request in self.lm.wait(done=len(runs)):
            text = "\n".join(m["content"] for m in request["messages"])
            for _, question in runs.values():
                if f"{question}\n" in text + "\n":
                    by_question[question] = request
        for request_id, (name, question) in runs.items():
            with self.subTest(lm=name, question=question):
                lm, request = lms[name], by_question[question]
                self.assertEqual(request["model"], lm["model"])
                self.assertEqual(request["temperature"], lm["temperature"])
                self.assertEqual(request["authorization"], f"Bearer {lm['secret']}")
                usage = self.w.response(request_id)["result"]["usage"]
                words = sum(len(m["content"].split()) for m in request["messages"])
                self.assertEqual(usage["prompt_tokens"], words, "the usage of this run's request only")
        dspy = __import__("dspy")
        self.assertIsNone(dspy.settings.lm, "nothing set globally")

    def test_cancel_while_waiting_for_credit_closes_the_lm_stream(self):
        self.configure(model="test-model+chunk_delay=100ms")
        spec = {**TYPED, "kind": "chain_of_thought"}
        request_id = self.w.call("execute_program", {"spec": spec, "inputs": INPUTS}, stream=1)
        self.w.wait_until(lambda: self.w.chunks.get(request_id), WAIT, "a first chunk")
        started = time.monotonic()
        self.w.send({"id": 99, "command": "cancel", "args": {"id": request_id}})
        reply = self.w.response(request_id)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(reply["error"]["code"], "canceled")
        self.assertEqual(len(self.w.chunks[request_id]), 1, "no chunk past the credit")
        self.wait_canceled(1)

    def test_streamed_react_streams_the_extraction_only(self):
        self.configure(model="test-model+chunk_delay=5ms")
        self.w.auto_credit = 1
        spec = {**spec_of([("city", "str")], [("forecast", "str")]), "kind": "react"}
        self.w.tools["weather"] = lambda args: {"city": args.get("city"), "sky": "clear"}
        request_id = self.w.call("execute_program", {"spec": spec, "inputs": {"city": "Oslo"}, "tools": WEATHER_TOOLS}, stream=2)
        reply = self.w.response(request_id)
        self.assertTrue(reply["success"], reply)
        chunks = [c["data"] for c in self.w.chunks[request_id]]
        self.assertEqual({c["field"] for c in chunks}, {"forecast"}, "the loop's steps are not outputs")
        self.assertEqual("".join(c["delta"] for c in chunks), reply["result"]["outputs"]["forecast"])
        self.assertEqual([step["tool"] for step in reply["result"]["trajectory"]], ["weather"])
        self.assertTrue(all(r["stream"] for r in self.lm.requests()), "every step streamed from the LM")

    def test_the_worker_process_exits_at_once_with_runs_in_flight(self):
        w = WorkerProcess(self)
        args = {"provider": "openai", "model": "test-model+latency=30s", "base_url": self.lm.url, "api_key_env": KEY_ENV,
                "engine": "dspy"}
        self.assertTrue(w.request("configure_lm", args)["success"])
        ids = [w.call("execute_program", {"spec": TYPED, "inputs": INPUTS}) for _ in range(4)]
        self.wait_requests(len(ids))
        started = time.monotonic()
        w.close_stdin()
        self.assertEqual(exit_within(self, w, started, bound=3.0), 0)
        self.assertEqual([w.response(i)["error"]["code"] for i in ids], ["canceled"] * len(ids))
        self.wait_canceled(len(ids))

    def test_runs_share_an_lm_and_give_it_back_however_they_end(self):
        from dspgo_worker.dspy_engine import IDLE_LMS, LM_RUNS, SharedLMs

        lms = self.w.worker.state("dspy_lms", SharedLMs)
        spec = spec_of([("question", "str")], [("answer", "str")])
        self.configure()
        self.execute(spec, {"question": "first"})
        ((lm, runs),) = lms.lms()
        self.assertEqual(runs, 0)
        self.execute(spec, {"question": "second"})
        self.assertEqual(lms.lms(), [(lm, 0)], "the second run used the first one's LM")
        self.configure(model="test-model+status=400")
        self.w.error("execute_program", {"spec": spec, "inputs": {"question": "refused"}})
        self.assertEqual(lms.lms(), [(lm, 0)], "the failed run gave its LM back, closed beyond IDLE_LMS")

        w = InProcessWorker(self, worker_id="shared", max_concurrency=LM_RUNS + 30)
        w.ok("configure_lm", {"provider": "openai", "model": "test-model+latency=500ms", "base_url": self.lm.url,
                              "api_key_env": KEY_ENV, "engine": "dspy"})
        shared = w.worker.state("dspy_lms", SharedLMs)
        self.lm.reset()
        ids = [w.call("execute_program", {"spec": spec, "inputs": {"question": f"q {i}"}}) for i in range(LM_RUNS + 30)]
        self.lm.wait(requests=len(ids))
        self.assertEqual(sorted(runs for _, runs in shared.lms()), [30, LM_RUNS], "LM_RUNS runs share an LM at most")
        self.assertTrue(all(w.response(i)["success"] for i in ids))
        self.assertEqual([runs for _, runs in shared.lms()], [0] * IDLE_LMS, "LMs without runs beyond IDLE_LMS closed")

    def test_cancel_during_a_host_tool_call_ends_the_react_run(self):
        self.configure()
        spec = {**spec_of([("city", "str")], [("forecast", "str")]), "kind": "react"}
        request_id = self.w.call("execute_program", {"spec": spec, "inputs": {"city": "Oslo"}, "tools": WEATHER_TOOLS})
        self.w.wait_until(lambda: self.w.calls, WAIT, "the tool call")
        (call,) = self.w.calls
        self.w.send({"id": 99, "command": "cancel", "args": {"id": request_id}})
        reply = self.w.response(request_id)
        self.assertEqual(reply["error"]["code"], "canceled")
        self.w.wait_until(lambda: self.w.call_cancels, WAIT, "the worker's cancel of its call")
        self.assertEqual(self.w.call_cancels, [call["id"]])
        self.assertEqual(len(self.lm.requests()), 1, "no step after the cancelled tool call")

    def test_a_configuration_dspy_refuses_is_invalid_argument(self):
        # DSPy 3.4.1 refuses a temperature other than 1.0 for OpenAI's reasoning models.
        self.configure(model="gpt-5-mini", temperature=0.5)
        error = self.w.error("execute_program", {"spec": TYPED, "inputs": INPUTS})
        self.assertEqual(error["code"], "invalid_argument", error["message"])
        self.assertIn("dspy.LM refused the configuration", error["message"])
        self.assertNotIn(SECRET, error["message"])
        self.assertEqual(self.lm.requests(), [])

    def test_no_api_key_is_failed_precondition_naming_the_variable(self):
        with mock.patch.dict(os.environ, {KEY_ENV: ""}):
            self.configure()
            error = self.w.error("execute_program", {"spec": TYPED, "inputs": INPUTS})
        self.assertEqual(error["code"], "failed_precondition")
        self.assertIn(KEY_ENV, error["message"])
        self.assertIn("add it to python.pass_env", error["message"])
        self.assertEqual(self.lm.requests(), [])

    def test_verify_checks_what_the_dspy_engine_needs(self):
        """configure_lm's verify (dspgo doctor's check) fails as the runs would when the
        dspy engine runs and its key is missing, although the endpoint needs none."""
        with mock.patch.dict(os.environ, {KEY_ENV: ""}):
            error = self.w.error("configure_lm", {"provider": "openai", "model": "test-model", "base_url": self.lm.url,
                                                  "api_key_env": KEY_ENV, "engine": "auto", "verify": True})
        self.assertEqual(error["code"], "failed_precondition")
        self.assertIn(f"the dspy engine needs an API key: ${KEY_ENV} is unset or empty", error["message"])
        self.assertEqual(self.lm.requests(), [])
        with mock.patch.dict(os.environ, {KEY_ENV: ""}):
            self.assertEqual(self.w.ok("configure_lm", {"provider": "openai", "model": "test-model", "base_url": self.lm.url,
                                                        "api_key_env": KEY_ENV, "engine": "native", "verify": True})["engine"], "native")

    def wait_requests(self, n: int) -> None:
        self.lm.wait(requests=n)

    def wait_canceled(self, n: int) -> None:
        self.lm.wait(canceled=n)


STUCK_IN_EXECUTOR_SOURCE = textwrap.dedent(
    """
    import asyncio
    import threading

    from dspgo_worker import command


    @command("stuck_in_executor")
    async def stuck_in_executor(args, ctx):
        ctx.logger.info("stuck in the executor")
        await asyncio.to_thread(threading.Event().wait)
    """
)


class PredictionValuesTest(unittest.TestCase):
    """The dspy engine hands on the values DSPy produced as they are: made JSON (a model's
    ``model_dump(mode="json")``, a tuple a list, a date its text) and checked against the
    declared type (pydantic's lax mode), never read again as an LM's text (no string is
    stripped, none decoded)."""

    def setUp(self):
        require_dspy(self)
        from dspgo_worker.dspy_engine import ENGINE, import_dspy, model_classes
        from dspgo_worker.spec import CompiledSpec

        self.dspy, self.engine = import_dspy(), ENGINE
        self.compiled = CompiledSpec({"signature": {
            "inputs": [{"name": "q", "type": ""}],
            "outputs": [{"name": "m", "type": "Mdl"}, {"name": "l", "type": "list[str]"}, {"name": "s", "type": "str"},
                        {"name": "u", "type": "Union[int, str]"}, {"name": "t", "type": "tuple[int, str]"},
                        {"name": "d", "type": "datetime.date"}],
            "models": [{"name": "Mdl", "fields": [{"name": "s", "type": ""}, {"name": "l", "type": "list[str]"},
                                                  {"name": "n", "type": "Optional[int]"}]}],
        }})
        self.Mdl = model_classes(self.compiled)["Mdl"]

    def test_values_pass_unchanged(self):
        import datetime

        prediction = self.dspy.Prediction(m=self.Mdl(s="  padded  ", l=["  a  ", " b"]), l=["  a  ", "b  "], s="  x  ", u="42",
                                          t=(1, " y "), d=datetime.date(2024, 1, 2))
        out = self.engine._outputs(self.compiled, prediction)
        self.assertEqual(out, {"m": {"s": "  padded  ", "l": ["  a  ", " b"], "n": None}, "l": ["  a  ", "b  "], "s": "  x  ",
                               "u": "42", "t": [1, " y "], "d": "2024-01-02"})

    def test_values_are_checked(self):
        from dspgo_worker.chat_format import OutputError

        good = {"m": self.Mdl(s="x", l=[]), "l": [], "s": "", "u": 1, "t": (1, "y"), "d": "2024-01-02"}
        for name, bad, want in (("l", ["a", 1], 'output l[1]: expected str, got number 1'),
                                ("s", 5, "output s: expected str, got number 5"),
                                ("t", [1], "output t: expected tuple[int, str], got an array of 1"),
                                ("d", "soon", "output d: expected datetime.date")):
            with self.subTest(output=name), self.assertRaises(OutputError) as caught:
                self.engine._outputs(self.compiled, self.dspy.Prediction(**{**good, name: bad}))
            self.assertIn(want, caught.exception.message)


class StuckDefaultExecutorTest(HandlerModuleMixin, unittest.TestCase):
    """DSPy's blocking steps run on the loop's default executor (``asyncio.to_thread``),
    whose threads are not daemons: one that never returns must not keep the worker
    process alive."""

    handler_module = "dspgo_test_stuck_executor"
    handler_source = STUCK_IN_EXECUTOR_SOURCE

    def test_the_worker_exits_with_a_default_executor_thread_stuck(self):
        worker = self.start_with_handlers("--stop-grace", "0.2")
        stuck = worker.call("stuck_in_executor")
        worker.wait_log("stuck in the executor", request_id=stuck)
        started = time.monotonic()
        worker.close_stdin()
        self.assertEqual(exit_within(self, worker, started), 0)
        self.assertEqual(worker.response(stuck)["error"]["code"], "canceled")


if __name__ == "__main__":
    unittest.main()


class ModelCatalogTest(unittest.TestCase):
    """The models whose JSONAdapter request has a response_format: dspgo's list and
    families against DSPy 3.4.1's own answer (its capabilities of ``openai/<model>``)."""

    def setUp(self):
        require_dspy(self)

    def test_every_model_of_the_catalog(self):
        import gzip
        import importlib.resources

        from dspgo_worker.dspy_engine import import_dspy
        from dspgo_worker.response_format import JSON_MODE_MODELS, SCHEMA_MODELS, model_support

        dspy = import_dspy()
        from dspy.clients.capabilities import capabilities

        snapshot = importlib.resources.files("dspy.clients.model_metadata").joinpath("snapshot.json.gz").read_bytes()
        catalog = json.loads(gzip.decompress(snapshot))
        names = {key.split("/", 1)[1] if key.startswith("openai/") else key
                 for key, entry in catalog.items() if isinstance(entry, dict) and entry.get("litellm_provider") == "openai"}
        names |= SCHEMA_MODELS | JSON_MODE_MODELS
        names |= {"claude-sonnet-4-5", "claude-opus-4-1-20250805", "claude-3-5-sonnet", "gemini-2.5-flash", "gemini-3-pro-lite",
                  "gemini-2.5-flash-tts", "llama3", "test-model", "ft:gpt-4o-mini:org::id", "openai/gpt-4o-mini"}
        for name in sorted(names):
            lm = dspy.LM(name if name.startswith("openai/") else "openai/" + name, api_base="http://127.0.0.1:9/v1", api_key="k")
            found = capabilities(lm)
            want = "json_schema" if found.response_schema else "json_object" if "response_format" in found.params else None
            self.assertEqual(model_support(name), want, name)
