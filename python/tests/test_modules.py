"""Programs of kind ``module``: custom ``dspy.Module`` classes registered with
``dspgo_worker.dspy_module`` and run by the dspy engine against the test LM server
(docs/dspy.md, "Custom modules").

The registration and the spec's rules need no dspy; the runs need dspy and are skipped on
the bare interpreter (failed in the dspy run of ``make test``).
"""

from __future__ import annotations

import json
import os
import threading
import unittest
from unittest import mock

from dspgo_worker import dspy_module
from dspgo_worker.errors import WorkerError
from dspgo_worker.modules import module_factory, module_names, unregister
from dspgo_worker.protocol import quote

from .helpers import WAIT, InProcessWorker
from .lmserver import LMServer, require_dspy
from .test_spec import spec_of

KEY_ENV = "DSPGO_TEST_MODULE_KEY"
SECRET = "sk-module-test-key-0123456789"


def module_spec(name: str, state: dict | None = None, inputs=(("question", "str"),), outputs=(("answer", "str"),)) -> dict:
    spec = spec_of(list(inputs), list(outputs), kind="module")
    spec["module"] = name
    if state is not None:
        spec["state"] = state
    return spec


def three_steps(dspy, ended: threading.Event) -> type:
    """A module of three blocking steps, each a Predict of the last one's answer, that sets
    ``ended`` when its ``forward`` ends, however it ends."""

    class ThreeSteps(dspy.Module):
        def __init__(self):
            super().__init__()
            self.steps = [dspy.Predict("question -> answer") for _ in range(3)]

        def forward(self, question):
            try:
                for step in self.steps:
                    question = step(question=question).answer
                return dspy.Prediction(answer=question)
            finally:
                ended.set()

    return ThreeSteps


class RegistrationTest(unittest.TestCase):
    def register(self, name, factory=None):
        self.addCleanup(unregister, name)
        return dspy_module(name, factory)

    def test_a_class_or_a_factory_is_registered_under_its_name(self):
        @self.register("test.decorated")
        class Decorated:
            pass

        self.assertIsInstance(Decorated, type, "the decorator returns the class")
        self.assertIs(module_factory("test.decorated"), Decorated)
        made = self.register("test-factory", lambda: Decorated())
        self.assertIs(module_factory("test-factory"), made)
        self.assertIn("test.decorated", module_names())

    def test_bad_names_and_twice_are_refused(self):
        for name in ("", "my rag", "a/b", "é", "x" * 129, 7):
            with self.subTest(name=name), self.assertRaisesRegex(ValueError, "may hold only letters"):
                dspy_module(name, object)
        self.register("test-twice", object)
        with self.assertRaisesRegex(ValueError, "registered twice"):
            dspy_module("test-twice", object)
        with self.assertRaisesRegex(ValueError, "is not callable"):
            dspy_module("test-not-callable", "RAG")

    def test_an_unknown_name_names_the_registered_ones(self):
        self.register("test-known", object)
        with self.assertRaises(WorkerError) as caught:
            module_factory("test-unknown")
        self.assertEqual(caught.exception.code, "failed_precondition")
        self.assertIn('no module "test-unknown" is registered on this worker (registered: ', caught.exception.message)
        self.assertIn('"test-known"', caught.exception.message)
        self.assertIn("dspgo_worker.dspy_module in a module of python.handlers", caught.exception.message)


class CreateTest(unittest.TestCase):
    """A worker refuses to create a module program whose module it does not have; with the
    dummy LM a registered one answers as a predict of its signature (no dspy needed)."""

    def test_create_needs_the_module_here(self):
        w = InProcessWorker(self)
        error = w.error("create_program", {"program_id": "p", "spec": module_spec("test-missing")})
        self.assertEqual(error["code"], "failed_precondition")
        self.assertIn('no module "test-missing" is registered', error["message"])

        self.addCleanup(unregister, "test-present")
        dspy_module("test-present", object)
        spec = module_spec("test-present", {"answer": {"demos": []}})
        created = w.ok("create_program", {"program_id": "p", "spec": spec})
        result = w.ok("execute_program", {"spec_hash": created["spec_hash"], "inputs": {"question": "Why?"}})
        self.assertEqual(list(result["outputs"]), ["answer"])
        self.assertRegex(result["outputs"]["answer"], r"^answer [0-9a-f]{8} [0-9a-f]{8}$", "the dummy LM's rule for a str")


