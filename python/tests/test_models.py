"""Pydantic models as field types (``signature.models``; docs/protocol.md, "Program specs"
and "Input conversion").

protocol/testdata/models.json holds the spec and conversion cases that Go's
internal/program checks too: both languages give the same normalized signatures, results
and messages (the dummy LM's values of models are a case of
protocol/testdata/dummy_lm.json, test_spec.py). The rest is Python's own: reading an LM's
reply, the native engine's prompt (compared with DSPy 3.4.1's ChatAdapter where dspy can
be imported), and the dspy engine's pydantic classes, end to end against the test LM
server (``internal/lmtest``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import unittest
from unittest import mock

from dspgo_worker import dspy_module
from dspgo_worker.canonical import canonical_json
from dspgo_worker.chat_format import build_messages, demo_messages, parse_reply
from dspgo_worker.dummy import dummy_outputs, dummy_value
from dspgo_worker.errors import WorkerError
from dspgo_worker.fieldtypes import MODEL, FieldType, parse_type
from dspgo_worker.modules import unregister
from dspgo_worker.signature import BASE_MODEL_ATTRIBUTES, compile_models
from dspgo_worker.spec import CompiledSpec
from dspgo_worker.values import convert, parse_output

from .helpers import InProcessWorker, check_conversions, check_spec_cases, load_testdata
from .lmserver import LMServer, require_dspy

KEY_ENV = "DSPGO_TEST_MODELS_KEY"


def load_model_vectors() -> dict:
    return load_testdata("models.json")


def field(name: str, type_: str = "", description: str = "") -> dict:
    return {"name": name, "type": type_, "description": description}


#: A person, the place they live in and a document: nested models, Optional fields (a
#: model among them), descriptions (a model's docstring indented as one is), dates, a
#: Literal, a dict of int keys, Any and a tuple.
MODELS = [
    {"name": "Person", "description": "  A person named\n    in the text.\n", "fields": [
        field("first_name", description="who"), field("age", "int", "in years"), field("born", "Optional[datetime.date]"),
        field("home", "Place", "where they live"), field("work", "Optional[Place]"), field("score_", "Optional[float]", "how sure")]},
    {"name": "Place", "fields": [
        field("city"), field("tags", "dict[str, Literal['a', 'b']]"), field("at", "datetime.datetime"), field("extra", "Any"),
        field("pair", "tuple[int, str]")]},
    {"name": "Doc", "description": "A document.", "fields": [
        field("text"), field("source", "Optional[Place]", "where it comes from"), field("ids", "dict[int, float]")]},
]
PLACE = {"city": "Oslo", "tags": {"x": "a"}, "at": "2026-12-07 11:05:00.5+01:00", "extra": {"k": [1, 2.5, None, "é"]}, "pair": [1, "x"]}
PERSON = {"first_name": "Ann", "age": 41, "home": PLACE, "score_": 1}
DOC = {"text": "Ann lives in Oslo.", "source": PLACE, "ids": {"7": 1}, "ignored": True}


def chain(n: int, wrap: str = "{0}") -> list[dict]:
    """Models M0 … M{n}, each M{i} of one field of type ``wrap`` of M{i+1}, the last of one str."""
    return [{"name": f"M{i}", "fields": [field("next", wrap.format(f"M{i + 1}"))]} for i in range(n)] + [{"name": f"M{n}", "fields": [field("x")]}]


def models_spec(inputs=(("doc", "Doc"),), outputs=(("best", "Person"),), kind: str = "", demos=None, models=MODELS) -> dict:
    spec = {"signature": {"inputs": [field(n, t) for n, t in inputs], "outputs": [field(n, t) for n, t in outputs], "models": models},
            "instructions": "", "kind": kind}
    if demos:
        spec["demos"] = demos
    return spec


#: Outputs of every shape a model takes: itself, in a list, Optional, a dict's value.
OUTPUTS = (("best", "Person"), ("people", "list[Person]"), ("maybe", "Optional[Place]"), ("by_name", "dict[str, Person]"))
INPUTS = (("doc", "Doc"), ("more", "list[Doc]"), ("hint", "Optional[Person]"))
#: The first is incomplete to DSPy (an Optional input left out, a null output), the second not.
DEMOS = [
    {"inputs": {"doc": DOC, "more": []},
     "outputs": {"best": PERSON, "people": [PERSON], "maybe": None, "by_name": {"ann": PERSON}}},
    {"inputs": {"doc": {"text": "é", "ids": {}}, "more": [DOC], "hint": PERSON},
     "outputs": {"best": {**PERSON, "born": "2026-01-02", "work": PLACE}, "people": [], "maybe": PLACE, "by_name": {}}},
]
RUN_INPUTS = {"doc": DOC, "more": [{"text": "x", "ids": {"-1": 0.5}}]}


class ModelVectorsTest(unittest.TestCase):
    """protocol/testdata/models.json, as Go's tests read it."""

    def test_specs(self):
        cases = load_model_vectors()["specs"]
        self.assertGreater(len(cases), 20)
        check_spec_cases(self, cases)

    def test_convert(self):
        vectors = load_model_vectors()
        models = compile_models({"models": vectors["models"]})
        self.assertGreater(len(vectors["convert"]), 10)
        check_conversions(self, vectors["convert"], lambda s: parse_type(s, models))


