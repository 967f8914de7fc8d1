"""dspgo's signatures and types against the real DSPy.

internal/program/testdata/dspy_signatures.txt lists the signature strings of DSPy's own
tests with how dspgo parses them (Go's TestDSPySignatures checks the same file). Here the
Python spec parser is checked against it, and, where dspy imports, so is DSPy itself:
dspy.Signature gives the same field names, and types equal to what the dspy engine's
``python_type`` makes of dspgo's. The types of protocol/testdata/types.json are checked the
same way, and dspgo's reading of an LM's reply against DSPy's ``parse_value``. The DSPy
checks are skipped on the bare interpreter and required in the dspy run
(:func:`~tests.lmserver.require_dspy`).
"""

from __future__ import annotations

import json
import types
import typing
import unittest
from pathlib import Path

from dspgo_worker.errors import WorkerError
from dspgo_worker.fieldtypes import parse_type
from dspgo_worker.signature import parse_signature
from dspgo_worker.spec import CompiledSpec
from dspgo_worker.values import parse_output

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


if __name__ == "__main__":
    unittest.main()
