"""Field defaults (a field's ``default``: a signature's inputs and outputs, a model's
fields; docs/protocol.md, "Program specs", "Input conversion", "Reading an LM's
outputs").

protocol/testdata/defaults.json holds the cases Go's internal/program checks too (its
``replies`` are the Python worker's only). The rest is Python's own: copies, the hash,
the native prompt's JSON schemas (compared with pydantic's and DSPy 3.4.1's ChatAdapter's
where dspy can be imported), and a reply that leaves outputs out through both engines.
"""

from __future__ import annotations

import json
import os
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

from dspgo_worker.chat_format import (
    INCOMPLETE_DEMO_PREFIX,
    OutputError,
    build_messages,
    demo_messages,
    dspy_schema,
    parse_reply,
    split_sections,
)
from dspgo_worker.dummy import dummy_outputs
from dspgo_worker.errors import WorkerError
from dspgo_worker.spec import CompiledSpec
from dspgo_worker.values import TOO_MANY_FILLED

from .helpers import InProcessWorker, assert_same_fields, assert_same_json, check_spec_cases, load_testdata
from .lmserver import require_dspy

KEY_ENV = "DSPGO_TEST_DEFAULTS_KEY"


def load_default_vectors() -> dict:
    return load_testdata("defaults.json")


def field(name: str, type_: str = "", default=None, description: str = "") -> dict:
    out = {"name": name, "type": type_, "description": description}
    if default is not None:
        out["default"] = default
    return out


#: Models whose fields have defaults of every kind the brief of a prompt shows: a list, a
#: float given as an int, a date, a datetime, an Optional with a non-null default, a model
#: (given in part: its own defaults fill the rest), a dict of int keys, Any; and a
#: description beside a default.
MODELS = [
    {"name": "Answer", "description": "An answer.", "fields": [
        field("name"), field("tags", "list[str]", ["a", "b"]), field("score", "float", 1, "how sure"),
        field("day", "datetime.date", "2026-12-07"), field("at", "datetime.datetime", "2026-12-07 11:05:00.5+01:00"),
        field("maybe", "Optional[int]", 5), field("where", "Place", {"city": "Oslo"}, "where it is"),
        field("other", "Optional[Place]", {"city": "Bergen", "when": "2026-01-02T03:04:05Z"}),
        field("ids", "dict[int, str]", {"2": "b", "10": "c", "1": "a"}), field("extra", "Any", {"type": "x", "b": [1, 2.5]}),
        field("note", "Optional[str]")]},
    {"name": "Place", "fields": [field("city"), field("when", "Optional[datetime.datetime]"), field("zip", "int", 0)]},
]
#: A signature of models with defaults, and inputs and outputs with defaults of their own.
SPEC = {
    "signature": {
        "inputs": [field("q"), field("doc", "Answer", {"name": "given"}), field("n", "int", 3), field("day", "datetime.date", "2026-12-07")],
        "outputs": [field("a", "", "none"), field("conf", "float", 0), field("best", "Answer", {"name": "default"}),
                    field("places", "list[Place]", [{"city": "Oslo"}]), field("opt", "Optional[int]")],
        "models": MODELS,
    },
    "instructions": "Answer.",
}
#: A signature of inputs and outputs with defaults, and a demo that gives every field but
#: the Optional input (which a demo may leave out): demos are not filled from defaults.
DEMO_SIGNATURE = {"inputs": [field("q"), field("n", "int", 3), field("k", "Optional[int]", 5)],
                  "outputs": [field("a", "", "none"), field("b")]}
DEMO = {"inputs": {"q": "?", "n": 1}, "outputs": {"a": "A", "b": "B"}}


class DefaultVectorsTest(unittest.TestCase):
    """protocol/testdata/defaults.json, as Go's tests read it."""

    def test_specs(self):
        cases = load_default_vectors()["specs"]
        self.assertGreater(len(cases), 10)
        check_spec_cases(self, cases)

    def test_runs(self):
        self.check_cases("runs", 3, WorkerError, "invalid_argument", lambda compiled, case: compiled.convert_inputs(case["inputs"]), "result")

    def test_replies(self):
        self.check_cases("replies", 2, OutputError, "internal", lambda compiled, case: parse_reply(compiled, case["reply"]), "outputs")

    def check_cases(self, key: str, least: int, error: type[WorkerError], code: str, run, want: str) -> None:
        """The vectors' cases under ``key`` (more than ``least``): ``run(compiled, case)``
        gives the case's ``want`` values, or raises ``error`` with ``code`` and its message."""
        cases = load_default_vectors()[key]
        self.assertGreater(len(cases), least)
        for case in cases:
            with self.subTest(case=case["name"]):
                compiled = CompiledSpec({"signature": case["signature"]})
                if "error" in case:
                    with self.assertRaises(error) as caught:
                        run(compiled, case)
                    self.assertEqual(caught.exception.code, code)
                    self.assertEqual(caught.exception.message, case["error"])
                    continue
                assert_same_fields(self, run(compiled, case), case[want])