class ModuleRunTest(unittest.TestCase):
    """Runs with the real dspy against the test LM server."""

    def setUp(self):
        require_dspy(self)
        import dspy

        self.dspy = dspy
        self.lm = LMServer(self)
        patcher = mock.patch.dict(os.environ, {KEY_ENV: SECRET})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.w = InProcessWorker(self)

        class Draft(dspy.Module):
            """Two steps: a chain of thought drafts, a predictor answers from the draft."""

            def __init__(self):
                super().__init__()
                self.draft = dspy.ChainOfThought("question -> draft")
                self.answer = dspy.Predict("question, draft -> answer, confidence: float")

            def forward(self, question):
                draft = self.draft(question=question).draft
                return self.answer(question=question, draft=draft)

        class AsyncDraft(Draft):
            async def aforward(self, question):
                draft = (await self.draft.acall(question=question)).draft
                return await self.answer.acall(question=question, draft=draft)

        self.Draft = Draft
        for name, factory in (("test-draft", Draft), ("test-async-draft", AsyncDraft), ("test-not-a-module", dict),
                              ("test-broken", lambda: 1 / 0)):
            dspy_module(name, factory)
            self.addCleanup(unregister, name)

    def configure(self, engine: str = "dspy", model: str = "test-model", **extra) -> None:
        self.w.ok("configure_lm", {"provider": "openai", "model": model, "base_url": self.lm.url, "api_key_env": KEY_ENV, "engine": engine, **extra})

    def spec(self, name: str = "test-draft", state: dict | None = None) -> dict:
        return module_spec(name, state, outputs=(("answer", "str"), ("confidence", "float")))

    def saved_state(self) -> dict:
        """What module.save writes for Draft, with an instruction and a demo of its own."""
        module = self.Draft()
        module.answer.signature = module.answer.signature.with_instructions("Answer in one word, from the draft.")
        module.answer.demos = [self.dspy.Example(question="Who wrote it?", draft="Ann did.", answer="Ann", confidence=0.9)]
        state = module.dump_state()
        state["metadata"] = {"dependency_versions": {"dspy": self.dspy.__version__}}
        return json.loads(json.dumps(state))

    def prompts(self) -> list[str]:
        return ["\n".join(m["content"] for m in r["messages"]) for r in self.lm.requests()]

    def test_every_step_calls_the_lm_and_the_outputs_are_typed(self):
        for name in ("test-draft", "test-async-draft"):
            with self.subTest(module=name):
                self.lm.reset()
                self.configure()
                result = self.w.ok("execute_program", {"spec": self.spec(name), "inputs": {"question": "What is Go?"}})
                self.assertEqual(list(result["outputs"]), ["answer", "confidence"])
                self.assertIsInstance(result["outputs"]["answer"], str)
                self.assertIsInstance(result["outputs"]["confidence"], float)
                requests = self.lm.requests()
                self.assertEqual(len(requests), 2, "the draft's call, then the answer's")
                self.assertEqual([f["name"] for f in requests[0]["fields"]], ["reasoning", "draft"])
                self.assertEqual([f["name"] for f in requests[1]["fields"]], ["answer", "confidence"])
                self.assertTrue(all(r["authorization"] == f"Bearer {SECRET}" for r in requests))
                usage = result["usage"]
                self.assertGreater(usage["prompt_tokens"], 0)
                self.assertEqual(usage["total_tokens"], usage["prompt_tokens"] + usage["completion_tokens"])

    def test_pydantic_and_other_python_outputs_arrive_as_json(self):
        """A class-based signature's pydantic models (a list, a nested one, an Enum in them)
        arrive as DSPy's model_dump(mode="json") of the very prediction; an Enum, a date, a
        dataclass and a set a module makes itself as their JSON values; a model where a str
        is declared is refused, naming the field."""
        from .extract_module import Entity, Extractor

        predictions: list = []
        dspy_module("test-extract", lambda: Extractor(predictions))
        self.addCleanup(unregister, "test-extract")
        self.configure()
        outputs = (("entities", "list[dict[str, Any]]"), ("main", "dict[str, str]"), ("kind", "Literal['person', 'place']"),
                   ("day", "str"), ("span", "dict[str, int]"), ("tags", "list[str]"))
        result = self.w.ok("execute_program", {"spec": module_spec("test-extract", inputs=(("text", "str"),), outputs=outputs), "inputs": {"text": "Ann is in Oslo."}})
        prediction = predictions[-1]
        self.assertIsInstance(prediction.main, Entity, "DSPy parsed the reply into the model")
        self.assertEqual(result["outputs"], {
            "entities": [e.model_dump(mode="json") for e in prediction.entities],
            "main": prediction.main.model_dump(mode="json"),
            "kind": prediction.main.kind.value,
            "day": "2026-12-07", "span": {"start": 0, "end": 4}, "tags": ["a", "b"],
        })
        self.assertTrue(result["outputs"]["entities"], "the LM server answered a list of entities")

        error = self.w.error("execute_program", {"spec": module_spec("test-extract", inputs=(("text", "str"),), outputs=(("main", "str"),)), "inputs": {"text": "Ann."}})
        self.assertEqual(error["code"], "internal")
        self.assertEqual(error["message"], "output main: expected str, got object")

    def test_an_optional_input_left_out_takes_the_forwards_default(self):
        """An Optional input left out of the call is left out of ``forward``'s arguments,
        so its Python default applies; given, even as null, it is passed."""
        dspy = self.dspy
        seen: list = []

        class TopK(dspy.Module):
            def __init__(self):
                super().__init__()
                self.answer = dspy.Predict("question -> answer")

            def forward(self, question, k=3):
                seen.append(k)
                return self.answer(question=f"{question} (top {k})")

        dspy_module("test-top-k", TopK)
        self.addCleanup(unregister, "test-top-k")
        self.configure()
        spec = module_spec("test-top-k", inputs=(("question", "str"), ("k", "Optional[int]")))
        for inputs in ({"question": "Who?"}, {"question": "Who?", "k": 5}, {"question": "Who?", "k": None}):
            self.w.ok("execute_program", {"spec": spec, "inputs": inputs})
        self.assertEqual(seen, [3, 5, None])
        self.assertIn("Who? (top 3)", self.prompts()[0])
        error = self.w.error("execute_program", {"spec": spec, "inputs": {"k": 1}})
        self.assertEqual((error["code"], error["message"]), ("invalid_argument", 'input "question" is missing (the program takes "question", "k")'))

    def test_an_input_left_out_takes_its_default_in_forward(self):
        """An input with a default (an Optional one too) left out of the call is passed to
        ``forward`` as its default (a copy), not left out: the spec's default wins over the
        Python one; given, it is passed as given (docs/protocol.md, "Program specs",
        ``default``)."""
        dspy = self.dspy
        seen: list = []

        class TopK(dspy.Module):
            def __init__(self):
                super().__init__()
                self.answer = dspy.Predict("question -> answer")

            def forward(self, question, k=3, maybe=None, tags=None):
                seen.append((k, maybe, list(tags)))
                tags.append("changed")  # a copy of the default: the next run's is the spec's still
                return self.answer(question=f"{question} (top {k})")

        dspy_module("test-top-k-default", TopK)
        self.addCleanup(unregister, "test-top-k-default")
        self.configure()
        spec = module_spec("test-top-k-default", inputs=(("question", "str"), ("k", "int"), ("maybe", "Optional[int]"), ("tags", "list[str]")))
        for f, default in zip(spec["signature"]["inputs"][1:], (7, 5, ["a"])):
            f["default"] = default
        for inputs in ({"question": "Who?"}, {"question": "Who?"}, {"question": "Who?", "k": 2, "maybe": None, "tags": []}):
            self.w.ok("execute_program", {"spec": spec, "inputs": inputs})
        self.assertEqual(seen, [(7, 5, ["a"]), (7, 5, ["a"]), (2, None, [])])
        self.assertIn("Who? (top 7)", self.prompts()[0])

    def test_the_state_is_loaded_and_its_lm_is_not(self):
        state = self.saved_state()
        state["answer"]["lm"] = {"model": "openai/another-model", "temperature": 0.0}
        self.configure()
        self.w.ok("execute_program", {"spec": self.spec(state=state), "inputs": {"question": "What is Go?"}})
        requests = self.lm.requests()
        self.assertEqual([r["model"] for r in requests], ["test-model", "test-model"], "the configured LM, not the state's")
        answer_prompt = self.prompts()[1]
        self.assertIn("Answer in one word, from the draft.", answer_prompt)
        self.assertIn("Who wrote it?", answer_prompt, "the state's demo")
        self.assertNotIn("Who wrote it?", self.prompts()[0], "the demo is the answer step's only")

    def test_a_state_that_does_not_fit_names_what_is_missing(self):
        self.configure()
        error = self.w.error("execute_program", {"spec": self.spec(state={"draft.predict": {}, "metadata": {}}), "inputs": {"question": "?"}})
        self.assertEqual(error["code"], "invalid_argument")
        self.assertIn('module "test-draft": the state has no entry for its predictor "answer" (the state\'s entries: "draft.predict")', error["message"])

        state = self.saved_state()
        del state["answer"]["signature"]
        error = self.w.error("execute_program", {"spec": self.spec(state=state), "inputs": {"question": "?"}})
        self.assertEqual(error["code"], "invalid_argument")
        self.assertIn('module "test-draft": its state\'s entry "answer" does not load: it lacks the key \'signature\' '
                      "(load the file DSPy's module.save wrote for this module, as it is)", error["message"])

        state = self.saved_state()
        del state["draft.predict"]["signature"]["fields"]  # instructions alone, as a hand-written state may have
        error = self.w.error("execute_program", {"spec": self.spec(state=state), "inputs": {"question": "?"}})
        self.assertIn('its state\'s entry "draft.predict" does not load: it lacks the key \'fields\'', error["message"])
        self.assertEqual(self.lm.requests(), [], "nothing ran")

    def test_a_state_sets_no_other_attribute_of_a_predictor(self):
        """DSPy's ``Predict.load_state`` sets every key of an entry it does not know as an
        attribute: a state's ``config`` would reach every LM call of the predictor, its
        ``api_base`` sending the worker's key elsewhere. A state holds only the keys DSPy's
        own save writes for the module's predictors."""
        elsewhere = LMServer(self)
        for key, value in (("config", {"api_base": elsewhere.url + "/v1"}), ("lm", {"model": "openai/x", "api_base": elsewhere.url}),
                           ("callbacks", []), ("forward", None)):
            with self.subTest(key=key):
                state = self.saved_state()
                state["answer"][key] = value
                self.configure()
                self.lm.reset()
                if key == "lm":  # DSPy's own key: its value is dropped, the run's LM is used
                    self.w.ok("execute_program", {"spec": self.spec(state=state), "inputs": {"question": "?"}})
                    self.assertEqual(len(self.lm.requests()), 2)
                else:
                    error = self.w.error("execute_program", {"spec": self.spec(state=state), "inputs": {"question": "?"}})
                    self.assertEqual(error["code"], "invalid_argument")
                    self.assertIn(f'module "test-draft": its state\'s entry "answer" holds {quote(key)}, which DSPy does not save for it '
                                  '(its keys: "demos", "fields", "lm", "signature", "traces", "train")', error["message"])
                    self.assertEqual(self.lm.requests(), [], "nothing ran")
                self.assertEqual(elsewhere.requests(), [], "no request went elsewhere")

    def test_the_images_of_a_state_are_checked(self):
        """DSPy saves a demo's image as its marked text, and makes content parts of any
        marked text it sends: a state's image by URL is refused unless the LM takes URLs
        (as an input's is), and marked text that is not one image always."""
        state = self.saved_state()
        state["answer"]["demos"][0]["draft"] = str(self.dspy.Image("https://example.com/cat.png"))
        self.configure()
        error = self.w.error("execute_program", {"spec": self.spec(state=state), "inputs": {"question": "?"}})
        self.assertEqual(error["code"], "failed_precondition")
        self.assertIn('module "test-draft": an image of its state: an image given by URL would be fetched', error["message"])
        self.assertEqual(self.lm.requests(), [], "nothing ran")
        self.configure(image_urls=True)
        self.w.ok("execute_program", {"spec": self.spec(state=state), "inputs": {"question": "?"}})
        self.assertEqual([r.get("images") for r in self.lm.requests()], [None, ["https://example.com/cat.png"]])

        state["answer"]["demos"][0]["draft"] = "data:" + str(self.dspy.Image("https://example.com/cat.png"))
        error = self.w.error("execute_program", {"spec": self.spec(state=state), "inputs": {"question": "?"}})
        self.assertEqual(error["code"], "invalid_argument")
        self.assertIn("its state: a text holding <<CUSTOM-TYPE-START-IDENTIFIER>> that is not DSPy's text of one image", error["message"])
        for part, why in (
            ('{"type": "video_url", "video_url": {"url": "https://example.com/a.mp4"}}',
             "its state: a demo's image: expected dspy.Image, a data: URI or an http, https or gs URL, or an object "
             '{"url": one}: a DSPy custom type\'s text that is not one image_url part'),
            ('{"type": "file", "file": {"file_id": "https://example.com/a.pdf"}}', "its state: a demo's file: a file_id names a file"),
        ):
            state["answer"]["demos"][0]["draft"] = f"<<CUSTOM-TYPE-START-IDENTIFIER>>[{part}]<<CUSTOM-TYPE-END-IDENTIFIER>>"
            error = self.w.error("execute_program", {"spec": self.spec(state=state), "inputs": {"question": "?"}})
            self.assertEqual(error["code"], "invalid_argument")
            self.assertIn(f'module "test-draft": {why}', error["message"])

    def test_no_step_places_an_image_by_url(self):
        """Text a module's code hands a predictor (an earlier step's output, here written
        by hand) is where DSPy may find its markers too: the LM call, blocking or on the
        event loop, that would carry an image by URL, a stored file or another kind of part
        is refused before the request."""
        dspy = self.dspy

        class Relay(dspy.Module):
            def __init__(self, text):
                super().__init__()
                self.text = text
                self.answer = dspy.Predict("question -> answer")

            def forward(self, question):
                return self.answer(question=self.text)

        class AsyncRelay(Relay):
            async def aforward(self, question):
                return await self.answer.acall(question=self.text)

        start, end = "<<CUSTOM-TYPE-START-IDENTIFIER>>", "<<CUSTOM-TYPE-END-IDENTIFIER>>"
        cases = {
            "test-relay-url": ('[{"type": "image_url", "image_url": {"url": "http://169.254.169.254/"}}]', "failed_precondition",
                               "a message to the LM holds an image given by URL"),
            "test-relay-file-id": ('[{"type": "file", "file": {"file_id": "file-other"}}]', "invalid_argument",
                                   "a message to the LM names a file stored with the model's provider (file_id)"),
            "test-relay-video": ('[{"type": "video_url", "video_url": {"url": "https://e.com/a.mp4"}}]', "invalid_argument",
                                 "a message to the LM holds a 'video_url' content part"),
        }
        cases["test-async-relay-url"] = cases["test-relay-url"]
        self.configure()
        for name, (parts, code, why) in cases.items():
            with self.subTest(case=name):
                relay = AsyncRelay if "async" in name else Relay
                dspy_module(name, lambda parts=parts, relay=relay: relay(f"see {start}{parts}{end}"))
                self.addCleanup(unregister, name)
                error = self.w.error("execute_program", {"spec": module_spec(name), "inputs": {"question": "?"}})
                self.assertEqual(error["code"], code, error["message"])
                self.assertIn(why, error["message"])
        self.assertEqual(self.lm.requests(), [], "no request carried them")
        dspy_module("test-relay-data", lambda: Relay(f'see {start}[{{"type": "image_url", "image_url": {{"url": "data:image/gif;base64,R0lG"}}}}]{end}'))
        self.addCleanup(unregister, "test-relay-data")
        self.w.ok("execute_program", {"spec": module_spec("test-relay-data"), "inputs": {"question": "?"}})
        self.assertEqual(self.lm.requests()[0]["images"], ["data:image/gif;base64,R0lG"], "an image by data passes")

    def test_usage_counts_every_call_whatever_the_module_returns(self):
        """The run's usage sums every LM call: of a module that returns a plain dict (DSPy
        sets usage on a Prediction only), and of the threads dspy.Parallel starts (each
        copied DSPy's tracker)."""
        dspy = self.dspy

        class ReturnsDict(dspy.Module):
            def __init__(self):
                super().__init__()
                self.qa = dspy.Predict("question -> answer")

            def forward(self, question):
                return {"answer": self.qa(question=question).answer}

        class Fanned(dspy.Module):
            def __init__(self):
                super().__init__()
                self.qa = dspy.Predict("question -> answer")

            def forward(self, question):
                batch = [(self.qa, dspy.Example(question=f"{question} {i}").with_inputs("question")) for i in range(3)]
                results = dspy.Parallel(num_threads=3, disable_progress_bar=True)(batch)
                return dspy.Prediction(answer="; ".join(r.answer for r in results))

        self.configure()
        for name, factory, calls in (("test-returns-dict", ReturnsDict, 1), ("test-fanned", Fanned, 3)):
            dspy_module(name, factory)
            self.addCleanup(unregister, name)
            with self.subTest(module=name):
                self.lm.reset()
                result = self.w.ok("execute_program", {"spec": module_spec(name), "inputs": {"question": "What is Go?"}})
                requests = self.lm.requests()
                self.assertEqual(len(requests), calls)
                prompt = sum(len(m["content"].split()) for r in requests for m in r["messages"])
                self.assertEqual(result.get("usage", {}).get("prompt_tokens"), prompt, "every call's prompt tokens")
                usage = result["usage"]
                self.assertEqual(usage["total_tokens"], usage["prompt_tokens"] + usage["completion_tokens"])

    def test_a_modules_own_error_keeps_its_type_and_traceback(self):
        """A module's exception answers internal with its type and its own traceback (the
        module's frame and line), the configured key redacted from both."""
        dspy = self.dspy

        class Failing(dspy.Module):
            def forward(self, question):
                raise ValueError(f"cannot answer {question!r} with {os.environ[KEY_ENV]}")

        dspy_module("test-failing", Failing)
        self.addCleanup(unregister, "test-failing")
        self.configure()
        error = self.w.error("execute_program", {"spec": module_spec("test-failing"), "inputs": {"question": "why"}})
        self.assertEqual(error["code"], "internal")
        self.assertEqual(error["type"], "ValueError")
        self.assertIn("cannot answer 'why' with", error["message"])
        self.assertIn('in forward\n    raise ValueError(f"cannot answer', error["traceback"], "the module's own frame")
        self.assertIn("ValueError: cannot answer 'why' with", error["traceback"])
        for text in (error["message"], error["traceback"]):
            self.assertNotIn(SECRET, text)

    def test_factories_that_make_no_module(self):
        self.configure()
        for name, code, message in (
            ("test-not-a-module", "failed_precondition", 'module "test-not-a-module": its factory made a dict, not a dspy.Module'),
            ("test-broken", "internal", 'module "test-broken": its factory failed: ZeroDivisionError: division by zero'),
        ):
            with self.subTest(module=name):
                error = self.w.error("execute_program", {"spec": self.spec(name), "inputs": {"question": "?"}})
                self.assertEqual(error["code"], code)
                self.assertIn(message, error["message"])

    def test_the_native_engine_refuses_a_module(self):
        self.configure(engine="native")
        error = self.w.error("execute_program", {"spec": self.spec(), "inputs": {"question": "?"}})
        self.assertEqual(error["code"], "failed_precondition")
        self.assertIn("a module program runs only on the dspy engine", error["message"])

    def test_a_cancelled_blocking_module_makes_no_further_lm_call(self):
        """A module with only a (blocking) forward runs on a thread, which a cancel cannot
        interrupt; but once its run is cancelled (or past its deadline), the next step's LM
        call raises instead of reaching the LM."""
        ended = threading.Event()
        ThreeSteps = three_steps(self.dspy, ended)

        dspy_module("test-three-steps", ThreeSteps)
        self.addCleanup(unregister, "test-three-steps")
        self.configure(model="test-model+latency=1s")
        request_id = self.w.call("execute_program", {"spec": module_spec("test-three-steps"), "inputs": {"question": "?"}})
        self.lm.wait(requests=1)
        self.w.send({"id": 99, "command": "cancel", "args": {"id": request_id}})
        self.assertEqual(self.w.response(request_id)["error"]["code"], "canceled")
        self.assertTrue(ended.wait(WAIT), "forward ended")
        self.assertEqual(len(self.lm.requests()), 1, "no step after the cancel called the LM")

        ended.clear()
        self.lm.reset()
        error = self.w.error("execute_program", {"spec": module_spec("test-three-steps"), "inputs": {"question": "?"}}, deadline_ms=1500)
        self.assertEqual(error["code"], "deadline_exceeded")
        self.assertTrue(ended.wait(WAIT), "forward ended")
        self.assertEqual(len(self.lm.requests()), 2, "no step after the deadline called the LM")

    def test_modules_that_catch_or_thread_still_stop(self):
        """DSPy's own modules that catch every exception of an attempt (BestOfN, Refine),
        run on threads of their own (Parallel) or in a thread the loop abandons (asyncify)
        stop at their next LM call after a cancel or the deadline, and the run answers
        ``canceled`` (``deadline_exceeded``), not the success of a swallowed error."""
        dspy, ended = self.dspy, threading.Event()

        def never(args, prediction):
            return 0.0

        def retrying(wrapper):  # dspy.BestOfN or dspy.Refine: three attempts, none good enough
            class Retrying(dspy.Module):
                def __init__(self):
                    super().__init__()
                    self.inner = wrapper(dspy.Predict("question -> answer"), N=3, reward_fn=never, threshold=1.0)

                def forward(self, question):
                    try:
                        return self.inner(question=question)
                    finally:
                        ended.set()

            return Retrying

        class Rounds(dspy.Module):
            def __init__(self):
                super().__init__()
                self.qa = dspy.Predict("question -> answer")

            def forward(self, question):
                try:
                    answers = []
                    for r in range(3):
                        batch = [(self.qa, dspy.Example(question=f"{question} {r}.{i}").with_inputs("question")) for i in range(2)]
                        answers += [p.answer for p in dspy.Parallel(num_threads=2, disable_progress_bar=True)(batch)]
                    return dspy.Prediction(answer="; ".join(answers))
                finally:
                    ended.set()

        class Asyncified(three_steps(dspy, ended)):  # type: ignore[misc]  # made at run time
            async def aforward(self, question):
                return await dspy.asyncify(self.forward)(question)

        self.configure(model="test-model+latency=1s")
        for name, factory, in_flight in (("test-best-of", retrying(dspy.BestOfN), 1), ("test-refine", retrying(dspy.Refine), 1), ("test-rounds", Rounds, 2),
                                         ("test-asyncified", Asyncified, 1)):
            dspy_module(name, factory)
            self.addCleanup(unregister, name)
            with self.subTest(module=name, end="cancel"):
                self.lm.reset()
                ended.clear()
                request_id = self.w.call("execute_program", {"spec": module_spec(name), "inputs": {"question": "?"}})
                self.lm.wait(requests=1)
                self.w.send({"id": 99, "command": "cancel", "args": {"id": request_id}})
                self.assertEqual(self.w.response(request_id)["error"]["code"], "canceled")
                self.assertTrue(ended.wait(WAIT), "the module's code ended")
                self.assertEqual(len(self.lm.requests()), in_flight, "the calls in flight at the cancel, no more")
            with self.subTest(module=name, end="deadline"):
                self.lm.reset()
                ended.clear()
                error = self.w.error("execute_program", {"spec": module_spec(name), "inputs": {"question": "?"}}, deadline_ms=1500)
                self.assertEqual(error["code"], "deadline_exceeded", error)
                self.assertTrue(ended.wait(WAIT), "the module's code ended")
                self.assertEqual(len(self.lm.requests()), 2 * in_flight, "the calls before the deadline and in flight at it")

    def test_concurrent_runs_share_the_module(self):
        self.configure()
        spec = self.spec()
        results, errors = [], []

        def run(i):
            try:
                results.append(self.w.ok("execute_program", {"spec": spec, "inputs": {"question": f"Question {i}?"}}))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 8)
        self.assertEqual(len(self.lm.requests()), 16)

    def test_streams_send_the_outputs(self):
        self.configure(model="test-model+chunk_delay=1ms")
        self.w.auto_credit = 1
        for name in ("test-draft", "test-async-draft"):
            with self.subTest(module=name):
                request_id = self.w.call("execute_program", {"spec": self.spec(name), "inputs": {"question": "What is Go?"}}, stream=2)
                reply = self.w.response(request_id)
                self.assertTrue(reply["success"], reply)
                text: dict[str, str] = {}
                for c in (c["data"] for c in self.w.chunks[request_id]):
                    text[c["field"]] = text.get(c["field"], "") + c["delta"]
                self.assertEqual(list(text), ["answer", "confidence"], "the answering step's fields, not the draft's")
                self.assertEqual(text["answer"], reply["result"]["outputs"]["answer"])

    def test_a_stream_never_sends_an_answer_that_is_not_the_outputs(self):
        """A stream's deltas of a field are the text of its value: when two predictors
        of a module have all the outputs, which one answers would be a guess, and the
        fields come whole at the end; when a field's value is not the text the stream sent
        (the predictor answered again, or the module changed the answer), the run fails
        (internal) rather than leave the stream saying otherwise."""
        dspy = self.dspy

        class TwoAnswerers(dspy.Module):
            def __init__(self):
                super().__init__()
                self.final = dspy.Predict("question, draft -> answer")
                self.draft = dspy.Predict("question -> answer")

            async def aforward(self, question):
                draft = await self.draft.acall(question=question)
                return await self.final.acall(question=question, draft=draft.answer)

        class AnswersTwice(dspy.Module):
            def __init__(self):
                super().__init__()
                self.qa = dspy.Predict("question -> answer")

            async def aforward(self, question):
                first = await self.qa.acall(question=question)
                second = await self.qa.acall(question=f"{question} Improve on: {first.answer}")
                return dspy.Prediction(answer=second.answer.upper())  # the test LM answers alike: refine it here

        class ChangesTheAnswer(dspy.Module):
            def __init__(self):
                super().__init__()
                self.qa = dspy.Predict("question -> answer")

            async def aforward(self, question):
                return dspy.Prediction(answer=(await self.qa.acall(question=question)).answer.upper())

        self.configure(model="test-model+chunk_delay=1ms")
        self.w.auto_credit = 1
        for name, factory in (("test-two-answerers", TwoAnswerers), ("test-answers-twice", AnswersTwice), ("test-changes", ChangesTheAnswer)):
            dspy_module(name, factory)
            self.addCleanup(unregister, name)
        request_id = self.w.call("execute_program", {"spec": module_spec("test-two-answerers"), "inputs": {"question": "?"}}, stream=2)
        reply = self.w.response(request_id)
        self.assertTrue(reply["success"], reply)
        self.assertEqual([c["data"] for c in self.w.chunks[request_id]], [{"field": "answer", "delta": reply["result"]["outputs"]["answer"]}])

        for name in ("test-answers-twice", "test-changes"):
            with self.subTest(module=name):
                request_id = self.w.call("execute_program", {"spec": module_spec(name), "inputs": {"question": "?"}}, stream=2)
                reply = self.w.response(request_id)
                self.assertFalse(reply["success"], reply)
                self.assertEqual(reply["error"]["code"], "internal")
                self.assertIn('the stream sent output "answer" as the first answer of the predictor that produces the outputs, '
                              "and its value is not that answer", reply["error"]["message"])


if __name__ == "__main__":
    unittest.main()
