"""Signatures: their fields, their pydantic models (``signature.models``, as Go's
``internal/program``, models.go, compiles them), and DSPy's string form parsed as Go's
``internal/program`` (spec.go, ``ParseSignature``) parses it."""

from __future__ import annotations

import bisect
import re

from .errors import invalid
from .fieldtypes import HISTORY, MAX_MODEL_FIELDS, MAX_MODEL_NESTING, OPTIONAL, TYPE_NAMES, FieldType, Model, parse_type
from .protocol import quote
from .values import convert, copy_value, describe_value, json_object, json_string

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from .values import Converter

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def is_identifier(name: Any) -> bool:
    """True for ``[A-Za-z_][A-Za-z0-9_]*`` (ASCII only, as in Go): a model's name (a name
    in a type), an environment variable's. A field's name may be any identifier: see
    :func:`name_problem`."""
    return isinstance(name, str) and _IDENTIFIER.match(name) is not None


_WORDS = re.compile(r"\w+\Z")


def _ident_class(c: str) -> int:
    """The class of the character ``c`` in ``identifier_table.CLASSES`` (0: none)."""
    from .identifier_table import CLASSES

    cp = ord(c)
    i = bisect.bisect_left(CLASSES, (cp + 1,)) - 1
    return CLASSES[i][2] if i >= 0 and CLASSES[i][0] <= cp <= CLASSES[i][1] else 0


def _hangul_composes(a: str, b: str) -> bool:
    """Whether the Hangul jamo or syllable ``a`` followed by the jamo ``b`` compose into
    one syllable under NFKC (Go's ``hangulComposes``)."""
    x, y = ord(a), ord(b)
    if 0x1100 <= x < 0x1100 + 19:
        return 0x1161 <= y < 0x1161 + 21
    if 0xAC00 <= x < 0xAC00 + 19 * 21 * 28:
        return (x - 0xAC00) % 28 == 0 and 0x11A7 < y < 0x11A7 + 28
    return False


def name_problem(name: str) -> str:
    """Why ``name`` cannot be a field's name, as the end of an error, or "" when it can,
    as Go's ``program.NameProblem`` says (docs/protocol.md, "Program specs"): what
    ``str.isidentifier()`` accepts by Unicode 14.0 (the table's version), each character
    one that ``\\w`` matches (DSPy's ChatAdapter reads a field's header with ``\\w+``),
    in NFKC form (Python and DSPy's string signatures read identifiers in that form). A
    name of characters this Python's Unicode does not know (an older one's) is refused too."""
    if not name:
        return NOT_IDENTIFIER
    word, nfkc, prev = "", False, ""
    for i, c in enumerate(name):
        k = _ident_class(c)
        if k == 0 or (i == 0 and k % 2 == 0):
            return NOT_IDENTIFIER
        if k in (3, 4):
            if not word:
                word = (f"holds {quote(c)} (U+{ord(c):04X}), which DSPy's ChatAdapter does not read in a "
                        "field's header: a name's characters are letters, digits and _")
        elif k in (5, 6) or (prev and _hangul_composes(prev, c)):
            nfkc = True
        prev = c
    if word:
        return word
    if nfkc:
        return NOT_NFKC
    if not (name.isidentifier() and _WORDS.match(name)):
        return "is not a valid identifier in this Python's version of Unicode, older than 14.0"
    return ""


class Field:
    """A field of a signature or of a model: its name, type, description and ``default``,
    the value (converted to its type) it takes when it is left out, None for none (a
    model's field's is its raw value from the spec until :func:`compile_models` converts
    it), and a signature field's normalized ``constraints`` (``constraints.py``)."""

    __slots__ = ("name", "type", "description", "default", "constraints")

    def __init__(self, name: str, type: FieldType, description: str, default: Any = None,
                 constraints: list[dict[str, str]] | None = None) -> None:
        self.name = name
        self.type = type
        self.description = description
        self.default = default
        self.constraints: list[dict[str, str]] = constraints or []

    @property
    def required(self) -> bool:
        """Whether a value (an output, a model's value) must hold the field: it has no
        default and is not Optional."""
        return self.default is None and self.type.kind != OPTIONAL

    def normalized(self) -> dict[str, Any]:
        """The field as a normalized spec holds it: a ``default`` and ``constraints`` only
        when it has them (a spec without them keeps its hash)."""
        out: dict[str, Any] = {"name": self.name, "type": str(self.type), "description": self.description}
        if self.default is not None:
            out["default"] = copy_value(self.default)
        if self.constraints:
            out["constraints"] = [dict(c) for c in self.constraints]
        return out