class DefaultsTest(unittest.TestCase):
    def test_a_null_default_is_none_and_keeps_the_hash(self):
        plain = {"signature": {"inputs": [field("q"), field("n", "int")], "outputs": [field("a")],
                               "models": [{"name": "M", "fields": [field("x", "int")]}]}}
        with_nulls = json.loads(json.dumps(plain))
        for f in (*with_nulls["signature"]["inputs"], *with_nulls["signature"]["outputs"], *with_nulls["signature"]["models"][0]["fields"]):
            f["default"] = None
        with_nulls["signature"]["inputs"].append(field("m", "M"))
        plain["signature"]["inputs"].append(field("m", "M"))
        compiled = CompiledSpec(with_nulls)
        self.assertEqual(compiled.hash, CompiledSpec(plain).hash)
        self.assertNotIn("default", json.dumps(compiled.spec))
        with self.assertRaises(WorkerError) as caught:
            compiled.convert_inputs({"q": "?", "m": {"x": 1}})
        self.assertEqual(caught.exception.message, 'input "n" is missing (the program takes "q", "n", "m")')

    def test_a_default_changes_the_hash(self):
        base = {"signature": {"inputs": [field("n", "int")], "outputs": [field("a")]}}
        hashes = {CompiledSpec(base).hash}
        for default in (3, 4):
            spec = json.loads(json.dumps(base))
            spec["signature"]["inputs"][0]["default"] = default
            hashes.add(CompiledSpec(spec).hash)
        self.assertEqual(len(hashes), 3)

    def test_a_fields_keys_name_default(self):
        spec = {"signature": {"inputs": [{"name": "q", "defaults": 1}], "outputs": [field("a")]}}
        with self.assertRaises(WorkerError) as caught:
            CompiledSpec(spec)
        self.assertEqual(caught.exception.message, 'spec.signature.inputs[0] has unknown field "defaults" (known: name, type, description, default, constraints)')

    def test_defaults_are_copies(self):
        """What takes a default gets a copy of it: changing one run's value changes no
        other run's, nor the spec."""
        compiled = CompiledSpec(SPEC)
        spec_json = json.dumps(compiled.spec)
        first = compiled.convert_inputs({"q": "?", "doc": {"name": "x"}})
        first["doc"]["tags"].append("changed")
        first["doc"]["where"]["city"] = "changed"
        first["day"] = "changed"
        reply = "[[ ## best ## ]]\n{\"name\": \"b\"}\n\n[[ ## completed ## ]]"
        outputs = parse_reply(compiled, reply)
        outputs["places"][0]["city"] = "changed"
        outputs["best"]["ids"][1] = "changed"
        second = compiled.convert_inputs({"q": "?"})
        self.assertEqual(second["doc"]["tags"], ["a", "b"])
        self.assertEqual(second["doc"]["where"]["city"], "Oslo")
        self.assertEqual(second["day"], "2026-12-07")
        again = parse_reply(compiled, reply)
        self.assertEqual(again["places"][0]["city"], "Oslo")
        self.assertEqual(again["best"]["ids"][1], "a")
        self.assertEqual(json.dumps(compiled.spec), spec_json)

    def test_demos_are_not_filled_from_defaults(self):
        """A demo that leaves out an input or an output with a default is one that DSPy
        shows as incomplete, as one that leaves out any other field: nothing is filled in,
        and an Optional input with a default left out stays out of the demo too
        (docs/protocol.md, "Program specs", ``default`` and "Demos")."""
        for inputs, outputs in (({"q": "?", "k": 2}, DEMO["outputs"]), (DEMO["inputs"], {"b": "B"})):
            with self.subTest(inputs=inputs, outputs=outputs):
                demo = {"inputs": inputs, "outputs": outputs}
                compiled = CompiledSpec({"signature": DEMO_SIGNATURE, "demos": [demo]})
                self.assertEqual(compiled.demos, [demo])
                self.assertTrue(demo_messages(compiled)[0]["content"].startswith(INCOMPLETE_DEMO_PREFIX))
        compiled = CompiledSpec({"signature": DEMO_SIGNATURE, "demos": [DEMO]})
        self.assertEqual(compiled.demos, [DEMO])
        self.assertEqual(compiled.spec["demos"], [DEMO], "normalized without the default")
        user = demo_messages(compiled)[0]["content"]
        self.assertTrue(user.startswith(INCOMPLETE_DEMO_PREFIX), "shown as a demo that lacks a field")
        self.assertNotIn("[[ ## k ## ]]", user)

    def test_inputs_left_out_are_the_dummy_lms_too(self):
        """An input's default is filled before an engine sees the inputs: the dummy LM's
        values are those of the inputs given in full."""
        compiled = CompiledSpec(SPEC)
        filled = compiled.convert_inputs({"q": "?"})
        given = compiled.convert_inputs({"q": "?", "doc": {"name": "given"}, "n": 3, "day": "2026-12-07"})
        assert_same_fields(self, filled, given)
        assert_same_json(self, dummy_outputs(compiled, filled), dummy_outputs(compiled, given))

    def test_the_native_schema_holds_the_defaults(self):
        """A model field's default is in its schema as pydantic dumps it (a float's 1.0, a
        date's text, a model's every field, an int key's text), sorted among its keys as
        DSPy sorts them, and the field is not required; pydantic writes no ``required``
        when no field is."""
        compiled = CompiledSpec(SPEC)
        (best,) = (f for f in compiled.outputs if f.name == "best")
        schema = dspy_schema(best.type)
        props = schema["properties"]
        self.assertEqual(schema["required"], ["name"])
        self.assertEqual(schema["$defs"]["Place"]["required"], ["city"])
        self.assertEqual(json.dumps(props["score"]), '{"type": "number", "default": 1.0, "description": "how sure", "title": "Score"}')
        self.assertEqual(json.dumps(props["day"]), '{"type": "string", "default": "2026-12-07", "format": "date", "title": "Day"}')
        self.assertEqual(json.dumps(props["where"]),
                         '{"$ref": "#/$defs/Place", "default": {"city": "Oslo", "when": null, "zip": 0}, "description": "where it is"}')
        self.assertEqual(json.dumps(props["ids"]["default"]), '{"1": "a", "10": "c", "2": "b"}')
        self.assertEqual(json.dumps(props["extra"]["default"]), '{"type": "x", "b": [1, 2.5]}')
        self.assertEqual(props["maybe"]["default"], 5)
        self.assertIsNone(props["note"]["default"])
        only_defaults = CompiledSpec({"signature": {"inputs": [], "outputs": [field("p", "P")],
                                                    "models": [{"name": "P", "fields": [field("x", "int", 1)]}]}})
        self.assertNotIn("required", dspy_schema(only_defaults.outputs[0].type))
        system = build_messages(compiled, compiled.convert_inputs({"q": "?"}))[0]["content"]
        self.assertIn('"default": {"city": "Oslo", "when": null, "zip": 0}', system)
        self.assertNotIn('"none"', system, "a signature field's default is not in the prompt")


