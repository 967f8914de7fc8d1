"""dspgo's signatures and types against the real DSPy.

internal/program/testdata/dspy_signatures.txt lists the signature strings of DSPy's own
tests with how dspgo parses them (Go's TestDSPySignatures checks the same file). Here the
Python spec parser is checked against it, and, where dspy imports, so is DSPy itself:
dspy.Signature gives the same field names, and types equal to what the dspy engine's
``python_type`` makes of dspgo's. The types of protocol/testdata/types.json are checked the
same way, and dspgo's reading of what an LM produced against DSPy's ``parse_value`` and
pydantic's lax mode, over a generated corpus (:class:`ReadingCorpusTest`). The DSPy checks
are skipped on the bare interpreter and required in the dspy run
(:func:`~tests.lmserver.require_dspy`).
"""

from __future__ import annotations

import ast
import json
import math
import random
import re
import types
import typing
import unittest
from collections import Counter
from pathlib import Path

from dspgo_worker.chat_format import dspy_type_name
from dspgo_worker.errors import WorkerError
from dspgo_worker.fieldtypes import OPTIONAL, STR, parse_type
from dspgo_worker.signature import parse_signature
from dspgo_worker.spec import CompiledSpec
from dspgo_worker.values import _decode, _has_str_member, parse_output

from .lmserver import require_dspy
from .test_types import load_type_vectors

SIGNATURES_PATH = Path(__file__).resolve().parents[2] / "internal" / "program" / "testdata" / "dspy_signatures.txt"


