"""Specs, types, canonical JSON, input and output conversion and the dummy LM (in-process)."""

from __future__ import annotations

import json
import math
import random
import unittest
from pathlib import Path

from dspgo_worker.canonical import canonical_json
from dspgo_worker.dummy import dummy_outputs
from dspgo_worker.errors import WorkerError
from dspgo_worker.fieldtypes import parse_type
from dspgo_worker.spec import CompiledSpec
from dspgo_worker.values import parse_output

DUMMY_LM_PATH = Path(__file__).resolve().parents[2] / "protocol" / "testdata" / "dummy_lm.json"
DEMOS_PATH = Path(__file__).resolve().parents[2] / "protocol" / "testdata" / "demos.json"


def load_dummy_cases() -> list[dict]:
    with open(DUMMY_LM_PATH, encoding="utf-8") as f:
        return json.load(f)["cases"]


def spec_of(inputs, outputs, kind="", instructions="") -> dict:
    """A spec from ``[(name, type)]`` lists."""

    def fields(pairs):
        return [{"name": n, "type": t, "description": ""} for n, t in pairs]

    return {"signature": {"inputs": fields(inputs), "outputs": fields(outputs)}, "instructions": instructions, "kind": kind}


class TypeTest(unittest.TestCase):
    def test_valid_types_normalise(self):
        valid = {
            "": "str",
            "str": "str",
            " int ": "int",
            "float": "float",
            "bool": "bool",
            "list[str]": "list[str]",
            "List[ int ]": "list[int]",
            "dict[str,float]": "dict[str, float]",
            "Dict[ str , list[bool] ]": "dict[str, list[bool]]",
            "Literal['a','b']": "Literal['a', 'b']",
            "Literal[\"yes\", 'no' ]": "Literal['yes', 'no']",
            "typing.Literal['x']": "Literal['x']",
            "list[dict[str, Literal['x']]]": "list[dict[str, Literal['x']]]",
            "\tlist[\tstr ]": "list[str]",
        }
        for text, want in valid.items():
            with self.subTest(text=text):
                t = parse_type(text)
                self.assertEqual(str(t), want)
                self.assertEqual(parse_type(str(t)), t, "the canonical form parses to the same type")

    def test_depth_limit(self):
        ok = "list[" * 16 + "str" + "]" * 16
        self.assertEqual(str(parse_type(ok)), ok)
        with self.assertRaisesRegex(ValueError, "nests more than 16"):
            parse_type("list[" * 17 + "str" + "]" * 17)

    def test_invalid_types(self):
        invalid = {
            "string": "unknown type",
            "list[": "expected a type",
            "list[str": "expected ']'",
            "dict[float, str]": "dict keys must be str, int or a Literal",
            "dict[str]": "expected ','",
            "Literal[a]": "must be quoted",
            "Literal[]": "must be quoted",
            "Literal['a', 'a']": "appears twice",
            "Literal['a": "unterminated",
            "Literal['a\\q']": "is not one dspgo takes",
            "Literal[-1]": "no negative number",
            "int int": "unexpected",
            "typing.Set[str]": "unknown type",
            "[str]": "expected a type",
        }
        for text, want in invalid.items():
            with self.subTest(text=text):
                with self.assertRaisesRegex(ValueError, want.replace("[", r"\[")):
                    parse_type(text)