class AgainstDSPyTest(unittest.TestCase):
    """pydantic's schemas and DSPy 3.4.1's ChatAdapter's messages and parsing, for the
    classes and signature the dspy engine builds, are the native engine's."""

    def setUp(self):
        require_dspy(self)
        from dspgo_worker.dspy_engine import ENGINE, import_dspy

        self.dspy = import_dspy()
        self.engine = ENGINE

    def test_schemas_are_pydantics(self):
        import pydantic

        from dspgo_worker.dspy_engine import model_classes, python_type

        compiled = CompiledSpec(SPEC)
        classes = model_classes(compiled)
        for f in (*compiled.inputs, *compiled.outputs):
            with self.subTest(field=f.name):
                theirs = pydantic.TypeAdapter(python_type(f.type, classes)).json_schema()
                self.assertEqual(json.dumps(f.type.json_schema(), sort_keys=True), json.dumps(theirs, sort_keys=True))
        with self.subTest(model="Answer"):  # pydantic fills a value's fields left out as the native engine does
            ours = compiled.convert_inputs({"q": "?", "doc": {"name": "x"}})["doc"]
            assert_same_json(self, classes["Answer"].model_validate({"name": "x"}).model_dump(mode="json"), ours)

    def test_messages_are_the_chat_adapters(self):
        from dspgo_worker.dspy_engine import _answering_predictor, _dspy_inputs

        dspy = self.dspy
        for kind in ("predict", "chain_of_thought"):
            with self.subTest(kind=kind):
                compiled = CompiledSpec({**SPEC, "kind": kind})
                inputs = compiled.convert_inputs({"q": "?"})
                predictor = _answering_predictor(self.engine.module(dspy, compiled), [f.name for f in compiled.outputs])
                want = dspy.ChatAdapter().format(predictor.signature, predictor.demos, _dspy_inputs(dspy, compiled, inputs))
                self.assertEqual(build_messages(compiled, inputs), want)

    def test_demos_are_shown_as_the_chat_adapter_shows_them(self):
        """DSPy does not fill a demo from the signature's defaults either: a demo that leaves
        out an Optional input with a default is shown without it."""
        from dspgo_worker.dspy_engine import _answering_predictor, _dspy_inputs

        dspy = self.dspy
        compiled = CompiledSpec({"signature": DEMO_SIGNATURE, "demos": [DEMO]})
        inputs = compiled.convert_inputs({"q": "?"})
        predictor = _answering_predictor(self.engine.module(dspy, compiled), [f.name for f in compiled.outputs])
        want = dspy.ChatAdapter().format(predictor.signature, predictor.demos, _dspy_inputs(dspy, compiled, inputs))
        self.assertEqual(build_messages(compiled, inputs), want)
        self.assertNotIn("[[ ## k ## ]]", want[1]["content"])

    def test_the_signatures_defaults_are_dspys(self):
        """The dspy engine's signature has each field's default; DSPy's ChatAdapter fills
        the outputs a reply leaves out with them, as the native engine does (the vectors'
        replies but those DSPy's ChatAdapter does not read: an empty one, one the native
        engine reads as JSON)."""
        from dspy.utils.exceptions import AdapterParseError
        from pydantic_core import PydanticUndefined, to_jsonable_python

        from dspgo_worker.dspy_engine import DspyEngine

        dspy = self.dspy
        compiled = CompiledSpec(SPEC)
        signature = self.engine.signature(dspy, compiled)
        for f in (*compiled.inputs, *compiled.declared_outputs):
            info = signature.fields[f.name]
            with self.subTest(field=f.name):
                if f.default is None:
                    self.assertIs(info.default, PydanticUndefined)
                else:
                    assert_same_json(self, to_jsonable_python(info.default), json.loads(json.dumps(f.default)))
        for case in load_default_vectors()["replies"]:
            if not case["reply"] or case.get("error", "").endswith(TOO_MANY_FILLED):
                continue  # DSPy refuses an empty reply before it parses; the bound is dspgo's
            compiled = CompiledSpec({"signature": case["signature"]})
            if not split_sections(case["reply"]) and any(f.required for f in compiled.outputs):
                continue  # read as JSON, where DSPy asks the LM again through its JSONAdapter
            with self.subTest(reply=case["name"]):
                signature = self.engine.signature(dspy, compiled)
                if "error" in case:
                    with self.assertRaises(AdapterParseError):
                        dspy.ChatAdapter().parse(signature, case["reply"])
                    continue
                parsed = dspy.ChatAdapter().parse(signature, case["reply"])
                outputs = DspyEngine._outputs(compiled, dspy.Prediction(**parsed))
                assert_same_fields(self, outputs, case["outputs"])