def object_list(obj: dict[str, Any], key: str, where: str, keys: tuple[str, ...]) -> list[tuple[dict[str, Any], str]]:
    """``obj[key]``, an array of objects of ``keys`` (null or absent: none; a null item: an
    empty object), each with where it is (``spec.signature.inputs[0]``)."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"{where}.{key} must be an array, got {describe_value(value)}")
    out = []
    for i, item in enumerate(value):
        at = f"{where}.{key}[{i}]"
        out.append(({} if item is None else json_object(item, at, keys), at))
    return out


#: The keys of a field's object (a signature's input or output, a model's field).
FIELD_KEYS = ("name", "type", "description", "default", "constraints")


def field_list(obj: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """``obj[key]``, a list of fields, each's name, type and description a string, its
    ``default`` as it is (None: none; checked with its type, :func:`check_default`), and
    its ``constraints`` as they are (checked by ``constraints.normalize_constraints``;
    None: none), and where the field is (``"at"``)."""
    return [
        {"name": json_string(item, "name", at), "type": json_string(item, "type", at),
         "description": json_string(item, "description", at), "default": item.get("default"),
         "constraints": item.get("constraints"), "at": at}
        for item, at in object_list(obj, key, where, FIELD_KEYS)
    ]


def check_default(t: FieldType, raw: Any, what: str, conv: Converter = convert) -> Any:
    """A field's ``default`` (``raw``; None: none) converted to its type ``t`` as an input
    of ``t`` converts (by ``conv``: ``values.convert_field`` for an input's, ``convert``
    for an output's and a model field's), or None for none; ``invalid_argument`` naming the field
    (``what``: ``input field "n"``, ``model "Answer" field "where"``) when ``t`` holds a
    type that takes none (dspy.History, dspy.Image, dspy.File, dspy.Audio) or the default
    does not convert (docs/protocol.md, "Program specs", ``default``)."""
    if raw is None:
        return None
    bad = t.media or (HISTORY if t.kind == HISTORY else "")
    if bad:
        raise invalid(f"{what}: {bad} takes no default")
    try:
        return conv(t, raw, f"{what} default")
    except ValueError as exc:
        raise invalid(str(exc)) from None


#: The public attributes of pydantic's BaseModel (2.14) that do not start with ``model_``,
#: its metaclass's ``mro`` and ``register`` included, which a model's field may not shadow
#: (python/tests/test_models.py checks the list against pydantic's).
BASE_MODEL_ATTRIBUTES = (
    "construct", "copy", "dict", "from_orm", "json", "mro", "parse_file", "parse_obj", "parse_raw", "register", "schema",
    "schema_json", "update_forward_refs", "validate",
)
#: How an error says a name is not an identifier.
NOT_IDENTIFIER = "is not a valid identifier (letters, digits and _, not starting with a digit)"
#: How an error says a model's name is not an ASCII identifier (a model's name is a name in types).
NOT_ASCII_IDENTIFIER = "is not a valid identifier (ASCII letters, digits and _, not starting with a digit)"
#: How an error says a name is not in NFKC form (Go's ``notNFKC``).
NOT_NFKC = ("is not in NFKC form: Python, and so DSPy, reads an identifier in that form, which is another name "
            "(write the name as NFKC normalizes it)")
#: The end of the error of a model's or a field's values that are too large.
TOO_LARGE = f"a value of it holds more than {MAX_MODEL_FIELDS} fields of models (counting one element of each list and dict)"


def compile_models(signature: dict[str, Any]) -> dict[str, Model]:
    """A signature's models (``signature.models``) validated and resolved, by name in the
    declared order, as Go's ``program.CompileModels`` (docs/protocol.md, "Program specs":
    the same rules, order and messages): each model in the declared order (its name, then
    each field's name and type, where every declared model's name is known), then whether
    one contains itself (:func:`_walk`), then each model's depth and size in the declared
    order (set as the model's ``nest`` and ``size``). A signature's field's size
    (:func:`check_size`) and whether each model is used (:func:`check_models_used`) need
    the signature's fields. Raises ``invalid_argument``.

    All of it takes time linear in the size of the models, and no recursion deeper than
    a type's (:data:`~dspgo_worker.fieldtypes.MAX_TYPE_DEPTH`), however many models
    name each other."""
    declared = [
        (json_string(item, "name", at), json_string(item, "description", at), field_list(item, "fields", at))
        for item, at in object_list(signature, "models", "spec.signature", ("name", "description", "fields"))
    ]
    if not declared:
        return {}
    models: dict[str, Model] = {}  # the models' names known to the fields' types
    for name, description, _ in declared:
        if is_identifier(name) and name not in TYPE_NAMES and name not in models:
            models[name] = Model(name, description)
    seen = set()
    for name, _, fields in declared:
        if not is_identifier(name):
            raise invalid(f"model name {quote(name)} {NOT_ASCII_IDENTIFIER}")
        if name in TYPE_NAMES:
            raise invalid(f"model name {quote(name)} is a type's name")
        if name in seen:
            raise invalid(f"model {quote(name)} is declared twice")
        if not fields:
            raise invalid(f"model {quote(name)} has no fields")
        seen.add(name)
        models[name].fields = _model_fields(name, fields, models)
    walked = _walk(models)  # each after the models its fields name
    for model in walked:
        model.nest = 1 + max(f.type.nest() for f in model.fields)
        size = len(model.fields)
        for f in model.fields:
            size = min(size + f.type.size(), MAX_MODEL_FIELDS + 1)
        model.size = size
    for name, model in models.items():
        if model.nest > MAX_MODEL_NESTING:
            raise invalid(f"model {quote(name)} nests more than {MAX_MODEL_NESTING} levels (types and models counted together)")
        if model.size > MAX_MODEL_FIELDS:
            raise invalid(f"model {quote(name)}: {TOO_LARGE}")
    # Then the defaults, each model's after those of the models its fields name (which its
    # defaults' values may leave fields of: a value converted fills those in from converted
    # defaults only), each converted in place of its raw value, as in Go.
    for model in walked:
        for f in model.fields:
            if f.default is not None:
                f.default = check_default(f.type, f.default, f"model {quote(model.name)} field {quote(f.name)}")
    return models


def _model_fields(model: str, fields: list[dict[str, Any]], models: dict[str, Model]) -> tuple[Field, ...]:
    """A model's fields checked and parsed (Go's ``Models.modelFields``)."""
    out: list[Field] = []
    names: set[str] = set()
    for f in fields:
        name = f["name"]
        problem = name_problem(name)
        if problem:
            raise invalid(f"model {quote(model)} field name {quote(name)} {problem}")
        if name in names:
            raise invalid(f"model {quote(model)} field name {quote(name)} is used twice")
        if name.startswith(("_", "model_")):
            raise invalid(f'model {quote(model)} field {quote(name)}: a model\'s field name may not start with "_" or "model_"')
        if name in BASE_MODEL_ATTRIBUTES:
            raise invalid(f"model {quote(model)} field {quote(name)}: pydantic's BaseModel has an attribute of that name")
        if f["constraints"]:
            raise invalid(f"model {quote(model)} field {quote(name)}: constraints are not supported on a model's fields "
                          "(pydantic would validate them; DSPy shows a signature field's)")
        try:
            t = parse_type(f["type"], models)
        except ValueError as exc:
            raise invalid(f"model {quote(model)} field {quote(name)}: {exc}") from None
        bad = t.media or (HISTORY if t.kind == HISTORY else "")
        if bad:
            raise invalid(f"model {quote(model)} field {quote(name)}: {bad} is not a type of a model's field")
        names.add(name)
        out.append(Field(name, t, f["description"], f["default"]))  # the default converted once every model is compiled
    return tuple(out)


def _walk(models: dict[str, Model]) -> list[Model]:
    """The models in the order their walks end, each after every model its fields name:
    one depth-first walk, from each model in the declared order not yet walked, through
    its fields' types in order (Go's ``cycle``). ``invalid_argument`` naming the first
    model reached again while its own walk is under way, with the path from it back to
    it. A stack of iterators, not recursion: a chain of models may be long."""
    walking: set[str] = set()  # the models on the stack
    walked: set[str] = set()
    done: list[Model] = []
    for root in models.values():
        if root.name in walked:
            continue
        stack = [(root, _named(root))]
        walking.add(root.name)
        while stack:
            model, inner_models = stack[-1]
            inner = next(inner_models, None)
            if inner is None:
                stack.pop()
                walking.discard(model.name)
                walked.add(model.name)
                done.append(model)
            elif inner.name in walking:
                path = [m.name for m, _ in stack]
                path = path[path.index(inner.name):] + [inner.name]
                raise invalid(f"model {quote(inner.name)} contains itself ({' -> '.join(path)})")
            elif inner.name not in walked:
                stack.append((inner, _named(inner)))
                walking.add(inner.name)
    return done


def _named(model: Model) -> Iterator[Model]:
    """The models ``model``'s fields' types name, in order (a model once per naming)."""
    for f in model.fields:
        yield from f.type.models()


def check_size(t: FieldType, what: str) -> None:
    """``invalid_argument`` when a value of ``t``, the type of the signature's field
    ``what`` names (``output field "a"``), holds more fields of models than a value may
    (Go's ``Models.CheckSize``)."""
    if t.size() > MAX_MODEL_FIELDS:
        raise invalid(f"{what}: {TOO_LARGE}")


def check_models_used(models: dict[str, Model], fields: Iterable[Field]) -> None:
    """``invalid_argument`` naming the first declared model that no field of ``fields``
    uses, directly or through another model (Go's ``Models.CheckUsed``)."""
    used: set[str] = set()

    def use(t: FieldType) -> None:
        for model in t.models():
            if model.name not in used:
                used.add(model.name)
                for f in model.fields:
                    use(f.type)

    for f in fields:
        use(f.type)
    for name in models:
        if name not in used:
            raise invalid(f"model {quote(name)} is not used by any field")


def normalized_models(models: dict[str, Model]) -> list[dict[str, Any]]:
    """The models as a normalized spec holds them: sorted by name, each with its
    description and its fields normalized as a signature's are."""
    return [
        {"name": m.name, "description": m.description, "fields": [f.normalized() for f in m.fields]}
        for m in sorted(models.values(), key=lambda m: m.name)
    ]


def parse_signature(s: str) -> dict[str, Any]:
    """DSPy's string form of a signature (``"question, context: list[str] -> answer"``) as a
    spec's ``signature`` object, as Go's ``program.ParseSignature`` parses it: fields split
    at the commas outside brackets, parentheses and quotes (a quote escaped by a backslash
    inside quotes does not end them), each ``name`` or
    ``name: type`` (types as written; :class:`CompiledSpec` normalises them). Raises
    ``invalid_argument`` saying which part is wrong."""
    left, sep, right = s.partition("->")
    if not sep:
        raise invalid(f"signature {quote(s)} has no \"->\" between inputs and outputs")
    if "->" in right:
        raise invalid(f"signature {quote(s)} has more than one \"->\"")
    # "-> joke": a program of no inputs, as DSPy takes it; the outputs may not be none.
    inputs = _signature_fields(left, "inputs", s) if left.strip() else []
    signature = {"inputs": inputs, "outputs": _signature_fields(right, "outputs", s)}
    from .spec import CompiledSpec  # (spec imports this module)

    CompiledSpec({"signature": signature})  # validates names and types
    return signature


def _signature_fields(side: str, which: str, whole: str) -> list[dict[str, Any]]:
    if not side.strip():
        raise invalid(f"signature {quote(whole)} has no {which}")
    fields = []
    depth, start, in_quote, escaped = 0, 0, "", False
    for i in range(len(side) + 1):
        if i < len(side):
            c = side[i]
            if in_quote:
                if escaped:  # a backslash's next character does not end the quote
                    escaped = False
                elif c == "\\":
                    escaped = i + 1 < len(side)
                elif c == in_quote:
                    in_quote = ""
                continue
            if c in "'\"":
                in_quote = c
                continue
            if c in "[(":
                depth += 1
                continue
            if c in "])":
                depth -= 1
                continue
            if c != "," or depth > 0:
                continue
        part = side[start:i].strip()
        start = i + 1
        if not part:
            raise invalid(f"signature {quote(whole)} has an empty field among its {which}")
        name, _, typ = part.partition(":")
        fields.append({"name": name.strip(), "type": typ.strip(), "description": ""})
    return fields