class CanonicalTest(unittest.TestCase):
    def test_cases(self):
        cases = [
            (None, "null"),
            (True, "true"),
            ("a\"b\\c\n\x01<>&\u2028é🎉", '"a\\"b\\\\c\\n\\u0001<>&\u2028é🎉"'),
            ({"b": 1, "a": [2, "x"], "é": None, "Z": 0}, '{"Z":0,"a":[2,"x"],"b":1,"é":null}'),
            (-42, "-42"),
            (2**64 - 1, "18446744073709551615"),
            (1.0, "1"),
            (-0.0, "0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (1e15 + 0.5, "1000000000000000.5"),
            (9007199254740992.0, "9007199254740992.0"),
            (1e16, "1e+16"),
            (1.2345e20, "1.2345e+20"),
            (0.000100001, "0.000100001"),
            (1.5e-7, "1.5e-07"),
            (5e-324, "5e-324"),
            ({"k": [1.0, {"z": 2.5, "a": -3.0}]}, '{"k":[1,{"a":-3,"z":2.5}]}'),
            ("\ud800x", '"\ufffdx"'),  # a lone surrogate becomes U+FFFD, as Go decodes it
            ("\x7f\x1f\t\b\f\r", '"\x7f\\u001f\\t\\b\\f\\r"'),
            ({10: "a", 9: "b", -1: "c"}, '{"-1":"c","10":"a","9":"b"}'),  # a dict[int, V]'s keys, sorted as text
        ]
        for value, want in cases:
            with self.subTest(value=value):
                self.assertEqual(canonical_json(value), want.encode("utf-8"))

    def test_errors(self):
        for bad in (math.nan, math.inf, -math.inf, {True: "x"}, {1: "x", "1": "y"}, {"a": {2}}, object()):
            with self.subTest(bad=bad):
                with self.assertRaises((TypeError, ValueError)):
                    canonical_json(bad)

    def test_matches_the_documented_rule_on_random_values(self):
        """docs/protocol.md states the rule as json.dumps over norm(v); check it on random values."""

        def norm(v):
            if isinstance(v, float):
                return int(v) if v.is_integer() and abs(v) < 2**53 else v
            if isinstance(v, list):
                return [norm(x) for x in v]
            if isinstance(v, dict):
                return {k: norm(x) for k, x in v.items()}
            return v

        rng = random.Random(7)
        alphabet = "aZ09 _\"\\/\n\t\x00\x1f\x7f<>&é世🎉\u2028\u00a0"

        def value(depth):
            k = rng.randrange(8)
            if k == 0 and depth < 4:
                return [value(depth + 1) for _ in range(rng.randrange(4))]
            if k == 1 and depth < 4:
                return {"".join(rng.choice(alphabet) for _ in range(rng.randrange(6))): value(depth + 1) for _ in range(rng.randrange(4))}
            if k == 2:
                return "".join(rng.choice(alphabet) for _ in range(rng.randrange(8)))
            if k == 3:
                return rng.randrange(-(2**61), 2**61)
            if k == 4:
                return rng.randrange(2000) / 8
            if k == 5:
                return rng.uniform(-1, 1) * 10 ** rng.randrange(-30, 30)
            if k == 6:
                return rng.random() < 0.5
            return None

        for _ in range(500):
            v = value(0)
            want = json.dumps(norm(v), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            self.assertEqual(canonical_json(v), want.encode("utf-8"))


class CompileTest(unittest.TestCase):
    def test_normalised_spec_and_pinned_hash(self):
        a = CompiledSpec(spec_of([("q", "list[ str ]")], [("a", "")]))
        b = CompiledSpec(spec_of([("q", "List[str]")], [("a", "str")], kind="predict"))
        self.assertEqual(a.hash, b.hash, "the hash is of the normalised spec")
        # Pinned by internal/program's TestCompile too: the same bytes in Go and Python.
        self.assertEqual(a.hash, "edf18bb27799aae47dbb88b6cf0e16c94c00f045a9d64b11f92961de9af2a3e0")
        self.assertEqual(
            a.spec,
            {
                "signature": {
                    "inputs": [{"name": "q", "type": "list[str]", "description": ""}],
                    "outputs": [{"name": "a", "type": "str", "description": ""}],
                },
                "instructions": "",
                "kind": "predict",
            },
        )

    def test_defaults_and_nulls(self):
        minimal = {"signature": {"inputs": [{"name": "q"}], "outputs": [{"name": "a", "type": None}]}}
        self.assertEqual(CompiledSpec(minimal).hash, CompiledSpec(spec_of([("q", "")], [("a", "")])).hash)

    def test_chain_of_thought(self):
        c = CompiledSpec(spec_of([("q", "")], [("a", "int")], kind="chain_of_thought"))
        self.assertEqual([f.name for f in c.outputs], ["reasoning", "a"])
        self.assertNotEqual(c.hash, CompiledSpec(spec_of([("q", "")], [("a", "int")])).hash)

    def test_invalid_specs(self):
        cases = [
            (spec_of([("q", "")], []), "signature has no outputs"),
            (spec_of([("q", "")], [("reasoning", "")], kind="chain_of_thought"), '"reasoning" is used twice'),
            (spec_of([("q", "")], [("a", "")], kind="tree_of_thought"), 'kind "tree_of_thought" is unknown (known: predict, chain_of_thought, react, module)'),
            (spec_of([("a", ""), ("a", "")], [("b", "")]), '"a" is used twice (as input and as input)'),
            (spec_of([("a", "")], [("a", "")]), '"a" is used twice (as input and as output)'),
            (spec_of([("1a", "")], [("b", "")]), "input field name \"1a\" is not a valid identifier"),
            (spec_of([("a-b", "")], [("c", "")]), "not a valid identifier"),
            (spec_of([("ﬁ", "")], [("c", "")]), "is not in NFKC form"),
            (spec_of([("a", "strin")], [("b", "")]), 'input field "a": unknown type "strin"'),
            (spec_of([("a", "")], [("b", "list[")]), 'output field "b"'),
            ({"signature": {"inputs": [{"name": "a"}], "outputs": [{"name": "b"}]}, "extra": 1}, 'unknown field "extra"'),
            ({"signature": {"inputs": [{"name": "a", "typ": "int"}], "outputs": [{"name": "b"}]}}, 'unknown field "typ"'),
            ({"signature": {"inputs": [{"name": 3}], "outputs": [{"name": "b"}]}}, "inputs[0].name must be a string"),
            ({"signature": {"inputs": {"name": "a"}, "outputs": [{"name": "b"}]}}, "inputs must be an array"),
            ({"signature": "a -> b"}, "signature must be an object"),
            ([], "spec must be an object"),
            # A number the frame's JSON reads as infinite (1e400), in a module's state: no canonical form.
            ({**spec_of([], [("a", "")]), "kind": "module", "module": "rag", "state": {"n": json.loads("1e400")}},
             "spec: inf is not a JSON number"),
        ]
        for spec, want in cases:
            with self.subTest(want=want):
                with self.assertRaises(WorkerError) as caught:
                    CompiledSpec(spec)
                self.assertEqual(caught.exception.code, "invalid_argument")
                self.assertIn(want, caught.exception.message)


class DemosTest(unittest.TestCase):
    def test_golden_vectors(self):
        """protocol/testdata/demos.json (written by Go's TestDemoVectors): the same hash, or
        the same invalid_argument message, as Go."""
        with open(DEMOS_PATH, encoding="utf-8") as f:
            cases = json.load(f)["cases"]
        self.assertGreater(len(cases), 10)
        for case in cases:
            with self.subTest(case=case["name"]):
                if "error" in case:
                    with self.assertRaises(WorkerError) as caught:
                        CompiledSpec(case["spec"])
                    self.assertEqual(caught.exception.code, "invalid_argument")
                    self.assertEqual(caught.exception.message, case["error"])
                else:
                    self.assertEqual(CompiledSpec(case["spec"]).hash, case["spec_hash"])

    def test_normalised_demos(self):
        spec = spec_of([("n", "int"), ("m", "dict[int, float]")], [("a", "tuple[int, str]")], kind="chain_of_thought")
        spec["demos"] = [{"inputs": {"m": {"07": 1}, "n": 2.0}, "outputs": {"a": [1, "x"]}, "reasoning": "because"},
                         {"inputs": {"n": 1, "m": {}}, "outputs": {"a": [2, "y"]}, "reasoning": None}]
        c = CompiledSpec(spec)
        self.assertEqual(c.demos, [{"inputs": {"n": 2, "m": {7: 1.0}}, "outputs": {"a": [1, "x"]}, "reasoning": "because"},
                                   {"inputs": {"n": 1, "m": {}}, "outputs": {"a": [2, "y"]}}])
        self.assertIs(c.spec["demos"], c.demos)
        self.assertNotIn("demos", CompiledSpec(spec_of([("q", "")], [("a", "")])).spec)

    def test_malformed_demos(self):
        base = spec_of([("q", "")], [("a", "")])
        cases = [
            ({"inputs": {"q": "?"}, "outputs": {"a": "!"}, "why": 1}, 'spec.demos[0] has unknown field "why" (known: inputs, outputs, reasoning, trajectory)'),
            ({"inputs": ["?"], "outputs": {"a": "!"}}, "spec.demos[0].inputs must be an object, got array"),
            ({"inputs": {"q": "?"}, "outputs": "!"}, 'spec.demos[0].outputs must be an object, got string "!"'),
            ({"inputs": {"q": "?"}, "outputs": {"a": "!"}, "reasoning": 3}, "spec.demos[0].reasoning must be a string, got number 3"),
            ("q -> a", 'spec.demos[0] must be an object, got string "q -> a"'),
        ]
        for demo, want in cases:
            with self.subTest(want=want):
                with self.assertRaises(WorkerError) as caught:
                    CompiledSpec({**base, "demos": [demo]})
                self.assertEqual(caught.exception.message, want)
        with self.assertRaises(WorkerError) as caught:
            CompiledSpec({**base, "demos": {}})
        self.assertEqual(caught.exception.message, "spec.demos must be an array, got object")


class InputsTest(unittest.TestCase):
    def setUp(self):
        self.compiled = CompiledSpec(
            spec_of(
                [("s", ""), ("n", "int"), ("x", "float"), ("ok", "bool"), ("tags", "list[str]"), ("m", "dict[str, int]"), ("mode", "Literal['a', 'b']")],
                [("out", "")],
            )
        )
        self.good = {"s": "hi", "n": 7.0, "x": 2, "ok": True, "tags": ["a", "b"], "m": {"k": 3}, "mode": "b"}

    def test_conversion(self):
        got = self.compiled.convert_inputs(self.good)
        self.assertEqual(got, {"s": "hi", "n": 7, "x": 2.0, "ok": True, "tags": ["a", "b"], "m": {"k": 3}, "mode": "b"})
        self.assertIs(type(got["n"]), int)
        self.assertIs(type(got["x"]), float)

    def test_errors_name_the_field(self):
        cases = [
            ({"s": None}, "input s: expected str, got null"),
            ({"s": ["a", 2]}, "input s[1]: expected str, got number 2"),
            ({"s": [["a"]]}, "input s[0]: expected str, got array"),
            ({"n": "one"}, 'input n: expected int, got string "one"'),
            ({"n": 1.5}, "input n: expected int, got number 1.5"),
            ({"n": True}, "input n: expected int, got bool"),
            ({"n": 2.0**53}, "input n: expected int"),
            ({"n": 2**63}, "input n: expected int"),
            ({"x": "1"}, 'input x: expected float, got string "1"'),
            ({"x": False}, "input x: expected float, got bool"),
            ({"x": 10**400}, "input x: expected float"),
            ({"ok": 1}, "input ok: expected bool, got number 1"),
            ({"tags": ["a", 2]}, "input tags[1]: expected str, got number 2"),
            ({"tags": "a"}, 'input tags: expected list[str], got string "a"'),
            ({"m": {"k": "v"}}, 'input m["k"]: expected int, got string "v"'),
            ({"m": []}, "input m: expected dict[str, int], got array"),
            ({"mode": "c"}, "input mode: \"c\" is not one of Literal['a', 'b']"),
            ({"extra": 1}, 'input "extra" is not in the signature (the program takes "s", "n", "x", "ok", "tags", "m", "mode")'),
        ]
        for change, want in cases:
            with self.subTest(want=want):
                with self.assertRaises(WorkerError) as caught:
                    self.compiled.convert_inputs({**self.good, **change})
                self.assertEqual(caught.exception.code, "invalid_argument")
                self.assertIn(want, caught.exception.message)
        for value in (["Ann wrote it.", "Bo read it."], [], 3, 2.5, True, {"k": [1, "x"]}):
            with self.subTest(value=value):  # what DSPy shows in a str field, as Go takes it
                self.assertEqual(self.compiled.convert_inputs({**self.good, "s": value})["s"], value)
        inputs = dict(self.good)
        del inputs["s"]
        with self.assertRaisesRegex(WorkerError, 'input "s" is missing'):
            self.compiled.convert_inputs(inputs)

    def test_optional_inputs_may_be_left_out(self):
        """An Optional input left out stays out (DSPy leaves it out of the prompt; a null
        is written "None"); any other input is required, Any included, as DSPy's
        ``annotation_allows_none`` has it (Go's TestOptionalInputsMayBeLeftOut)."""
        compiled = CompiledSpec(spec_of([("q", "str"), ("hint", "Optional[str]"), ("k", "int | None"), ("u", "Union[int, str, None]"), ("x", "Any")], [("a", "str")]))
        self.assertEqual(compiled.convert_inputs({"q": "?", "x": None}), {"q": "?", "x": None})
        self.assertEqual(compiled.convert_inputs({"q": "?", "x": 1, "hint": None, "k": 2}), {"q": "?", "x": 1, "hint": None, "k": 2})
        for inputs, want in (
            ({"x": 1}, 'input "q" is missing (the program takes "q", "hint", "k", "u", "x")'),
            ({"q": "?"}, 'input "x" is missing'),
            ({"q": "?", "x": 1, "extra": 1}, 'input "extra" is not in the signature'),
        ):
            with self.subTest(want=want):
                with self.assertRaises(WorkerError) as caught:
                    compiled.convert_inputs(inputs)
                self.assertEqual(caught.exception.code, "invalid_argument")
                self.assertIn(want, caught.exception.message)
        left = dummy_outputs(compiled, {"q": "?", "x": None})
        self.assertNotEqual(left, dummy_outputs(compiled, {"q": "?", "x": None, "hint": None, "k": None, "u": None}))


class DummyLMTest(unittest.TestCase):
    def test_golden_vectors(self):
        cases = load_dummy_cases()
        self.assertGreaterEqual(len(cases), 5)
        for case in cases:
            with self.subTest(case=case["name"]):
                compiled = CompiledSpec(case["spec"])
                self.assertEqual(compiled.hash, case["spec_hash"])
                outputs = dummy_outputs(compiled, compiled.convert_inputs(case["inputs"]))
                self.assertEqual(json.loads(json.dumps(outputs)), case["outputs"])
                self.assertEqual(list(outputs), [f.name for f in compiled.outputs], "outputs in field order")

    def test_types_and_determinism(self):
        compiled = CompiledSpec(
            spec_of([("x", "")], [("s", ""), ("i", "int"), ("f", "float"), ("b", "bool"), ("l", "list[int]"), ("d", "dict[str, float]"), ("lit", "Literal['red', 'green']")])
        )
        for i in range(20):
            out = dummy_outputs(compiled, {"x": f"seed {i}"})
            self.assertEqual(out, dummy_outputs(compiled, {"x": f"seed {i}"}))
            self.assertTrue(out["s"].startswith("s "))
            self.assertIsInstance(out["i"], int)
            self.assertTrue(0 <= out["i"] < 1000)
            self.assertIsInstance(out["f"], float)
            self.assertIsInstance(out["b"], bool)
            self.assertTrue(1 <= len(out["l"]) <= 3)
            self.assertEqual(list(out["d"]), [f"key_{k}" for k in range(len(out["d"]))])
            self.assertIn(out["lit"], ("red", "green"))


class OutputParsingTest(unittest.TestCase):
    """What an LM wrote, read as DSPy 3.4.1's parse_value reads it (python/tests/
    test_dspy_signatures.py compares the rules with DSPy's own over a broad corpus)."""

    def parse(self, type_text, value, text=True):
        return parse_output(parse_type(type_text), value, "output f", text=text)

    def test_text_forms(self):
        cases = [
            ("str", "  hello  ", "  hello  "),  # a str output is its text (a section's is stripped already)
            ("int", "42", 42),
            ("int", " -7. ", -7),  # a Python literal: -7.0, an int in pydantic's lax mode
            ("int", "3.0", 3),
            ("int", "1_000", 1000),
            ("int", "'12'", 12),
            ("float", "0.9", 0.9),
            ("float", "1", 1.0),
            ("float", "'2.5e-3'", 0.0025),
            ("bool", "true", True),
            ("bool", "Yes", True),
            ("bool", "on", True),
            ("bool", "no", False),
            ("Literal['red', 'green']", "green", "green"),
            ("Literal['red', 'green']", "'red'", "red"),
            ("Literal['red', 'green']", " Literal['green'] ", "green"),
            ("Literal[1, 2]", '"2"', 2),
            ("list[int]", "[1, 2, 3]", [1, 2, 3]),
            ("list[int]", '["1", 2.0]', [1, 2]),
            ("list[str]", "```json\n[\"a\", \" b \"]\n```", ["a", " b "]),
            ("list[int]", "(1, 2)", [1, 2]),
            ("dict[str, float]", '{"a": 1, "b": "0.5"}', {"a": 1.0, "b": 0.5}),
            ("dict[str, float]", "{'score': 123_456.789}", {"score": 123456.789}),
            ("dict[str, list[bool]]", '{"k": [true, "no"]}', {"k": [True, False]}),
            ("datetime.date", "2024-01-02T00:00:00", "2024-01-02"),
            ("datetime.datetime", "1700000000", "2023-11-14T22:13:20Z"),  # a Unix timestamp, as pydantic reads one
        ]
        for type_text, value, want in cases:
            with self.subTest(type=type_text, value=value):
                got = self.parse(type_text, value)
                self.assertEqual(got, want)
                self.assertIs(type(got), type(want))

    def test_typed_values(self):
        """A value already typed (a DSPy prediction's), checked by pydantic's lax mode."""
        self.assertEqual(self.parse("list[float]", [1, 2.5], text=False), [1.0, 2.5])
        self.assertEqual(self.parse("int", 4.0, text=False), 4)
        self.assertEqual(self.parse("int", True, text=False), 1)
        self.assertEqual(self.parse("dict[str, int]", {"a": "2"}, text=False), {"a": 2})
        self.assertEqual(self.parse("str", "  padded  ", text=False), "  padded  ")
        self.assertEqual(self.parse("str", 3), "3", "a JSON reply's number for a str output: DSPy's str(value)")

    def test_errors_name_the_field(self):
        cases = [
            ("int", "many"),
            ("int", "1.5"),
            ("int", "`12`"),
            ("float", "nan"),
            ("float", "inf"),
            ("float", "about 3"),
            ("bool", "maybe"),
            ("bool", "False."),
            ("Literal['red', 'green']", "blue"),
            ("Literal['red', 'green']", "Green"),
            ("list[int]", "1, 'x'"),
            ("list[int]", '["x"]'),
            ("list[str]", '["a", 1]'),
            ("dict[str, int]", "[1]"),
            ("int", None),
        ]
        for type_text, value in cases:
            with self.subTest(type=type_text, value=value):
                with self.assertRaisesRegex(ValueError, "^output f"):
                    self.parse(type_text, value)
        for type_text, value in (("str", 3), ("str", [1]), ("int", "7."), ("bool", " true "), ("list[int]", "[1]")):
            with self.subTest(type=type_text, value=value):
                with self.assertRaisesRegex(ValueError, "^output f"):
                    self.parse(type_text, value, text=False)


if __name__ == "__main__":
    unittest.main()