class _FixedReply(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat completion of the server's ``reply``, whatever is asked."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({
            "id": "chatcmpl-defaults", "object": "chat.completion", "created": 0, "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.server.reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class EnginesFillDefaultsTest(unittest.TestCase):
    """Both engines, against an LM whose reply leaves outputs out: each such output takes its
    default (the vectors' replies)."""

    def setUp(self):
        require_dspy(self)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _FixedReply)
        self.server.reply = ""
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(thread.join)
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        patcher = mock.patch.dict(os.environ, {KEY_ENV: "sk-defaults"})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.w = InProcessWorker(self)

    def test_a_reply_that_leaves_outputs_out(self):
        url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        for case in load_default_vectors()["replies"]:
            if "error" in case:
                continue
            self.server.reply = case["reply"]
            spec = {"signature": case["signature"]}
            inputs = {"q": "?"}
            for engine in ("dspy", "native"):
                with self.subTest(case=case["name"], engine=engine):
                    self.w.ok("configure_lm", {"provider": "openai", "model": "test-model", "base_url": url, "api_key_env": KEY_ENV,
                                               "engine": engine})
                    outputs = self.w.ok("execute_program", {"spec": spec, "inputs": inputs})["outputs"]
                    assert_same_fields(self, outputs, case["outputs"])


if __name__ == "__main__":
    unittest.main()
