"""Field types beyond the scalars, lists and str-keyed dicts: Any, Optional, Union, tuple,
dict[int, V] and dict[Literal, V] (docs/protocol.md, "Program specs").

protocol/testdata/types.json holds the parse and conversion cases that Go's
internal/program checks too (TestTypeVectors): both languages give the same canonical
forms, results and messages. The rest is Python's own: reading an LM's reply, the dummy
LM's values, the native engine's prompt and missing Optional outputs.
"""

from __future__ import annotations

import json
import random
import unittest
from pathlib import Path

from dspgo_worker.canonical import canonical_json
from dspgo_worker.chat_format import build_messages, parse_reply
from dspgo_worker.dummy import dummy_value
from dspgo_worker.errors import WorkerError
from dspgo_worker.fieldtypes import parse_type
from dspgo_worker.protocol import quote
from dspgo_worker.signature import parse_signature
from dspgo_worker.spec import CompiledSpec
from dspgo_worker.values import convert, parse_output

from .helpers import check_conversions
from .test_spec import spec_of

TYPES_PATH = Path(__file__).resolve().parents[2] / "protocol" / "testdata" / "types.json"


def load_type_vectors() -> dict:
    with open(TYPES_PATH, encoding="utf-8") as f:
        return json.load(f)


class TypeVectorsTest(unittest.TestCase):
    """protocol/testdata/types.json, as Go's TestTypeVectors reads it."""

    def test_parse(self):
        cases = load_type_vectors()["parse"]
        self.assertGreater(len(cases), 50)
        for case in cases:
            with self.subTest(type=case["type"]):
                if "error" in case:
                    with self.assertRaises(ValueError) as caught:
                        parse_type(case["type"])
                    self.assertEqual(str(caught.exception), case["error"])
                    continue
                t = parse_type(case["type"])
                self.assertEqual(str(t), case["canonical"])
                self.assertEqual(str(parse_type(str(t))), str(t), "the canonical form parses to the same type")

    def test_convert(self):
        cases = load_type_vectors()["convert"]
        self.assertGreater(len(cases), 50)
        check_conversions(self, cases, parse_type)

    def test_a_dict_key_too_long_for_python_to_read(self):
        """A dict[int, V] key of more digits than Python reads (4,300) is not an int, as Go
        says, not Python's own error."""
        key = "1" * 5000
        with self.assertRaises(ValueError) as caught:
            convert(parse_type("dict[int, str]"), {key: "a"}, "input x")
        self.assertEqual(str(caught.exception), f"input x: key {quote(key)} is not an int")
        self.assertEqual(convert(parse_type("dict[int, str]"), {"0" * 30 + "5": "a"}, "input x"), {5: "a"},
                         "leading zeros are no digits")


class SignatureTest(unittest.TestCase):
    def test_parse_signature(self):
        sig = parse_signature("input: str | (int | float) | None, tags: Literal['a,b', 'c)'] -> out: dict[int, list[str]]")
        self.assertEqual([f["name"] for f in sig["inputs"]], ["input", "tags"])
        self.assertEqual(sig["inputs"][1]["type"], "Literal['a,b', 'c)']", "commas and brackets in quotes do not split fields")
        spec = CompiledSpec({"signature": sig}).spec["signature"]
        self.assertEqual(
            [f["type"] for f in spec["inputs"] + spec["outputs"]],
            ["Optional[Union[str, int, float]]", "Literal['a,b', 'c)']", "dict[int, list[str]]"],
        )

    def test_errors(self):
        cases = {
            "question answer": 'has no "->"',
            "a -> b -> c": 'more than one "->"',
            " -> ": "has no outputs",
            "a, , b -> c": "empty field",
            "a -> a": '"a" is used twice (as input and as output)',
            "a: None -> b": 'input field "a": a bare None is not a type',
        }
        for text, want in cases.items():
            with self.subTest(text=text):
                with self.assertRaises(WorkerError) as caught:
                    parse_signature(text)
                self.assertEqual(caught.exception.code, "invalid_argument")
                self.assertIn(want, caught.exception.message)