class ModelSpecTest(unittest.TestCase):
    def test_a_spec_without_models_keeps_its_hash(self):
        plain = {"signature": {"inputs": [field("q")], "outputs": [field("a")]}}
        for models in ([], None):
            with self.subTest(models=models):
                compiled = CompiledSpec({"signature": {**plain["signature"], "models": models}})
                self.assertNotIn("models", compiled.spec["signature"])
                self.assertEqual(compiled.hash, CompiledSpec(plain).hash)
        self.assertNotEqual(CompiledSpec(models_spec()).hash, CompiledSpec(plain).hash)

    def test_the_models_json_is_checked(self):
        cases = {
            "models must be an array": ({"models": {"name": "A"}}, "spec.signature.models must be an array, got object"),
            "unknown key": ({"models": [{"name": "A", "fields": [field("x")], "doc": ""}]},
                            'spec.signature.models[0] has unknown field "doc" (known: name, description, fields)'),
            "fields must be an array": ({"models": [{"name": "A", "fields": "x"}]},
                                        "spec.signature.models[0].fields must be an array, got string \"x\""),
            "a field's type is a string": ({"models": [{"name": "A", "fields": [{"name": "x", "type": 3}]}]},
                                           "spec.signature.models[0].fields[0].type must be a string, got number 3"),
        }
        for name, (extra, want) in cases.items():
            with self.subTest(case=name), self.assertRaises(WorkerError) as caught:
                CompiledSpec({"signature": {"inputs": [field("q")], "outputs": [field("a", "A")], **extra}})
            self.assertEqual(caught.exception.message, want)

    def test_the_first_of_several_errors_is_named(self):
        """Models first (in the declared order), then whether one contains itself, then
        each model's depth and size (in the declared order), then the signature's fields
        (each one's size after its type), then whether each is used (docs/protocol.md)."""
        node = {"name": "Node", "fields": [field("next", "Optional[Node]")]}
        deep = chain(33)  # M0 nests 34 levels
        wide = {"name": "W", "fields": [field(f"f{i}") for i in range(4000)]}  # 4000 fields: 3 of it are too many
        cases = [
            ([*deep, node], [field("a", "M0")], 'model "Node" contains itself (Node -> Node)'),
            ([wide, {"name": "Big", "fields": [field("w", "tuple[W, W, W]")]}, *deep], [field("a", "M0"), field("b", "Big")],
             'model "Big": a value of it holds more than 10000 fields of models (counting one element of each list and dict)'),
            ([*deep, wide, {"name": "Big", "fields": [field("w", "tuple[W, W, W]")]}], [field("a", "M0"), field("b", "Big")],
             'model "M0" nests more than 32 levels (types and models counted together)'),
            ([*chain(40, "tuple[{0}, {0}, {0}, {0}]")], [field("a", "M0")],
             'model "M0" nests more than 32 levels (types and models counted together)'),
            ([wide, {"name": "X", "fields": [field("x", "Nope")]}], [field("a", "W")], 'model "X" field "x": unknown type "Nope" in "Nope" '
             "(known: str, int, float, bool, Any, list[T], dict[K, V], tuple[T, ...], Optional[T], Union[T, U], T | U, Literal['a', ...], "
             "dspy.History, dspy.Image, dspy.File, dspy.Audio, datetime.date, datetime.datetime, and the signature's models: W, X)"),
            ([wide, {"name": "Big", "fields": [field("w", "tuple[W, W, W]")]}], [field("a", "Nope"), field("b", "Big")],
             'model "Big": a value of it holds more than 10000 fields of models (counting one element of each list and dict)'),
            ([wide], [field("a", "tuple[W, W, W]"), field("b", "Nope")],
             'output field "a": a value of it holds more than 10000 fields of models (counting one element of each list and dict)'),
            ([wide], [field("a", "Nope"), field("b", "tuple[W, W, W]")], 'output field "a": unknown type "Nope" in "Nope" '
             "(known: str, int, float, bool, Any, list[T], dict[K, V], tuple[T, ...], Optional[T], Union[T, U], T | U, Literal['a', ...], "
             "dspy.History, dspy.Image, dspy.File, dspy.Audio, datetime.date, datetime.datetime, and the signature's models: W)"),
            ([wide, {"name": "Unused", "fields": [field("x")]}], [field("a", "Optional[list[dict[str, Union[W, None]]]]"), field("b", "tuple[W, W, W]")],
             'output field "b": a value of it holds more than 10000 fields of models (counting one element of each list and dict)'),
            ([node, {"name": "B", "fields": [field("x", "Nope")]}], [field("a", "Nope")],
             'model "B" field "x": unknown type "Nope" in "Nope" (known: str, int, float, bool, Any, list[T], dict[K, V], '
             "tuple[T, ...], Optional[T], Union[T, U], T | U, Literal['a', ...], dspy.History, dspy.Image, dspy.File, dspy.Audio, "
             "datetime.date, datetime.datetime, and the signature's models: Node, B)"),
            ([node, {"name": "Unused", "fields": [field("x")]}], [field("a", "Nope")], 'model "Node" contains itself (Node -> Node)'),
            ([{"name": "Unused", "fields": [field("x", "Later")]}, {"name": "Later", "fields": [field("y")]}], [field("a", "list[")],
             'output field "a": expected a type at position 5 of "list["'),
            ([{"name": "Unused", "fields": [field("x", "Later")]}, {"name": "Later", "fields": [field("y")]}], [field("a", "Later")],
             'model "Unused" is not used by any field'),
        ]
        for models, outputs, want in cases:
            with self.subTest(want=want), self.assertRaises(WorkerError) as caught:
                CompiledSpec({"signature": {"inputs": [field("q")], "outputs": outputs, "models": models}})
            self.assertEqual(caught.exception.message, want)

    def test_inputs_and_demos_convert_as_models(self):
        compiled = CompiledSpec(models_spec(INPUTS, OUTPUTS, demos=DEMOS))
        doc = compiled.convert_inputs(RUN_INPUTS)["doc"]
        self.assertEqual(list(doc), ["text", "source", "ids"], "the model's fields, in order, and no other key")
        self.assertEqual(doc["source"]["at"], "2026-12-07T11:05:00.500000+01:00")
        self.assertEqual(doc["ids"], {7: 1.0})
        self.assertNotIn("hint", compiled.convert_inputs(RUN_INPUTS), "an Optional input left out stays out")
        demo = compiled.demos[0]
        self.assertEqual(demo["outputs"]["best"], {"first_name": "Ann", "age": 41, "born": None, "home": demo["inputs"]["doc"]["source"],
                                                   "work": None, "score_": 1.0})
        with self.assertRaises(WorkerError) as caught:
            CompiledSpec(models_spec(INPUTS, OUTPUTS, demos=[{**DEMOS[0], "outputs": {**DEMOS[0]["outputs"], "people": [{"age": 1}]}}]))
        self.assertEqual(caught.exception.message, 'demo 0: output people[0]: expected Person, got an object without "first_name"')
        with self.assertRaises(WorkerError) as caught:
            compiled.convert_inputs({**RUN_INPUTS, "doc": {**DOC, "source": {**PLACE, "at": "noon"}}})
        self.assertIn("input doc.source.at: expected datetime.datetime", caught.exception.message)