def load_signatures() -> list[tuple[str, str, str]]:
    """The entries of dspy_signatures.txt: ``(signature, mark, expected)`` (the format is in
    the file's header)."""
    entries: list[list[str]] = []
    for n, line in enumerate(SIGNATURES_PATH.read_text(encoding="utf-8").splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        if line.startswith('"'):
            entries.append([json.loads(line), "", ""])
        elif line[:4] == "    " and line[4:5] in ("=", "!", "x") and line[5:6] == " " and entries and not entries[-1][1]:
            entries[-1][1:] = [line[4], line[6:]]
        else:
            raise AssertionError(f"line {n} of {SIGNATURES_PATH.name} is not an entry: {line!r}")
    for e in entries:
        assert e[1], f"{e[0]!r} has no expectation"
    return [tuple(e) for e in entries]


def canonical_signature(compiled: CompiledSpec) -> str:
    """Go's Signature.String() of a normalised spec: str fields without a type."""

    def side(fields):
        return ", ".join(f.name if str(f.type) == "str" else f"{f.name}: {f.type}" for f in fields)

    return side(compiled.inputs) + " -> " + side(compiled.declared_outputs)


def shape(t):
    """A Python type in a form that compares by meaning: typing's and the builtins'
    spellings alike (List[int] is list[int]), a bare list/dict/tuple as of Any, a union as
    its distinct members in order without None and whether None is one of them."""
    if t in (list, typing.List):
        return ("list", (typing.Any,))
    if t in (dict, typing.Dict):
        return ("dict", (str, typing.Any))
    if t in (tuple, typing.Tuple):
        return ("tuple", (typing.Any, Ellipsis))
    origin = typing.get_origin(t)
    if origin is None:
        return t
    args = typing.get_args(t)
    if origin in (typing.Union, types.UnionType):
        members = []
        for a in args:
            if a is not type(None) and shape(a) not in members:
                members.append(shape(a))
        inner = members[0] if len(members) == 1 else ("Union", tuple(members))
        return ("Optional", inner) if type(None) in args else inner
    if origin is typing.Literal:
        return ("Literal", args)
    return (origin.__name__, tuple(a if a is Ellipsis else shape(a) for a in args))


class SignatureFileTest(unittest.TestCase):
    """The Python spec parser gives what the file lists (no dspy needed)."""

    def test_entries(self):
        entries = load_signatures()
        self.assertGreater(len(entries), 50)
        for signature, mark, want in entries:
            with self.subTest(signature=signature):
                if mark == "=":
                    self.assertEqual(canonical_signature(CompiledSpec({"signature": parse_signature(signature)})), want)
                    continue
                with self.assertRaises(WorkerError) as caught:
                    parse_signature(signature)
                self.assertEqual(caught.exception.code, "invalid_argument")
                self.assertIn(want, caught.exception.message)


class AgainstDSPyTest(unittest.TestCase):
    def setUp(self):
        require_dspy(self)
        import dspy

        from dspgo_worker.dspy_engine import python_type

        self.dspy = dspy
        self.python_type = python_type

    def dspy_fields(self, signature: str) -> list[tuple[str, object]]:
        sig = self.dspy.Signature(signature)
        return [(name, shape(f.annotation)) for name, f in {**sig.input_fields, **sig.output_fields}.items()]

    def test_signature_file(self):
        """Every '=' entry: DSPy gives the same names, in order, and the same types; every
        '!' entry is one DSPy accepts; every 'x' entry one DSPy refuses."""
        checked = 0
        for signature, mark, _ in load_signatures():
            with self.subTest(signature=signature):
                if mark == "x":
                    with self.assertRaises(Exception):  # noqa: B017 - dspy refuses them with several kinds
                        self.dspy.Signature(signature)
                    continue
                theirs = self.dspy_fields(signature)
                if mark == "!":
                    continue
                compiled = CompiledSpec({"signature": parse_signature(signature)})
                ours = [(f.name, shape(self.python_type(f.type))) for f in compiled.inputs + compiled.declared_outputs]
                self.assertEqual(ours, theirs)
                checked += 1
        self.assertGreater(checked, 40)

    def test_type_vectors(self):
        """Every type that dspgo parses in protocol/testdata/types.json, DSPy parses to the
        same type (the dspy engine's python_type of dspgo's)."""
        for case in load_type_vectors()["parse"]:
            if "canonical" not in case or not case["type"]:
                continue
            with self.subTest(type=case["type"]):
                ((_, theirs), _) = self.dspy_fields(f"x: {case['type']} -> y")
                self.assertEqual(shape(self.python_type(parse_type(case["type"]))), theirs)

    def test_reply_parsing(self):
        """dspgo's reading of an output's text (the native engine's) is DSPy's
        (ChatAdapter's parse_value), and reading DSPy's typed value again changes nothing
        (the dspy engine's)."""
        from dspy.adapters.utils import parse_value

        cases = [
            ("Optional[int]", "42"), ("Optional[int]", "null"), ("Optional[int]", "None"), ("Optional[int]", " 7 "),
            ("Optional[str]", "hello"), ("Optional[str]", "None"), ("Optional[str]", '"quoted"'), ("Optional[str]", "42"),
            ("Optional[float]", "0.5"), ("Optional[bool]", "true"), ("Optional[list[int]]", "[1, 2]"), ("Optional[list[int]]", "null"),
            ("Optional[Literal['a', 'b']]", "a"), ("Optional[Literal['a', 'b']]", "null"),
            ("Union[int, str]", "42"), ("Union[int, str]", "hello"), ("Union[int, str]", '"42"'), ("Union[str, int]", "42"),
            ("Union[str, int]", "answer 1a2b 3c4d"), ("Union[int, float]", "3.5"), ("Union[float, int]", "3"), ("Union[int, bool]", "true"),
            ("Union[list[str], dict[str, Any]]", '["a", "b"]'), ("Union[list[str], dict[str, Any]]", '{"k": 1}'), ("Union[list[str], int]", "5"),
            ("Optional[Union[int, str]]", "42"), ("Optional[Union[int, str]]", "x"), ("Optional[Union[int, list[int]]]", "[1]"),
            ("Any", '"anything 17d7 9d8e"'), ("Any", "42"), ("Any", '{"a": [1, 2.5]}'), ("Any", "null"), ("Any", "plain text"),
            ("tuple[int, str]", '[1, "a"]'), ("tuple[int, ...]", "[1, 2, 3]"), ("tuple[int, Optional[float], list[str]]", '[1, null, ["x"]]'),
            ("dict[int, str]", '{"1": "a", "2": "b"}'), ("dict[int, str]", '{"01": "a"}'), ("dict[Literal['a', 'b'], int]", '{"a": 1}'),
            ("Literal[True, False]", "True"), ("Literal[True, False]", "false"), ("Literal[True, False]", "1"), ("Literal['a', None]", "None"),
            ("Literal['a', None]", "'a'"), ("Literal[1.5, 2.5]", "'1.5'"), ("Literal[1, True]", "1.0"), ("Literal[1, 1.0]", "True"),
            ("Literal[\"it's\", 'x']", "it's"), ("Literal[\"it's\", 'x']", "Literal[\"it's\"]"), ("Literal['x', 1, 2.5, True, None]", "null"),
            ("list[Optional[float]]", "[1.5, null]"), ("list[Union[str, int]]", '["a", 1]'), ("dict[str, Optional[int]]", '{"a": null, "b": 2}'),
        ]

        def plain(v):  # tuples as lists, keys as text, as JSON carries them; 3 and 3.0 stay apart
            return json.dumps(v, sort_keys=True)

        for type_text, text in cases:
            t = parse_type(type_text)
            with self.subTest(type=type_text, text=text):
                ours = parse_output(t, text, "output f", text=True)
                theirs = parse_value(text, self.python_type(t))
                self.assertEqual(plain(ours), plain(theirs))
                self.assertEqual(plain(parse_output(t, theirs, "output f")), plain(ours))


# --- dspgo's reading against DSPy's, over a generated corpus ---------------------------------

#: The types of the corpus (with the models of :data:`CORPUS_MODELS`' outputs).
CORPUS_TYPES = [
    "str", "int", "float", "bool", "Any", "Literal['a', 'b']", "Literal['yes', 'no']", "Literal[1, 2]", "Literal[0, 1, 10]",
    "datetime.date", "datetime.datetime",
    "list[int]", "list[str]", "list[float]", "list[bool]", "list[Any]", "list[list[int]]", "tuple[int, str]", "tuple[int, ...]",
    "tuple[float, bool]", "dict[str, int]", "dict[int, str]", "dict[Literal['a', 'b'], int]", "dict[str, Any]", "dict[str, list[float]]",
    "list[Optional[int]]", "list[Union[int, str]]", "list[datetime.date]", "list[datetime.datetime]", "dict[int, Literal[1, 2]]",
    "Optional[int]", "Optional[str]", "Optional[float]", "Optional[bool]", "Optional[list[int]]", "Optional[Literal['a', 'b']]",
    "Optional[Union[int, str]]", "Optional[Union[int, list[int]]]", "Optional[datetime.date]", "Optional[datetime.datetime]",
    "Optional[dict[str, int]]",
    "Union[int, str]", "Union[str, int]", "Union[int, float]", "Union[float, int]", "Union[int, bool]", "Union[bool, int]",
    "Union[float, bool]", "Union[bool, float]", "Union[float, str]", "Union[list[int], list[float]]", "Union[list[float], list[int]]",
    "Union[tuple[int, int], list[int]]", "Union[list[int], tuple[int, int]]", "Union[tuple[int, int], list[float]]",
    "Union[dict[int, str], dict[str, str]]", "Union[Literal[1, 2], float]", "Union[float, Literal[1, 2]]", "Union[Literal[1, 2], bool]",
    "Union[int, Any]", "Union[list[str], dict[str, Any]]", "Union[list[str], int]", "Union[Literal['a', 'b'], int]",
    "Union[tuple[int, ...], list[float]]", "Union[dict[str, int], list[int], str]", "Union[bool, str]", "Union[str, bool]",
    "Union[Literal['a', 'b'], str]", "Union[list[Union[int, str]], int]", "Union[dict[str, float], dict[str, int]]",
    "Union[dict[Literal['a'], int], dict[str, bool]]", "Union[tuple[int, str], tuple[str, int]]", "Optional[Union[float, bool, str]]",
    "Optional[Union[list[int], dict[str, int]]]", "Union[int, Literal['x', 'yes']]", "Union[Literal[0, 1], bool, float]",
    "Union[list[float], list[Any]]", "Union[Any, float]",
    "Literal[True, False]", "Literal[True]", "Literal['a', None]", "Literal[None]", "Literal[1.5, 2.5]", "Literal[1.0]", "Literal[1, True]",
    "Literal[1, 1.0]", "Literal[0, False]", "Literal[True, 1.0]", "Literal['x', 1, 2.5, True, None]", "Literal[\"it's\", 'a\\\\b']",
    "Optional[Literal[True]]", "Union[Literal[1.0], int]", "Union[Literal[True, None], str]", "list[Literal[1.5, None]]",
]

#: Members of the corpus's random unions.
UNION_MEMBERS = [
    "int", "float", "str", "bool", "list[int]", "list[float]", "list[str]", "dict[int, int]", "dict[str, float]", "Literal['x', 'yes']",
    "Literal[1, 2]", "Any", "tuple[int, int]", "tuple[float, ...]", "list[Union[int, bool]]", "dict[str, Union[float, str]]",
    "list[bool]", "dict[Literal['a', 'b'], int]", "tuple[int, str]", "Literal[0, 1]", "list[Any]", "dict[str, Any]", "list[list[float]]",
]

CORPUS_MODELS = [
    {"name": "Person", "fields": [{"name": "name", "type": ""}, {"name": "age", "type": "int"}, {"name": "email", "type": "Optional[str]"},
                                  {"name": "tags", "type": "list[str]"}, {"name": "born", "type": "Optional[datetime.date]"}]},
    {"name": "Team", "fields": [{"name": "lead", "type": "Person"}, {"name": "members", "type": "list[Person]"},
                                {"name": "scores", "type": "dict[str, float]"}, {"name": "kind", "type": "Literal['a', 'b']"},
                                {"name": "rank", "type": "Optional[int]"}]},
    {"name": "Point", "fields": [{"name": "x", "type": "float"}, {"name": "y", "type": "float"}]},
]
CORPUS_MODEL_OUTPUTS = [("p", "Person"), ("t", "Team"), ("pt", "Point"), ("lp", "list[Point]"), ("op", "Optional[Point]"),
                        ("dp", "dict[str, Point]")]

#: Texts an LM may write for a field: numbers, words, quoted values, JSON, Python literals,
#: broken JSON, JSON in prose or a code fence, dates, timestamps, models' objects.
CORPUS_TEXTS = [
    "", "hello", "plain text.", "7", " 7 ", "7.", "7.0", "7.5", "-3", "+3", "1_000", "0x10", "0o17", "0b101", "1e3", "1E3", "007", "00", "0", "1",
    "2", "-0", ".5", "5.", "1.5e-3", "1e999", "-1e999", "NaN", "Infinity", "inf", "nan", "9223372036854775807", "9223372036854775808",
    "-9223372036854775809", "99999999999999999999", "0-5", "true", "false", "True", "False", "TRUE", "yes", "Yes", "no", "NO", "y", "n", "on",
    "off", "t", "f", "null", "None", "none", "NULL", "a", "b", "A", "'a'", '"a"', "`a`", "Literal['a']", "str['b']", "Literal[a]", "'yes'",
    "yes.", "'1'", '"1"', "x", "'x'", '"hello"', "'hello'", '"42"', "'42'", '""', "''", "'", '"', "1a2b", "answer 1a2b 3c4d", "a, b",
    "1, 2", "(1, 2)", "(1,)", "()", "[1, 2]", "[1, 2.5]", "[1.0, 2.0]", "[]", "{}", '["a", "b"]', "['a', 'b']", "[1, 'a']", '[1, "a"]',
    "[true, false]", "[True, None]", "[1, null]", "[null]", '{"a": 1}', "{'a': 1}", '{"a": 1,}', "{'score': 123_456.789}",
    "{'name': 'John', 'age': 30}", '{"name": "John", "age": 30,}', '{"1": "a", "2": "b"}', "{1: 'a'}", '{"01": "a"}',
    '{"1": "a", "01": "b"}', '{" 2": "b"}', '{"a": null, "b": 2}', '{"k": [1, 2.5]}', "{1, 2}", "{'a', 'b'}", "{1, 1}", "set()",
    "[(1, 2), (3,)]", "[1, 2", "[1 2]", "[1, 2] trailing", "The answer is [1, 2]", "```json\n[1, 2]\n```", "```\n[1]\n```",
    "```json\n42\n```", '```json\n{"a": 1}\n```', "```python\n{'a': 1}\n```", "`[1]`", "'[1, 2]'", '"[1, 2]"', "[[1], [2]]",
    "[[1, 2], [3]]", '[[1, "a"]]', "[0x10]", "[1_000]", "[-1, +2]", "[.5, 5.]", "b'x'", "1+2j", "1j", "[1j]", "[b'x']", "[...]",
    "Ellipsis", "[u'x']", "r'x'", "'it''s'", '"a" "b"', "- 5", "-(1)", "--1", "2024-01-02", "2024-01-02T00:00:00", "2024-01-02T10:20:30",
    "2024-01-02T10:20:30Z", "2024-01-02T10:20:30+05:30", "2024-01-02 10:20", "2024-01-02T00:00:00+05:00", "'2024-01-02'",
    '"2024-01-02"', "2024-02-30", "1700000000", "1704153600", "1704153600000", "-86400", "1700000000.5", "2024-01-02T10:20:30,5",
    "2024-01-02T10:20:30.1234567891Z", '["2024-01-02", "2024-01-03T00:00:00"]', "[1704153600]", '["x"]', '["7", "8.0"]',
    '["1_000", " 2 "]', '[" a ", "b "]', '{"a": "1", "b": " 2 "}', '{"a": 1.5, "b": "x"}', '{"a": [1, "2"]}', "[1, 2, 3]",
    '[1, "a", true]', '["a", 1]', "[true, 1]", "[1.0, true]", '["1", 2]', "[1, 2.0, '3']", '{"a": true, "b": "yes"}', '{"a": "on"}',
    '[" true", "ON"]', '{"x": 1, "y": 2}', "[1, 2, 3, 4]", "[[1, 2, 3]]", '{"a": {"b": [1, {"c": null}]}}',
    "{'a': {'b': [1, {'c': None}]}}", "[1, [2, [3, [4]]]]", '{"": 1}', '{"a": 1, "a": 2}', "1 # comment", "hello\nworld",
    "3 apples", "three", "7/10", "70%", "$5", "1,000", "\uff11", "\u0663", "7\u00a0", "\u00a07",
    '{"name": "  padded  ", "age": "30", "tags": [" x "]}', '{"name": "Ann", "age": 41}', '{"name": "Ann", "age": 41, "tags": []}',
    '{"name": "Ann", "age": 41.0, "tags": ["a"], "email": null}', '{"name": "Ann", "age": "41", "tags": ["a"], "extra": 1}',
    '{"name": 5, "age": 41, "tags": []}', '{"name": "Ann", "age": true, "tags": [], "born": "2024-01-02"}',
    '{"name": "Ann", "age": 1, "tags": [], "born": 1704153600}', "{'name': 'Ann', 'age': 3, 'tags': ('a', 'b')}", '{"x": 1, "y": "2.5"}',
    '{"x": 1}', '[{"x": 1, "y": 2}, {"x": "3", "y": 4.5}]', '{"p": {"x": 1, "y": 2}}',
    '{"lead": {"name": "A", "age": 1, "tags": []}, "members": [], "scores": {"a": 1}, "kind": "a"}',
    '{"lead": {"name": "A", "age": 1, "tags": []}, "members": [{"name": "B", "age": "2", "tags": ["x"]}], "scores": {"a": "1.5"}, '
    '"kind": "A", "rank": null}',
    '{"lead": {"name": "A", "age": 1, "tags": []}, "members": [], "scores": {}, "kind": "b", "rank": "3"}',
]

_INT64 = (-(2**63), 2**63 - 1)


def _random_scalar(r: random.Random):
    return r.choice([
        r.randint(-5, 5), r.choice([0.0, 1.0, 2.0, 2.5, -1.5, 1e20, 3.0, 0.1, -0.0]), r.choice([True, False]), None,
        r.choice(["1", "2", " 3 ", "4.0", "4.5", "x", "a", "b", "yes", "no", "true", "ON", "f", "1_0", "", " a ", "A", "2024-01-02", "1e3", ".5",
                  "hello", "  padded  ", "Literal['a']", "'a'", "7", "0-5"]),
        r.choice([1, 2, 10, 0]), r.choice(["2024-01-02", "2024-01-02T10:20:30Z", 1704153600, 86400.5, "2024-01-02T00:00:00"]),
        r.randint(-(10**20), 10**20), r.choice([float("inf"), float("nan")]),
    ])


def _random_value(r: random.Random, depth: int = 0):
    c = r.randrange(10)
    if depth > 2 or c < 5:
        return _random_scalar(r)
    if c < 7:
        return [_random_value(r, depth + 1) for _ in range(r.randrange(4))]
    if c < 8:
        return tuple(_random_value(r, depth + 1) for _ in range(r.randrange(3)))
    keys = ["a", "b", "1", "2", " 3", "x", "name", "age", "tags", "email", "born", "y", "01"]
    d = {r.choice(keys): _random_value(r, depth + 1) for _ in range(r.randrange(4))}
    if r.random() < 0.1:
        d[r.choice([7, 8])] = _random_value(r, depth + 1)  # an int key, as a DSPy prediction may hold (none equal to a str key)
    return d


def _random_model(r: random.Random, name: str) -> dict:
    if name == "Point":
        return {"x": _random_scalar(r) if r.random() < 0.3 else r.choice([1, 2.5, "3"]), "y": r.choice([1, 2.5, "3", " 4 "])}
    if name == "Person":
        d = {"name": r.choice(["Ann", " Bo ", 5]), "age": r.choice([41, "41", 41.0, 41.5, True]), "tags": r.choice([[], ["a"], [" x "], ("a",), "a"])}
        if r.random() < 0.5:
            d["email"] = r.choice([None, "e@x", 3])
        if r.random() < 0.5:
            d["born"] = r.choice(["2024-01-02", 1704153600, "2024-01-02T00:00:00Z", "x"])
        if r.random() < 0.3:
            d.pop(r.choice(list(d)))
        return d
    d = {"lead": _random_model(r, "Person"), "members": [_random_model(r, "Person") for _ in range(r.randrange(3))],
         "scores": {"a": r.choice([1, "1.5", 2.5])}, "kind": r.choice(["a", "b", "A"])}
    if r.random() < 0.5:
        d["rank"] = r.choice([None, 3, "3", 3.0])
    return d


def _walk(v):
    yield v
    if isinstance(v, (list, tuple)):
        for e in v:
            yield from _walk(e)
    elif isinstance(v, dict):
        for e in v.values():
            yield from _walk(e)


class ReadingCorpusTest(unittest.TestCase):
    """dspgo's reading of what an LM produced (``values.parse_output``) against DSPy 3.4.1's
    and pydantic's, over a generated corpus of (type, text or value) pairs of every kind of
    dspgo's types, models among them: an LM's text and a JSON reply's value against
    ``dspy.adapters.utils.parse_value``, a typed value (a DSPy prediction's) against
    ``TypeAdapter(T).validate_python`` (pydantic's lax mode). Both give the same value (as
    JSON carries it: 3 and 3.0 apart) or both an error, except in the cases
    :meth:`exception` names, each explained there."""

    def setUp(self):
        require_dspy(self)
        import dspy.adapters.utils as dspy_utils
        import json_repair
        import pydantic

        from dspgo_worker.dspy_engine import model_classes, python_type

        self.dspy_utils, self.json_repair, self.pydantic = dspy_utils, json_repair, pydantic
        compiled = CompiledSpec({"signature": {"inputs": [{"name": "q", "type": ""}],
                                               "outputs": [{"name": n, "type": t} for n, t in CORPUS_MODEL_OUTPUTS],
                                               "models": CORPUS_MODELS}})
        classes = model_classes(compiled)
        self.model_types = {f.name: f.type for f in compiled.outputs}
        self.python_type = lambda t: python_type(t, classes)

    # -- the two readings, as JSON ------------------------------------------------------------

    def as_json(self, v):
        """A value of pydantic's as JSON carries it (markers for what JSON cannot)."""
        import datetime

        if isinstance(v, self.pydantic.BaseModel):
            return self.as_json(v.model_dump(mode="json"))
        if isinstance(v, float) and not math.isfinite(v):
            return ["NONFINITE", repr(v)]
        if isinstance(v, (list, tuple)):
            return [self.as_json(e) for e in v]
        if isinstance(v, dict):
            return {str(k): self.as_json(e) for k, e in v.items()}
        if isinstance(v, datetime.datetime):
            return self.pydantic.TypeAdapter(datetime.datetime).dump_python(v, mode="json")
        if isinstance(v, datetime.date):
            return v.isoformat()
        if v is None or isinstance(v, (str, int, float, bool)):
            return v
        return ["PYTHON", type(v).__name__, repr(v)]

    def ours(self, t, v, mode):
        try:
            return "ok", json.dumps(self.as_json(parse_output(t, v, "output f", text=mode != "typed")), sort_keys=True)
        except ValueError as exc:
            return "error", str(exc)

    def theirs(self, pt, v, mode):
        try:
            got = self.pydantic.TypeAdapter(pt).validate_python(v) if mode == "typed" else self.dspy_utils.parse_value(v, pt)
        except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, DSPy's ValueError
            return "error", type(exc).__name__
        return "ok", json.dumps(self.as_json(got), sort_keys=True)

    def exception(self, t, v, mode, ours, theirs):
        """Why dspgo's reading may differ from DSPy's, or None: the justified exceptions."""
        if theirs[0] == "ok" and ours[0] == "error":
            values = list(_walk(json.loads(theirs[1])))
            # JSON (and Go's float64) holds no NaN or infinity: dspgo refuses a value pydantic takes.
            if any(x == ["NONFINITE", x[1]] for x in values if isinstance(x, list) and len(x) == 2):
                return "non-finite float"
            # Go's int is int64: dspgo refuses an int pydantic takes beyond it.
            if any(isinstance(x, int) and not isinstance(x, bool) and not _INT64[0] <= x <= _INT64[1] for x in values):
                return "int beyond int64"
        if mode != "typed" and isinstance(v, str) and t.kind != STR and not (t.kind == OPTIONAL and _has_str_member(t)):
            try:
                json.loads(v)
            except ValueError:
                repaired = self.json_repair.loads(v)
                candidate = repaired
                if repaired == "" and v != "":
                    try:
                        candidate = ast.literal_eval(v)
                    except (ValueError, SyntaxError):
                        candidate = v
                if json.dumps(self.as_json(candidate), sort_keys=True) != json.dumps(self.as_json(_decode(v)), sort_keys=True):
                    # DSPy decodes a text with json_repair, which repairs broken JSON (closes a
                    # list, drops a trailing comma or text), finds JSON inside prose, reads
                    # unquoted words as strings: dspgo (standard library only) reads strict
                    # JSON, then a Python literal (ast), else the text as it is.
                    if repaired != "":
                        return "json_repair repair"
                    # literal_eval's bytes, complex numbers and sets are no JSON value: dspgo
                    # reads such a text as text (set() as []).
                    return "non-JSON Python literal"
        if mode == "reply" and t.kind == "Literal" and not isinstance(v, str):
            # DSPy returns a JSON reply's value that equals one of a Literal's (True or 1.0
            # for Literal[1, 2]) as it is, which JSON does not hold as the Literal's value:
            # dspgo gives the Literal's value (1), as pydantic validates it.
            return "a Literal's value as the reply holds it"
        return None

    # -- the corpus ---------------------------------------------------------------------------

    def corpus(self):
        """(mode, type, python type, text or value): mode "text" for a section's text,
        "reply" for a JSON reply's value, "typed" for a DSPy prediction's value."""
        r = random.Random(20260101)
        types_ = [parse_type(s) for s in CORPUS_TYPES] + list(self.model_types.values())
        seen = set()
        for _ in range(120):
            s = f"Union[{', '.join(r.sample(UNION_MEMBERS, r.randint(2, 4)))}]"
            s = f"Optional[{s}]" if r.random() < 0.3 else s
            if s not in seen:
                seen.add(s)
                types_.append(parse_type(s))
        for t in types_:
            pt = self.python_type(t)
            if dspy_type_name(t) != self.dspy_utils.get_annotation_name(pt):
                # typing caches a Union by its set of members: a Union of the same members
                # made before in another order comes back in that order. Not dspgo's type.
                continue
            for text in CORPUS_TEXTS:
                yield "text", t, pt, text
            for _ in range(40):
                v = _random_value(r)
                yield "typed", t, pt, v
                yield "reply", t, pt, v
                try:
                    yield "text", t, pt, r.choice([json.dumps(v), repr(v)])
                except ValueError:  # JSON of NaN is fine; a key of another kind is not
                    yield "text", t, pt, repr(v)
        for name, t in self.model_types.items():
            pt = self.python_type(t)
            base = {"p": "Person", "t": "Team", "pt": "Point"}.get(name)
            for _ in range(150):
                if base:
                    v = _random_model(r, base)
                elif name == "lp":
                    v = [_random_model(r, "Point") for _ in range(r.randrange(3))]
                elif name == "op":
                    v = r.choice([None, _random_model(r, "Point")])
                else:
                    v = {"a": _random_model(r, "Point")}
                yield "typed", t, pt, v
                yield "text", t, pt, json.dumps(v)
                yield "text", t, pt, repr(v)

    def test_the_corpus(self):
        cases, excused, unexplained = 0, Counter(), []
        for mode, t, pt, v in self.corpus():
            cases += 1
            ours, theirs = self.ours(t, v, mode), self.theirs(pt, v, mode)
            if ours == theirs or ours[0] == theirs[0] == "error":
                continue
            reason = self.exception(t, v, mode, ours, theirs)
            if reason is None:
                unexplained.append(f"{mode} {t} {v!r}: dspgo {ours}, DSPy {theirs}")
            else:
                excused[reason] += 1
        self.assertGreater(cases, 40000)
        self.assertEqual(unexplained[:200], [], f"{len(unexplained)} of {cases} cases differ")
        self.assertLess(sum(excused.values()), cases // 10, excused)

    def test_numbers_bools_and_moments(self):
        """int, float, bool, datetime.date and datetime.datetime of random texts (digits,
        signs, underscores, points, exponents, white space, words), numbers and
        timestamps: pydantic's lax mode and dspgo's give the same (NaN, infinities and ints
        beyond int64 aside, which dspgo refuses)."""
        import datetime

        from dspgo_worker.values import lax_value

        adapters = {"int": int, "float": float, "bool": bool, "datetime.date": datetime.date, "datetime.datetime": datetime.datetime}
        adapters = {k: (parse_type(k), self.pydantic.TypeAdapter(v)) for k, v in adapters.items()}
        r = random.Random(5)
        alphabet = "0123456789__..+-eE \t\u00a0xinfatyo"
        differ = []
        for _ in range(20000):
            c = r.random()
            if c < 0.5:
                v = "".join(r.choice(alphabet) for _ in range(r.randint(0, 7)))
            elif c < 0.6:
                v = "".join(ch.upper() if r.random() < 0.5 else ch for ch in r.choice(["true", "false", "yes", "no", "on", "off", "t", "f", "1"]))
            elif c < 0.75:
                v = r.choice([r.randint(-3 * 10**11, 3 * 10**11), r.randint(-(10**15), 10**15), r.randint(-100000, 100000) * 86400])
                v = str(v) if r.random() < 0.4 else v
            elif c < 0.9:
                v = r.uniform(-3e11, 3e11) if r.random() < 0.5 else r.randint(-(10**6), 10**6) + r.choice([0.5, 0.25, 5e-7, 0.9999995])
                v = repr(v) if r.random() < 0.3 else v
            else:
                v = f"{r.randint(1, 9999):04d}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}" + r.choice(
                    ["", "T00:00:00", "T12:30:00", "T00:00", " 00:00:00", "T10:20:30,5", "T00:00:00.0000000001", "T00:00:00+05:00", "t01:02z"])
            for name, (t, adapter) in adapters.items():
                try:
                    got = adapter.validate_python(v)
                    theirs = json.dumps(self.as_json(got))
                    if isinstance(got, float) and not math.isfinite(got) or isinstance(got, int) and not _INT64[0] <= got <= _INT64[1]:
                        theirs = "error"
                except self.pydantic.ValidationError:
                    theirs = "error"
                try:
                    ours = json.dumps(lax_value(t, v, "f"))
                except ValueError:
                    ours = "error"
                if re.fullmatch(r'"\d{4}-\d\d-\d\dT[^"]*"', theirs) and ours != "error":
                    theirs = theirs.replace("+00:00", "Z")
                if ours != theirs:
                    differ.append(f"{name} {v!r}: dspgo {ours}, pydantic {theirs}")
        self.assertEqual(differ[:20], [])


if __name__ == "__main__":
    unittest.main()