class OutputParsingTest(unittest.TestCase):
    """Reading what an LM wrote for the new types, as DSPy 3.4.1's parse_value reads it
    (python/tests/test_dspy_signatures.py compares these rules with DSPy's own parsing
    over a broad corpus)."""

    def parse(self, type_text, value, text=False):
        return parse_output(parse_type(type_text), value, "output f", text=text)

    def test_text_forms(self):
        cases = [
            ("Optional[int]", "42", 42),
            ("Optional[int]", "null", None),
            ("Optional[int]", "None", None),
            ("Optional[str]", "None", "None"),  # an Optional with a str member takes the text as it is, as DSPy does
            ("Optional[str]", '"quoted"', '"quoted"'),
            ("Optional[Union[int, str]]", "42", "42"),
            ("Optional[bool]", "yes", True),
            ("Union[int, str]", "42", 42),
            ("Union[str, int]", "42", 42),  # JSON 42 is an int: the int member takes it as it is
            ("Union[int, str]", '"42"', "42"),
            ("Union[int, str]", "hello", "hello"),
            ("Union[float, int]", "3", 3),
            ("Union[float, str]", "3", 3.0),  # float takes an int in strict mode, str not at all
            ("Union[int, float]", "3.0", 3.0),
            ("Union[int, bool]", "yes", True),  # no member takes "yes" as it is; bool reads it
            ("Union[bool, int]", "1", 1),
            ("Union[list[str], dict[str, Any]]", '{"k": 1}', {"k": 1}),
            ("Union[list[int], list[float]]", "[1, 2.5]", [1.0, 2.5]),
            ("Union[Literal[1, 2], float]", "1.0", 1),  # pydantic's Literal takes 1.0 as 1
            ("Union[Any, float]", "1", 1),  # Any takes a value as strict mode does: before a lax coercion
            ("Any", '"text"', "text"),
            ("Any", "plain text.", "plain text."),
            ("Any", "```json\n[1, 2.5]\n```", [1, 2.5]),
            ("Any", "None", None),
            ("Any", "{'a': (1, 2), 'b': True}", {"a": [1, 2], "b": True}),  # a Python literal
            ("tuple[int, str]", '[1, "a"]', [1, "a"]),
            ("tuple[int, ...]", "[1, 2.0]", [1, 2]),
            ("tuple[int, str]", "1, 'a'", [1, "a"]),
            ("dict[int, str]", '{"1": "a", " 2 ": "b", "3.0": "c"}', {1: "a", 2: "b", 3: "c"}),
            ("dict[int, str]", '{"1": "a", "01": "b"}', {1: "b"}),  # the later of two equal keys, as pydantic keeps it
            ("dict[Literal['a', 'b'], int]", '{"a": "1"}', {"a": 1}),
            ("list[Optional[float]]", "[1, null]", [1.0, None]),
            ("list[str]", '[" a ", "b "]', [" a ", "b "]),  # a string is never stripped
        ]
        for type_text, value, want in cases:
            with self.subTest(type=type_text, value=value):
                got = self.parse(type_text, value, text=True)
                self.assertEqual(json.dumps(got), json.dumps(want))
                self.assertEqual(type(got), type(want))

    def test_typed_values(self):
        # As a DSPy prediction holds them: tuples, int keys.
        self.assertEqual(self.parse("tuple[int, str]", (1, "a")), [1, "a"])
        self.assertEqual(self.parse("dict[int, str]", {1: "a"}), {1: "a"})
        self.assertEqual(self.parse("Union[dict[str, int], dict[int, str]]", {1: "a"}), {1: "a"})
        self.assertIsNone(self.parse("Optional[int]", None))
        self.assertIsNone(self.parse("Any", None))
        # A typed string is a string: only an LM's text is decoded first.
        self.assertEqual(self.parse("Union[int, str]", "42"), "42")
        self.assertEqual(self.parse("Union[int, str]", "42", text=True), 42)
        self.assertEqual(self.parse("Any", "[1]"), "[1]")
        self.assertEqual(self.parse("list[Union[int, str]]", '["42", 1]', text=True), ["42", 1])
        self.assertEqual(self.parse("Optional[int]", "7"), 7, "pydantic's lax mode reads an int's text")
        self.assertEqual(self.parse("list[str]", ["  a  "]), ["  a  "], "and leaves a string as it is")

    def test_errors_name_the_field(self):
        cases = [
            ("Optional[int]", "many"),
            ("Union[int, bool]", "maybe"),
            ("Union[int, str]", None),
            ("Union[int, Literal['low', 'high']]", "High"),  # a Literal's value in its own case only, as DSPy reads it
            ("tuple[int, str]", "[1]"),
            ("tuple[int, str]", '["a", 1]'),
            ("dict[int, str]", '{"x": "a"}'),
            ("dict[Literal['a'], int]", '{"b": 1}'),
            ("dict[Literal['a', 'b'], int]", '{"A": 1}'),
            ("Any", 2**64),
            ("list[int]", None),
            ("list[int]", "[1, 2"),  # DSPy's json_repair closes the list; JSON does not
        ]
        for type_text, value in cases:
            with self.subTest(type=type_text, value=value):
                with self.assertRaisesRegex(ValueError, "^output f"):
                    self.parse(type_text, value, text=True)

    def test_outputs_agree_with_conversion(self):
        """Whatever a union output parses to, conversion (Go's too) takes back unchanged:
        the host converts the worker's outputs again."""
        texts = ["3", "3.0", "3.5", "-2", "true", "yes", '"x"', "x", "null", "[1, 2]", "[1, 2.5]", '["a"]', '{"1": 2}', '{"a": 1.5}', "[]", "{}"]
        members = ["int", "float", "str", "bool", "list[int]", "list[float]", "list[str]", "dict[int, int]", "dict[str, float]",
                   "Literal['x', 'yes']", "Any", "tuple[int, int]"]
        r = random.Random(19)
        for _ in range(300):
            k = r.randint(2, 4)
            t = parse_type(f"Union[{', '.join(r.sample(members, k))}]" + (" | None" if r.random() < 0.3 else ""))
            text = r.choice(texts)
            try:
                got = parse_output(t, text, "output f", text=True)
            except ValueError:
                continue
            wire = json.loads(json.dumps(got))
            with self.subTest(type=str(t), text=text):
                self.assertEqual(canonical_json(convert(t, wire, "output f")), canonical_json(got))