#: Inputs and outputs of models at the limits: the vectors' "32 levels" (M2 … M33, M2
#: nesting 32 levels, a list of them 33) and the same models in a field's type nesting as
#: deep as a type may (48 levels).
DEEPEST = "list[" * 16 + "M2" + "]" * 16


def deepest_spec(kind: str = "") -> dict:
    (case,) = (c for c in load_model_vectors()["specs"] if c["name"] == "32 levels")
    models = case["signature"]["models"]
    return models_spec((("q", "list[M2]"), ("deep", DEEPEST)), (("a", "list[M2]"), ("b", DEEPEST), ("c", "Optional[M2]")), kind, models=models)


def deepest_inputs(compiled: CompiledSpec) -> dict:
    """The deepest spec's inputs: the dummy LM's values of their types, as JSON."""
    return json.loads(json.dumps({f.name: dummy_value(f.type, bytes(32), f.name) for f in compiled.inputs}))


class ModelLimitsTest(unittest.TestCase):
    """How deep a model nests and how many fields of models a value holds (docs/protocol.md,
    "Program specs"): checked in time linear in the spec's size, without recursion through
    the models (a chain of them may be longer than Python's stack), and a model at the limits
    works everywhere."""

    def compile_error(self, models: list, outputs=(("a", "M0"),)) -> str:
        with self.assertRaises(WorkerError) as caught:
            CompiledSpec(models_spec((("q", ""),), outputs, models=models))
        self.assertEqual(caught.exception.code, "invalid_argument")
        return caught.exception.message

    def test_long_chains_and_cycles(self):
        """Far longer than Python's recursion limit: the walk and the depths take no stack."""
        n = 5000
        self.assertEqual(self.compile_error(chain(n)), 'model "M0" nests more than 32 levels (types and models counted together)')
        ring = [{"name": f"M{i}", "fields": [field("next", f"Optional[M{(i + 1) % n}]")]} for i in range(n)]
        self.assertEqual(self.compile_error(ring),
                         'model "M0" contains itself (' + " -> ".join(f"M{i}" for i in (*range(n), 0)) + ")")
        tail = chain(n)
        tail[-1]["fields"].append(field("back", f"list[M{n // 2}]"))
        self.assertEqual(self.compile_error(tail),
                         f'model "M{n // 2}" contains itself (' + " -> ".join(f"M{i}" for i in (*range(n // 2, n + 1), n // 2)) + ")",
                         "the first model reached again while its own walk is under way, from it back to it")

    def test_the_walk_is_one_walk(self):
        """Every model is walked once and every field's type is looked at a bounded number of
        times: 400 models, each naming every later one (80,000 fields), take as many looks
        as fields, not as many as models times fields."""
        n = 400
        models = [{"name": f"M{i}", "fields": [field(f"f{j}", f"M{j}") for j in range(i + 1, n)] or [field("x")]} for i in range(n)]
        fields = sum(len(m["fields"]) for m in models)
        counts = dict.fromkeys(("models", "nest", "size"), 0)

        def counted(name):
            original = getattr(FieldType, name)

            def method(self):
                counts[name] += 1
                return original(self)

            return mock.patch.object(FieldType, name, method)

        with counted("models"), counted("nest"), counted("size"):
            message = self.compile_error(models)
        self.assertEqual(message, 'model "M0" nests more than 32 levels (types and models counted together)')
        for name, count in counts.items():
            with self.subTest(method=name):
                self.assertGreaterEqual(count, fields - 1)
                self.assertLessEqual(count, 2 * fields)

    def test_sizes_and_depths_are_memoized(self):
        """A diamond 31 models deep (each naming the next twice) has values of 2^31 fields:
        counting them one by one would never end."""
        models = [{"name": f"D{i}", "fields": [field("a", f"D{i + 1}"), field("b", f"D{i + 1}")]} for i in range(30)]
        models.append({"name": "D30", "fields": [field("x")]})
        self.assertEqual(self.compile_error(models, (("a", "D29"),)),
                         'model "D0": a value of it holds more than 10000 fields of models (counting one element of each list and dict)')

    def test_a_model_of_many_fields(self):
        """100,000 fields, their names checked against a set (against the fields before each,
        it took minutes); too many for a value, which is the error."""
        models = [{"name": "M0", "fields": [field(f"f{i}", "int") for i in range(100_000)]}]
        self.assertEqual(self.compile_error(models),
                         'model "M0": a value of it holds more than 10000 fields of models (counting one element of each list and dict)')
        models[0]["fields"].append(field("f99999"))
        self.assertEqual(self.compile_error(models), 'model "M0" field name "f99999" is used twice')

    def test_the_limits(self):
        """A model nests 32 levels at most, a field's type as many more as a type may; a
        value holds 10000 fields of models at most."""
        compiled = CompiledSpec(deepest_spec())
        self.assertEqual([(m.nest, m.size) for m in compiled.models.values()][:2], [(32, 32), (31, 31)])
        self.assertEqual((compiled.outputs[1].type.nest(), compiled.outputs[1].type.size()), (16 + 32, 32))
        wide = [{"name": "W", "fields": [field(f"f{i}") for i in range(2500)]}]
        CompiledSpec(models_spec((("q", ""),), (("a", "tuple[W, W, W, W]"), ("b", "dict[str, W]")), models=wide))
        self.assertEqual(self.compile_error(wide, (("a", "tuple[W, W, W, W]"), ("b", "Optional[tuple[W, str]]"), ("c", "tuple[W, W, W, W, list[W]]"))),
                         'output field "c": a value of it holds more than 10000 fields of models (counting one element of each list and dict)')
        wide[0]["fields"].append(field("one_more"))
        self.assertEqual(self.compile_error(wide, (("a", "tuple[W, W, W, W]"),)),
                         'output field "a": a value of it holds more than 10000 fields of models (counting one element of each list and dict)')
        inputs = [{"name": "W", "fields": [field(f"f{i}") for i in range(5001)]}]
        with self.assertRaises(WorkerError) as caught:
            CompiledSpec(models_spec((("q", "tuple[W, W]"),), (("a", "W"),), models=inputs))
        self.assertEqual(caught.exception.message,
                         'input field "q": a value of it holds more than 10000 fields of models (counting one element of each list and dict)')

    def test_a_model_at_the_limits_works(self):
        """Inputs converted, the dummy LM's outputs, the native engine's prompt (with a
        demo) and its reading of a reply, through a worker too."""
        spec = deepest_spec()
        compiled = CompiledSpec(spec)
        inputs = compiled.convert_inputs(deepest_inputs(compiled))
        outputs = dummy_outputs(compiled, inputs)
        self.assertEqual(len(outputs["a"]), 1, "one element in a list of models")
        value = outputs["b"]
        for _ in range(16):
            (value,) = value
        for _ in range(3, 34):  # M2's next is M3, …
            value = value["next"]
        self.assertEqual(list(value), ["x"], "M33's fields")
        spec["demos"] = [{"inputs": deepest_inputs(compiled), "outputs": json.loads(json.dumps(outputs))}]
        compiled = CompiledSpec(spec)
        messages = build_messages(compiled, inputs)
        self.assertIn('"$defs": {"M10": {', messages[0]["content"])
        reply = "".join(f"[[ ## {name} ## ]]\n{json.dumps(v)}\n\n" for name, v in outputs.items()) + "[[ ## completed ## ]]"
        self.assertEqual(canonical_json(parse_reply(compiled, reply)), canonical_json(outputs))
        w = InProcessWorker(self)
        w.ok("configure_lm", {"provider": "dummy"})
        got = w.ok("execute_program", {"spec": spec, "inputs": deepest_inputs(compiled)})["outputs"]
        self.assertEqual(canonical_json(got), canonical_json(dummy_outputs(compiled, inputs)))


class ModelOutputsTest(unittest.TestCase):
    """Reading what an LM wrote for a model: JSON (in a code fence or not) or a Python
    literal, as DSPy's parse_value reads it, then validated as pydantic's lax mode
    validates the model (fields in the model's order, each in lax mode)."""

    def setUp(self):
        self.compiled = CompiledSpec(models_spec(outputs=OUTPUTS))
        self.types = {f.name: f.type for f in self.compiled.outputs}

    def test_texts(self):
        place = '{"city": " Oslo ", "tags": {"x": "a"}, "at": "2026-12-07 11:05", "extra": null, "pair": ["1", "2"], "more": 1}'
        got = parse_output(self.types["maybe"], f"```json\n{place}\n```", "output maybe", text=True)
        self.assertEqual(json.dumps(got), json.dumps({"city": " Oslo ", "tags": {"x": "a"}, "at": "2026-12-07T11:05:00", "extra": None,
                                                      "pair": [1, "2"]}))
        self.assertIsNone(parse_output(self.types["maybe"], "None", "output maybe", text=True))
        person = {"first_name": "Bo", "age": "7", "home": json.loads(place), "score_": "0.5"}
        got = parse_output(self.types["people"], json.dumps([person]), "output people", text=True)
        self.assertEqual(list(got[0]), ["first_name", "age", "born", "home", "work", "score_"])
        self.assertEqual((got[0]["age"], got[0]["born"], got[0]["work"], got[0]["score_"]), (7, None, None, 0.5))
        typed = parse_output(self.types["by_name"], {"bo": person}, "output by_name")
        self.assertEqual(typed["bo"], got[0], "a typed value (a JSON reply's, a DSPy prediction's) reads as its text")
        literal = repr([{**person, "home": {**json.loads(place), "pair": (1, "2")}}])  # Python's text of it
        self.assertEqual(parse_output(self.types["people"], literal, "output people", text=True), got)

    def test_errors_name_the_path(self):
        place = {"city": "Oslo", "tags": {}, "at": "2026-12-07", "extra": 1, "pair": [1, "x"]}
        cases = [
            ("best", "Ann", 'output best: expected Person, got string "Ann"'),
            ("best", '{"first_name": 7, "age": 1}', 'output best.first_name: expected str, got number 7'),
            ("best", '{"first_name": "Ann"}', 'output best: expected Person, got an object without "age"'),
            ("best", '{"first_name": "Ann", "age": "old", "home": {}}', 'output best.age: expected int, got string "old"'),
            ("people", '[{"first_name": "A", "age": 1, "home": {"city": "O"}}]', 'output people[0].home: expected Place, got an object without "tags"'),
            ("maybe", json.dumps({**place, "tags": {"x": "c"}}), "output maybe.tags[\"x\"]: string \"c\" is not one of Literal['a', 'b']"),
            ("maybe", "[1]", "output maybe: expected Place, got array"),
        ]
        for name, text, want in cases:
            with self.subTest(text=text), self.assertRaises(ValueError) as caught:
                parse_output(self.types[name], text, f"output {name}", text=True)
            self.assertEqual(str(caught.exception), want)

    def test_a_reply(self):
        person = {"first_name": "A", "age": 1, "home": {"city": "O", "tags": {}, "at": "2026-12-07T00:00:00Z", "extra": [], "pair": [1, "x"]}}
        reply = f"[[ ## best ## ]]\n{json.dumps(person)}\n\n[[ ## people ## ]]\n[]\n\n[[ ## by_name ## ]]\n{{}}\n\n[[ ## completed ## ]]"
        out = parse_reply(self.compiled, reply)
        self.assertEqual(out["best"]["home"]["at"], "2026-12-07T00:00:00Z")
        self.assertIsNone(out["maybe"], "an Optional output the reply leaves out is null")
        self.assertEqual(parse_reply(self.compiled, json.dumps({"best": person, "people": [], "by_name": {}})), out, "a JSON reply")


class ModelDummyTest(unittest.TestCase):
    def test_values_are_of_their_types(self):
        compiled = CompiledSpec(models_spec(INPUTS, OUTPUTS))
        r = random.Random(11)
        seen_null = False
        for f in compiled.outputs:
            for _ in range(20):
                digest = bytes(r.getrandbits(8) for _ in range(32))
                value = dummy_value(f.type, digest, f.name)
                wire = json.loads(json.dumps(value))
                with self.subTest(type=str(f.type), value=value):
                    self.assertEqual(canonical_json(convert(f.type, wire, "output f")), canonical_json(value))
                if f.type.kind == MODEL:
                    self.assertEqual(list(value), [g.name for g in f.type.model.fields], "in the model's order")
                    seen_null |= value["born"] is None
        self.assertTrue(seen_null, "an Optional field is sometimes null")

    def test_a_list_of_models_has_one_element(self):
        """docs/protocol.md: a list, dict or tuple[T, ...] has one element when T holds a
        model (anywhere in T), else 1 to 3."""
        models = compile_models({"models": MODELS})
        r = random.Random(5)
        digests = [bytes(r.getrandbits(8) for _ in range(32)) for _ in range(30)]
        for s in ("list[Place]", "dict[str, Place]", "dict[int, Person]", "dict[Literal['a', 'b'], Doc]", "tuple[Place, ...]",
                  "list[Optional[Place]]", "list[tuple[int, Place]]", "list[dict[str, Optional[list[Place]]]]", "list[list[Person]]"):
            with self.subTest(type=s):
                t = parse_type(s, models)
                self.assertEqual({len(dummy_value(t, d, "f")) for d in digests}, {1})
        for s in ("list[int]", "dict[str, list[str]]", "tuple[int, ...]", "list[Union[int, str]]"):
            with self.subTest(type=s):
                t = parse_type(s, models)
                self.assertEqual({len(dummy_value(t, d, "f")) for d in digests}, {1, 2, 3})
        self.assertEqual({len(dummy_value(parse_type("Place", models), d, "f")["tags"]) for d in digests}, {1, 2, 3},
                         "a model's own lists and dicts of other types have 1 to 3 elements")

    def test_field_i_is_the_value_of_child_i(self):
        """docs/protocol.md: field i is dummy(its type, child(i), f), child(i) the SHA-256 of
        the digest and the byte i."""
        t = CompiledSpec(models_spec()).outputs[0].type
        digest = bytes(range(32))
        value = dummy_value(t, digest, "best")
        for i, f in enumerate(t.model.fields):
            child = hashlib.sha256(digest + bytes([i])).digest()
            self.assertEqual(value[f.name], dummy_value(f.type, child, "best"), f.name)


class NativePromptTest(unittest.TestCase):
    """The native engine's prompt of a model, as DSPy 3.4.1's ChatAdapter writes it (pinned
    here; :class:`AgainstDSPyTest` compares whole prompts with DSPy's own)."""

    def test_schema_and_names(self):
        spec = {"signature": {"inputs": [field("q", "Optional[Inner]")], "outputs": [field("a", "Answer"), field("b", "list[Inner]")], "models": [
            {"name": "Answer", "description": "The answer.", "fields": [field("first_name", description="who"), field("inner", "Inner", "in"),
                                                                        field("note", "Optional[float]")]},
            {"name": "Inner", "fields": [field("x", "int")]},
        ]}}
        compiled = CompiledSpec(spec)
        system, user = (m["content"] for m in build_messages(compiled, compiled.convert_inputs({"q": {"x": 3, "y": 4}})))
        self.assertIn("1. `q` (Union[Inner, NoneType]):\nYour output fields are:\n1. `a` (Answer): \n2. `b` (list[Inner]):\n", system)
        inner = '{"type": "object", "properties": {"x": {"type": "integer", "title": "X"}}, "required": ["x"], "title": "Inner"}'
        self.assertIn(
            '{a}        # note: the value you produce must adhere to the JSON schema: {"type": "object", "$defs": {"Inner": ' + inner + '}, '
            '"description": "The answer.", "properties": {"first_name": {"type": "string", "description": "who", "title": "First Name"}, '
            '"inner": {"$ref": "#/$defs/Inner", "description": "in"}, '
            '"note": {"anyOf": [{"type": "number"}, {"type": "null"}], "default": null, "title": "Note"}}, '
            '"required": ["first_name", "inner"], "title": "Answer"}\n', system)
        self.assertIn('{b}        # note: the value you produce must adhere to the JSON schema: {"type": "array", "$defs": {"Inner": '
                      + inner + '}, "items": {"$ref": "#/$defs/Inner"}}\n', system)
        self.assertTrue(user.startswith('[[ ## q ## ]]\n{"x": 3}\n\n'), user)
        self.assertIn("`[[ ## a ## ]]` (must be formatted as a valid Python Answer), then `[[ ## b ## ]]` (must be formatted as a valid "
                      "Python list[Inner])", user)

    def test_values_are_written_as_pydantic_dumps_them(self):
        compiled = CompiledSpec(models_spec(INPUTS, OUTPUTS, demos=DEMOS))
        messages = demo_messages(compiled)
        self.assertTrue(messages[2]["content"].startswith('[[ ## doc ## ]]\n{"text": "é", "source": null, "ids": {}}\n\n'),
                        "a model's value: every field, in the model's order, null for an Optional one left out")
        self.assertIn('[[ ## best ## ]]\n{"first_name": "Ann", "age": 41, "born": null, "home": {"city": "Oslo", "tags": {"x": "a"}, '
                      '"at": "2026-12-07T11:05:00.500000+01:00", "extra": {"k": [1, 2.5, null, "é"]}, "pair": [1, "x"]}, "work": null, '
                      '"score_": 1.0}\n\n', messages[1]["content"])
        self.assertIn('"ids": {"7": 1.0}', messages[0]["content"], "a dict[int, float]'s keys as JSON's, its floats as floats")


class AgainstDSPyTest(unittest.TestCase):
    """The dspy engine's pydantic classes are the hand-written ones, and the native engine's
    prompts are DSPy 3.4.1's ChatAdapter's for them."""

    def setUp(self):
        require_dspy(self)
        from dspgo_worker.dspy_engine import ENGINE, import_dspy

        self.dspy = import_dspy()
        self.engine = ENGINE

    def test_base_model_attributes_are_pydantics(self):
        """The public attributes of BaseModel and of its metaclass (mro, register) that do
        not start with "model_": pydantic warns of a field of each name, and of no other."""
        import warnings

        import pydantic

        base = pydantic.BaseModel
        names = {n for n in {*dir(base), *dir(type(base))} if not n.startswith(("_", "model_")) and hasattr(base, n)}
        self.assertEqual(BASE_MODEL_ATTRIBUTES, tuple(sorted(names)))
        self.assertEqual(names - set(dir(base)), {"mro", "register"})
        for name in (*BASE_MODEL_ATTRIBUTES, "x"):
            with self.subTest(name=name), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pydantic.create_model("M", **{name: (str, ...)})
                shadows = [w for w in caught if "shadows an attribute" in str(w.message)]
                self.assertEqual(len(shadows), 0 if name == "x" else 1, [str(w.message) for w in caught])

    def test_a_model_at_the_limits(self):
        """pydantic builds the classes of the deepest models: their schemas are the native
        engine's, they validate the dummy LM's values, and ChatAdapter's messages are the
        native engine's."""
        import pydantic

        from dspgo_worker.dspy_engine import _answering_predictor, _dspy_inputs, model_classes, python_type

        compiled = CompiledSpec(deepest_spec())
        classes = model_classes(compiled)
        inputs = compiled.convert_inputs(deepest_inputs(compiled))
        outputs = dummy_outputs(compiled, inputs)
        for f in (*compiled.inputs, *compiled.outputs):
            with self.subTest(field=f.name):
                adapter = pydantic.TypeAdapter(python_type(f.type, classes))
                self.assertEqual(json.dumps(f.type.json_schema(), sort_keys=True), json.dumps(adapter.json_schema(), sort_keys=True))
                value = inputs[f.name] if f.name in inputs else outputs[f.name]
                self.assertEqual(canonical_json(adapter.dump_python(adapter.validate_python(value), mode="json")), canonical_json(value))
        predictor = _answering_predictor(self.engine.module(self.dspy, compiled), [f.name for f in compiled.outputs])
        want = self.dspy.ChatAdapter().format(predictor.signature, predictor.demos, _dspy_inputs(self.dspy, compiled, inputs))
        self.assertEqual(build_messages(compiled, inputs), want)

    def test_classes_are_the_hand_written_ones(self):
        """The classes of a spec's models have the JSON schema (what DSPy shows the LM) of
        the same classes written by hand, and the native engine's schema of every type is
        pydantic's of the dspy engine's type."""
        import datetime
        from typing import Any, Literal

        import pydantic

        from dspgo_worker.dspy_engine import model_classes, python_type

        class Place(pydantic.BaseModel):
            city: str
            tags: dict[str, Literal["a", "b"]]
            at: datetime.datetime
            extra: Any
            pair: tuple[int, str]

        class Person(pydantic.BaseModel):
            """
            A person named
            in the text.
            """

            first_name: str = pydantic.Field(description="who")
            age: int = pydantic.Field(description="in years")
            born: datetime.date | None = None
            home: Place = pydantic.Field(description="where they live")
            work: Place | None = None
            score_: float | None = pydantic.Field(default=None, description="how sure")

        class Doc(pydantic.BaseModel):
            """A document."""

            text: str
            source: Place | None = pydantic.Field(default=None, description="where it comes from")
            ids: dict[int, float]

        compiled = CompiledSpec(models_spec(INPUTS, OUTPUTS))
        classes = model_classes(compiled)
        self.assertIs(model_classes(compiled), classes, "made once per compiled spec")
        for written in (Place, Person, Doc):
            with self.subTest(model=written.__name__):
                self.assertEqual(json.dumps(classes[written.__name__].model_json_schema()), json.dumps(written.model_json_schema()))
        for f in (*compiled.inputs, *compiled.outputs):
            with self.subTest(field=f.name):
                theirs = pydantic.TypeAdapter(python_type(f.type, classes)).json_schema()
                self.assertEqual(json.dumps(f.type.json_schema(), sort_keys=True), json.dumps(theirs, sort_keys=True))

    def test_schemas_of_every_kind_of_field(self):
        """pydantic's schema of a model's field of each kind of type (Optional ones with
        their default, titles, descriptions, models in lists, tuples and dicts), as the
        native engine writes it."""
        import pydantic

        from dspgo_worker.dspy_engine import model_classes, python_type

        types = ["Optional[Any]", "Optional[list[int]]", "Optional[Literal['a']]", "Optional[dict[int, str]]", "Optional[tuple[int, ...]]",
                 "Optional[Union[int, str]]", "Union[int, str]", "Literal[1, 2]", "dict[Literal['a', 'b'], int]", "list[Optional[Inner]]",
                 "tuple[Inner, int]", "dict[int, Inner]", "Optional[list[Inner]]", "list", "dict", "tuple", "bool", "Optional[bool]",
                 "Literal['x']", "Optional[Literal[1]]", "list[list[Inner]]", "Optional[datetime.datetime]", "Union[int, list[str]]"]
        outer = [field(f"f{i}_x", t, "d" if i % 2 else "") for i, t in enumerate(types)]
        spec = {"signature": {"inputs": [field("q")], "outputs": [field("a", "Outer"), field("b", "Optional[list[Outer]]"), field("c", "tuple[Outer, Inner]")],
                              "models": [{"name": "Outer", "description": "\n   Hi.\n\n   There.  ", "fields": outer},
                                         {"name": "Inner", "fields": [field("z", "Optional[Any]")]}]}}
        compiled = CompiledSpec(spec)
        classes = model_classes(compiled)
        for f in compiled.outputs:
            with self.subTest(field=f.name):
                theirs = pydantic.TypeAdapter(python_type(f.type, classes)).json_schema()
                self.assertEqual(json.dumps(f.type.json_schema(), sort_keys=True), json.dumps(theirs, sort_keys=True))

    def test_messages_are_the_chat_adapters(self):
        """For predict and chain_of_thought, with and without demos, the native engine's
        messages (system, demos, input) are those ChatAdapter formats for the module the
        dspy engine builds and the inputs it hands DSPy (instances of the models)."""
        import pydantic

        from dspgo_worker.dspy_engine import _answering_predictor, _dspy_inputs

        dspy = self.dspy
        specs = {
            "predict": models_spec(INPUTS, OUTPUTS),
            "chain_of_thought": models_spec(INPUTS, OUTPUTS, kind="chain_of_thought"),
            "demos": models_spec(INPUTS, OUTPUTS, demos=DEMOS),
            "demos_chain_of_thought": models_spec(INPUTS, OUTPUTS, kind="chain_of_thought",
                                                  demos=[{**DEMOS[0], "reasoning": "Ann is named."}, DEMOS[1]]),
            "one_of_each": models_spec((("hint", "Optional[Person]"),), (("place", "Place"),), models=MODELS[:2]),
        }
        for name, spec in specs.items():
            with self.subTest(spec=name):
                compiled = CompiledSpec(spec)
                inputs = compiled.convert_inputs({k: v for k, v in {**RUN_INPUTS, "hint": PERSON}.items()
                                                  if k in (f.name for f in compiled.inputs)})
                predictor = _answering_predictor(self.engine.module(dspy, compiled), [f.name for f in compiled.outputs])
                given = _dspy_inputs(dspy, compiled, inputs)
                for name, value in given.items():
                    for one in value if isinstance(value, list) else [value]:
                        self.assertIsInstance(one, pydantic.BaseModel, f"input {name}")
                want = dspy.ChatAdapter().format(predictor.signature, predictor.demos, given)
                self.assertEqual(build_messages(compiled, inputs), want)

    def test_dspy_reads_replies_as_the_native_engine_does(self):
        """DSPy's ChatAdapter reads a reply's model sections as pydantic does; the native
        engine reads the same values."""
        from dspy.adapters.utils import parse_value

        from dspgo_worker.dspy_engine import model_classes, python_type

        compiled = CompiledSpec(models_spec(outputs=OUTPUTS))
        classes = model_classes(compiled)
        # Lax values: numbers as text, a datetime without seconds, a key that is no field.
        place = {"city": "Oslo", "tags": {"x": "a"}, "at": "2026-12-07 11:05", "extra": None, "pair": ["1", "2"], "more": 1}
        person = {"first_name": "Bo", "age": "7", "home": place, "score_": "0.5", "born": "2026-01-02"}
        texts = {"best": json.dumps(person), "people": f"```json\n[{json.dumps(person)}]\n```", "maybe": json.dumps(place),
                 "by_name": json.dumps({"bo": person})}
        for f in compiled.outputs:
            with self.subTest(field=f.name):
                theirs = parse_value(texts[f.name], python_type(f.type, classes))
                ours = parse_output(f.type, texts[f.name], f"output {f.name}", text=True)
                dumped = json.loads(json.dumps(theirs, default=lambda m: m.model_dump(mode="json")))
                self.assertEqual(canonical_json(convert(f.type, dumped, "x")), canonical_json(ours))


class ModelsEndToEndTest(unittest.TestCase):
    """Both engines against the test LM server: the same messages, the same outputs; a custom
    module's forward gets instances of the models."""

    def setUp(self):
        require_dspy(self)
        self.lm = LMServer(self)
        patcher = mock.patch.dict(os.environ, {KEY_ENV: "sk-models"})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.w = InProcessWorker(self)

    def configure(self, engine: str) -> None:
        self.w.ok("configure_lm", {"provider": "openai", "model": "test-model", "base_url": self.lm.url, "api_key_env": KEY_ENV, "engine": engine})

    def test_the_engines_agree(self):
        for kind in ("predict", "chain_of_thought"):
            spec = models_spec(INPUTS, OUTPUTS, kind=kind, demos=DEMOS)
            sent, outputs = {}, {}
            for engine in ("dspy", "native"):
                with self.subTest(kind=kind, engine=engine):
                    self.lm.reset()
                    self.configure(engine)
                    outputs[engine] = self.w.ok("execute_program", {"spec": spec, "inputs": RUN_INPUTS})["outputs"]
                    (request,) = self.lm.requests()
                    sent[engine] = request["messages"]
            self.assertEqual(sent["dspy"], sent["native"], kind)
            self.assertEqual(outputs["dspy"], outputs["native"], kind)
            best = outputs["dspy"]["best"]
            self.assertEqual(list(best), ["first_name", "age", "born", "home", "work", "score_"])
            self.assertIsInstance(best["age"], int)
            self.assertRegex(best["home"]["at"], r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")
            self.assertEqual(len(outputs["dspy"]["people"]), 2, "the LM server's two elements of a list")
            self.assertIsInstance(outputs["dspy"]["maybe"], dict)

    def test_a_custom_modules_forward_gets_instances(self):
        """A module's ``forward`` gets each value of a model as an instance of its class (a
        nested one too, a list of them); what it returns, its own model's instance or
        the one it got, comes back as its JSON."""
        import datetime

        import pydantic

        from .extract_module import Where

        seen: list = []
        dspy_module("test-models-where", lambda: Where(seen))
        self.addCleanup(unregister, "test-models-where")
        self.configure("dspy")
        spec = models_spec((("doc", "Doc"), ("more", "Optional[list[Doc]]")), (("place", "Place"), ("echo", "Doc")), kind="module",
                           models=MODELS[1:])
        spec["module"] = "test-models-where"
        inputs = {"doc": DOC, "more": [{"text": "x", "ids": {}}]}
        outputs = self.w.ok("execute_program", {"spec": spec, "inputs": inputs})["outputs"]
        ((doc, more),) = seen
        self.assertIsInstance(doc, pydantic.BaseModel)
        self.assertEqual((type(doc).__name__, type(doc.source).__name__), ("Doc", "Place"))
        self.assertEqual(doc.source.at, datetime.datetime.fromisoformat("2026-12-07T11:05:00.500000+01:00"))
        self.assertEqual(doc.ids, {7: 1.0})
        self.assertEqual([type(d).__name__ for d in more], ["Doc"])
        self.assertEqual(outputs["echo"], json.loads(json.dumps(CompiledSpec(spec).convert_inputs(inputs)["doc"])),
                         "an instance back as its JSON")
        self.assertEqual(list(outputs["place"]), ["city", "tags", "at", "extra", "pair"], "the module's own model's, as the spec's")
        (request,) = self.lm.requests()
        self.assertIn("`place` (Place)", request["messages"][0]["content"])


if __name__ == "__main__":
    unittest.main()