class DummyTest(unittest.TestCase):
    def test_values_are_of_their_types(self):
        types = ["Any", "Optional[int]", "Optional[Union[str, list[int]]]", "Union[int, bool, Literal['a']]", "tuple[int, str, bool]",
                 "tuple[float, ...]", "dict[int, str]", "dict[Literal['a', 'b'], list[int]]", "list[Optional[float]]"]
        r = random.Random(7)
        seen_null = False
        for text in types:
            t = parse_type(text)
            for _ in range(40):
                digest = bytes(r.getrandbits(8) for _ in range(32))
                value = dummy_value(t, digest, "f")
                self.assertEqual(value, dummy_value(t, digest, "f"))
                wire = json.loads(json.dumps(value))
                with self.subTest(type=text, value=value):
                    self.assertEqual(canonical_json(convert(t, wire, "output f")), canonical_json(value))
                seen_null |= value is None
        self.assertTrue(seen_null, "Optional outputs are sometimes null")

    def test_dict_keys(self):
        out = dummy_value(parse_type("dict[int, str]"), bytes([0, 0, 0, 0, 2] + [0] * 27), "f")
        self.assertEqual(list(out), [0, 1, 2])
        out = dummy_value(parse_type("dict[Literal['a', 'b'], int]"), bytes([0, 0, 0, 0, 2] + [0] * 27), "f")
        self.assertEqual(list(out), ["a", "b"], "no more entries than the Literal has values")


class NativeEngineTest(unittest.TestCase):
    def compiled(self, outputs, inputs=(("q", ""),)):
        return CompiledSpec(spec_of(list(inputs), outputs))

    def test_prompt_notes(self):
        """The prompt as DSPy 3.4.1's ChatAdapter writes it (python/tests/test_dspy_engine.py
        and the engines' cross-check compare whole prompts with DSPy's): its type names,
        a colon after each, its notes and pydantic's JSON schemas, 'type' first."""
        c = self.compiled([("a", "Optional[int]"), ("b", "tuple[int, str]"), ("c", "Any"), ("d", "dict[int, Any]"), ("e", "bool"), ("f", "Literal['x']")],
                          inputs=[("q", "Union[int, str]"), ("t", "tuple[int, ...]"), ("day", "datetime.date")])
        system, user = (m["content"] for m in build_messages(c, {"q": "why?", "t": [1, 2], "day": "2026-12-07"}))
        self.assertIn("1. `q` (Union[int, str]): \n2. `t` (tuple[int, Ellipsis]): \n3. `day` (date):\n", system)
        self.assertIn("1. `a` (Union[int, NoneType]): \n", system)
        self.assertIn('{a}        # note: the value you produce must adhere to the JSON schema: {"anyOf": [{"type": "integer"}, {"type": "null"}]}', system)
        self.assertIn('{"type": "array", "maxItems": 2, "minItems": 2, "prefixItems": [{"type": "integer"}, {"type": "string"}]}', system)
        self.assertIn("{c}        # note: the value you produce must adhere to the JSON schema: {}", system)
        self.assertIn('{d}        # note: the value you produce must adhere to the JSON schema: {"type": "object", "additionalProperties": true}', system)
        self.assertIn("{e}        # note: the value you produce must be True or False", system)
        self.assertIn("{f}        # note: the value you produce must exactly match (no extra characters) one of: x", system)
        self.assertIn("[[ ## q ## ]]\nwhy?\n", user, "a str value is written as it is, whatever the field's type")
        self.assertIn("[[ ## t ## ]]\n[1, 2]\n", user)
        self.assertIn("`[[ ## a ## ]]` (must be formatted as a valid Python Union[int, NoneType]), then `[[ ## b ## ]]` (must be formatted as a valid Python tuple[int, str])", user)

    def test_missing_optional_output_is_null(self):
        c = self.compiled([("a", "Optional[int]"), ("b", "str"), ("c", "Any")])
        out = parse_reply(c, "[[ ## b ## ]]\nhi\n\n[[ ## c ## ]]\nnull\n\n[[ ## completed ## ]]")
        self.assertEqual(out, {"a": None, "b": "hi", "c": None})
        with self.assertRaisesRegex(WorkerError, 'output "c" is missing'):
            parse_reply(c, "[[ ## b ## ]]\nhi\n\n[[ ## completed ## ]]")
        out = parse_reply(c, '{"a": null, "b": "hi", "c": {"k": [1]}}')
        self.assertEqual(out, {"a": None, "b": "hi", "c": {"k": [1]}})


if __name__ == "__main__":
    unittest.main()


class ReadingBoundsTest(unittest.TestCase):
    """An LM's text cannot make the reading of an output take long or fail without naming
    the output: texts that made regular expressions backtrack, an int too long for Python
    to write, a Python literal past its bound, Unions nested so that their tries grow
    exponentially."""

    def read(self, typ: str, text: str) -> str:
        try:
            parse_output(parse_type(typ), text, "output x", text=True)
        except ValueError as exc:
            return str(exc)
        return ""

    def test_long_texts(self):
        self.assertEqual(self.read("float", "1" * 100_000 + "x")[:35], 'output x: expected float, got strin')
        self.assertTrue(self.read("list[int]", "```\n" + " " * 100_000 + "x").startswith("output x: expected list[int]"))
        self.assertTrue(self.read("list[int]", "(" + "1," * 200_000 + ")").startswith("output x: expected list[int]"), "past the literal's bound: the text")
        self.assertEqual(self.read("list[int]", "(" + "1," * 1000 + ")"), "", "within it: a tuple is a list")

    def test_an_int_too_long_to_write(self):
        for typ in ("int", "float", "Literal[1, 2]", "Union[int, str]", "datetime.date"):
            with self.subTest(typ=typ):
                msg = self.read(typ, "0x" + "f" * 4000 if typ != "datetime.date" else "1" * 5000)
                self.assertTrue(msg.startswith("output x: "), msg[:200])
                self.assertLess(len(msg), 300, "the number is not written out")

    def test_nested_unions_have_a_budget(self):
        typ = "int"
        for _ in range(8):
            typ = f"Union[list[{typ}], tuple[{typ}, ...]]"
        value: list = ["1"]
        for _ in range(7):
            value = [value, value, value]
        msg = self.read(typ, json.dumps(value))
        self.assertIn("the value is too complex to read", msg)
