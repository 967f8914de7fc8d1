"""Field types, as Go's ``internal/program`` (types.go) parses them.

Types ``str``, ``int``, ``float``, ``bool``, ``Any``, ``list[T]``, ``dict[K, V]`` (K is
str, int or a Literal), ``tuple[A, B]``, ``tuple[T, ...]``, ``Optional[T]``,
``Union[A, B]`` (also ``A | B``), ``Literal['a', 'b']``, ``datetime.date``, ``datetime.datetime``
and DSPy's ``dspy.History``, ``dspy.Image``, ``dspy.File`` and ``dspy.Audio``, in typing's spellings too
(``List``, ``typing.Optional``…), and the pydantic models a signature declares (:class:`Model`),
nested at most 16 deep, with one canonical spelling (:meth:`FieldType.__str__`): :func:`parse_type`.
"""

from __future__ import annotations

import re

from .protocol import quote

#: Types nest at most this deep (``list[list[...]]``).
MAX_TYPE_DEPTH = 16
#: A model nests at most this many levels, types and models counted together
#: (:meth:`FieldType.nest`): pydantic fails on much deeper ones.
MAX_MODEL_NESTING = 32
#: A value of a model, or of a signature's field, holds at most this many fields of models
#: (:meth:`FieldType.size`): a model whose fields hold the next twice over has values of
#: exponential size.
MAX_MODEL_FIELDS = 10000
#: A Literal's integers are within int64, as Go's.
_INT_MAX = 2**63 - 1

STR, INT, FLOAT, BOOL, LIST, DICT, LITERAL = "str", "int", "float", "bool", "list", "dict", "Literal"
ANY, OPTIONAL, UNION, TUPLE = "Any", "Optional", "Union", "tuple"
#: DSPy's ``dspy.History``, a conversation so far: an input field's whole type only.
HISTORY = "dspy.History"
#: DSPy's ``dspy.Image``, an image for the model to see: inputs only, in no Union of several types.
IMAGE = "dspy.Image"
#: DSPy's ``dspy.File``, a file for the model to read (a PDF): where an image may be.
FILE = "dspy.File"
#: DSPy's ``dspy.Audio``, a sound for the model to hear: where an image may be.
AUDIO = "dspy.Audio"
#: The kinds of content the model takes beside the prompt's text.
MEDIA_KINDS = (IMAGE, FILE, AUDIO)
#: Python's ``datetime.date``, a day, written YYYY-MM-DD: in no Union of several types.
DATE = "datetime.date"
#: Python's ``datetime.datetime``, a moment (its canonical text: ``values.canonical_datetime``):
#: in no Union of several types.
DATETIME = "datetime.datetime"
#: The kinds of a moment: a day, or a day and a time.
MOMENT_KINDS = (DATE, DATETIME)
#: A pydantic model a signature declares (:class:`Model`), an object of its fields: in no Union
#: of several types and no dict's key. Its canonical form is the model's name.
MODEL = "pydantic.BaseModel"
#: None (NoneType) while a union is parsed; never a field's type.
_NONE = "None"


class Model:
    """A pydantic model a signature declares (``signature.models``), resolved (Go's
    ``program.ModelType``): its class ``name`` (its type's canonical form), its
    ``description`` (the class's docstring, ``""`` for none) and its ``fields`` in order,
    each a :class:`~dspgo_worker.signature.Field` (name, type, description). The fields are
    set once every declared model is made, since a field's type may name a model declared
    after its own, and then ``nest`` and ``size`` (:meth:`FieldType.nest` and
    :meth:`FieldType.size` of the model's type), once the models its fields name have
    theirs (:func:`~dspgo_worker.signature.compile_models`)."""

    __slots__ = ("name", "description", "fields", "nest", "size")

    def __init__(self, name: str, description: str) -> None:
        self.name = name
        self.description = description
        self.fields: tuple[Field, ...] = ()
        self.nest = 0
        self.size = 0

    def __repr__(self) -> str:
        return f"Model({self.name!r})"


class FieldType:
    """A parsed field type, as Go's ``program.Type``.

    ``kind`` is one of str, int, float, bool, Any, list, dict, tuple, Optional, Union,
    Literal, dspy.History, dspy.Image, dspy.File, dspy.Audio, datetime.date,
    datetime.datetime, :data:`MODEL`; ``elem`` is a list's or variadic tuple's element, a
    dict's value or the type an Optional makes nullable; ``key`` a dict's key type (str, int or a Literal);
    ``members`` a Union's members or a fixed tuple's element types; ``variadic`` marks
    ``tuple[T, ...]``; ``values`` are a Literal's values (strings, ints, floats, bools, None; Go's
    ``Type.Values``);
    ``model`` a model's :class:`Model`.
    ``media`` is the first ``dspy.Image``, ``dspy.File`` or ``dspy.Audio`` the type is or
    holds (content the model takes beside the prompt's text, an input only), ``""`` when
    none (Go's ``Type.Media``); ``moment`` likewise the first ``datetime.date`` or
    ``datetime.datetime``, not looking into a model's fields; both set from the parts when
    the type is made.
    """

    __slots__ = ("kind", "elem", "values", "key", "members", "variadic", "model", "media", "moment")

    def __init__(
        self,
        kind: str,
        elem: FieldType | None = None,
        values: tuple[LiteralValue, ...] = (),
        key: FieldType | None = None,
        members: tuple[FieldType, ...] = (),
        variadic: bool = False,
        model: Model | None = None,
    ) -> None:
        self.kind = kind
        # Read only for the kinds that have one (list, dict, variadic tuple, Optional).
        self.elem: FieldType = elem  # type: ignore[assignment]
        self.values = values
        self.key = key
        self.members = members
        self.variadic = variadic
        # Read only for a model.
        self.model: Model = model  # type: ignore[assignment]
        self.media: str = kind if kind in MEDIA_KINDS else next((t.media for t in (elem, *members) if t is not None and t.media), "")
        self.moment: str = kind if kind in MOMENT_KINDS else next((t.moment for t in (elem, *members) if t is not None and t.moment), "")

    def __str__(self) -> str:
        kind = self.kind
        if kind == LIST:
            return f"list[{self.elem}]"
        if kind == DICT:
            return f"dict[{self.key or STR}, {self.elem}]"
        if kind == LITERAL:
            return "Literal[" + ", ".join(literal_text(v) for v in self.values) + "]"
        if kind == OPTIONAL:
            return f"Optional[{self.elem}]"
        if kind == UNION:
            return "Union[" + ", ".join(str(m) for m in self.members) + "]"
        if kind == TUPLE:
            if self.variadic:
                return f"tuple[{self.elem}, ...]"
            return "tuple[" + ", ".join(str(m) for m in self.members) + "]"
        if kind == MODEL:
            return self.model.name
        return kind

    def __repr__(self) -> str:
        return f"FieldType({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldType) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @property
    def str_literal(self) -> bool:
        """Whether the type is a Literal of strings only (Go's ``Type.StrLiteral``), the
        Literal a dict's key type may be."""
        return self.kind == LITERAL and all(isinstance(v, str) for v in self.values)

    def has_literal(self, v: Any) -> bool:
        """Whether ``v`` is one of a Literal's values, of the same type: ``1``, ``1.0`` and
        ``True`` are three values (Go's ``Type.hasLiteral``)."""
        return any(type(w) is type(v) and w == v for w in self.values)

    def has_literal_type(self, cls: type) -> bool:
        """Whether one of a Literal's values is of exactly the type ``cls`` (``bool`` is not
        ``int`` here; ``type(None)`` for None)."""
        return any(type(w) is cls for w in self.values)

    def guess_in_union(self) -> str:
        """The first type a Union in the type has among several members that the Union
        cannot tell from the others by its value (a medium, a date or datetime, a model,
        whose values are strings or objects), or ``""`` (Go's ``Type.guessInUnion``)."""
        if self.kind == UNION:
            for m in self.members:
                if m.unionless():
                    return m.unionless()
        for t in (self.elem, *self.members):
            if t is not None and t.guess_in_union():
                return t.guess_in_union()
        return ""

    def unionless(self) -> str:
        """The first medium, date, datetime or model the type is or holds (canonical), or
        ``""`` (Go's ``Type.unionless``)."""
        if self.kind in MOMENT_KINDS or self.kind == MODEL:
            return str(self)
        if self.media:
            return self.media
        return next((t.unionless() for t in (self.elem, *self.members) if t is not None and t.unionless()), "")

    def models(self) -> list[Model]:
        """The models the type names, in order, not looking into the models themselves
        (Go's ``Type.models``)."""
        if self.kind == MODEL:
            return [self.model]
        return [m for t in (self.key, self.elem, *self.members) if t is not None for m in t.models()]

    def holds_model(self) -> bool:
        """Whether the type is or holds a model (Go's ``Type.holdsModel``)."""
        if self.kind == MODEL:
            return True
        return any(t is not None and t.holds_model() for t in (self.key, self.elem, *self.members))

    def nest(self) -> int:
        """How many levels a value of the type nests (Go's ``Type.nest``): 0 for a type
        that holds no other; 1 more than its deepest part for a list, dict, tuple, Optional
        and Union; a model's own ``nest`` (1 more than its deepest field's type), which
        :func:`~dspgo_worker.signature.compile_models` sets."""
        if self.kind == MODEL:
            return self.model.nest
        parts = [t for t in (self.key, self.elem, *self.members) if t is not None]
        return 1 + max(t.nest() for t in parts) if parts else 0

    def size(self) -> int:
        """How many fields of models a value of the type holds (Go's ``Type.size``),
        counting one element of each list, dict and ``tuple[T, ...]``, every member of a
        fixed tuple and a Union, and a model's own ``size`` (its fields and theirs), which
        :func:`~dspgo_worker.signature.compile_models` sets; counting stops past
        :data:`MAX_MODEL_FIELDS`."""
        if self.kind == MODEL:
            return self.model.size
        n = self.elem.size() if self.elem is not None else 0
        for m in self.members:
            n = min(n + m.size(), MAX_MODEL_FIELDS + 1)
        return n

    @property
    def nullable(self) -> bool:
        """Whether null is a value of the type: Optional, Any and a Literal with None."""
        return self.kind in (OPTIONAL, ANY) or (self.kind == LITERAL and self.has_literal(None))

    def json_schema(self) -> dict[str, Any]:
        """A JSON schema of the type (for prompts): pydantic's (``TypeAdapter(T).json_schema()``),
        as DSPy writes it in its prompts (the order of its keys aside:
        ``chat_format.dspy_schema``). A model is a ``$ref`` into ``$defs``, which holds every
        model the type names, directly or through others; a model that is the whole type
        is written in place, as pydantic writes it."""
        defs: dict[str, Any] = {}
        schema = self.model_schema(defs) if self.kind == MODEL else self._schema(defs)
        if defs:
            schema["$defs"] = defs
        return schema

    def _schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        """The type's schema, a model's put in ``defs`` (by name) and named by a ``$ref``."""
        kind = self.kind
        if kind == LIST or (kind == TUPLE and self.variadic):
            return {"type": "array", "items": self.elem._schema(defs)}
        if kind == TUPLE:
            n = len(self.members)
            return {"type": "array", "prefixItems": [m._schema(defs) for m in self.members], "minItems": n, "maxItems": n}
        if kind == DICT:
            schema = {"type": "object", "additionalProperties": True if self.elem.kind == ANY else self.elem._schema(defs)}
            if self.key is not None and self.key.kind == LITERAL:  # pydantic writes no pattern of int keys
                schema["propertyNames"] = {k: v for k, v in self.key._schema(defs).items() if k != "type"}
            return schema
        if kind == LITERAL:  # pydantic's: a type when every value has the same one
            types = {_JSON_TYPES[type(v)] for v in self.values}
            literal: dict[str, Any] = {"const": self.values[0]} if len(self.values) == 1 else {"enum": list(self.values)}
            if len(types) == 1:
                literal["type"] = types.pop()
            return literal
        if kind == ANY:
            return {}
        if kind == HISTORY:
            return {"type": "object", "properties": {"messages": {"type": "array", "items": {"type": "object"}}},
                    "required": ["messages"], "additionalProperties": False}
        if kind == UNION:
            return {"anyOf": [m._schema(defs) for m in self.members]}
        if kind == OPTIONAL:
            inner = self.elem.members if self.elem.kind == UNION else (self.elem,)
            return {"anyOf": [m._schema(defs) for m in inner] + [{"type": "null"}]}
        if kind in (DATE, DATETIME):
            return {"type": "string", "format": "date" if kind == DATE else "date-time"}
        if kind == MODEL:
            name = self.model.name
            if name not in defs:
                defs[name] = self.model_schema(defs)
            return {"$ref": f"#/$defs/{name}"}
        return {"type": {STR: "string", INT: "integer", FLOAT: "number", BOOL: "boolean"}[kind]}

    def model_schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        """A model's own schema, as pydantic writes a model's: an object of its fields'
        schemas (:meth:`_field_schema`), the required ones (all but those with a default
        and the Optional ones; no ``required`` when none is), its name as the title and
        its docstring (``inspect.cleandoc``'d) as the description; the models it names are
        put in ``defs``."""
        model = self.model
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: f.type._field_schema(f.name, f.description, defs, f.default) for f in model.fields},
        }
        required = [f.name for f in model.fields if f.required]
        if required:
            schema["required"] = required
        schema["title"] = model.name
        if model.description:
            import inspect  # (not loaded by an idle worker)

            schema["description"] = inspect.cleandoc(model.description)
        return schema

    def _field_schema(self, name: str, description: str, defs: dict[str, Any], default: Any = None) -> dict[str, Any]:
        """The schema pydantic writes of a model's field of this type: the type's, its
        ``default`` (not None: a converted value) as pydantic dumps it (:func:`_dumped`), or
        an Optional field's null (``Optional[T] = None``), its description when it has
        one, and its title (``first_name``: ``First Name``) unless it is a model or an
        Optional model, which pydantic titles by the model."""
        schema = self._schema(defs)
        if default is not None:
            schema["default"] = _dumped(default)
        elif self.kind == OPTIONAL:
            schema["default"] = None
        if description:
            schema["description"] = description
        if MODEL not in (self.kind, self.elem.kind if self.kind == OPTIONAL else ""):
            schema["title"] = name.title().replace("_", " ").strip()
        return schema


def make_union(parts: Iterable[FieldType]) -> FieldType:
    """``typing.Union[parts]``: nested unions flattened, repeated members dropped (the
    first kept), one member itself, None making an Optional of the rest."""
    members: list[FieldType] = []
    seen: set[str] = set()
    nullable = False

    def add(t: FieldType) -> None:
        nonlocal nullable
        if t.kind == _NONE:
            nullable = True
        elif t.kind == OPTIONAL:
            nullable = True
            add(t.elem)
        elif t.kind == UNION:
            for m in t.members:
                add(m)
        elif str(t) not in seen:
            seen.add(str(t))
            members.append(t)

    for t in parts:
        add(t)
    if not members:
        return FieldType(_NONE)
    out = members[0] if len(members) == 1 else FieldType(UNION, members=tuple(members))
    return FieldType(OPTIONAL, out) if nullable else out


#: The names of the types above that are identifiers: a model may not take one.
TYPE_NAMES = (STR, INT, FLOAT, BOOL, "Any", "None", "NoneType", "list", "List", "dict", "Dict", "tuple", "Tuple", "Optional", "Union", "Literal")

_KNOWN_TYPES = (
    "str, int, float, bool, Any, list[T], dict[K, V], tuple[T, ...], Optional[T], Union[T, U], T | U, Literal['a', ...], dspy.History, dspy.Image, dspy.File, dspy.Audio, datetime.date, datetime.datetime"
)

TYPE_CHECKING = False  # typing is not imported at run time (memory of an idle worker)
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any, Union

    #: A Literal's value: a string, an int from 0, a finite float, a bool or None.
    LiteralValue = Union[str, int, float, bool, None]
    #: An escape read: its character and its length (the parser's method ``tuple`` hides the name).
    _EscapeRead = tuple[str, int]

    from .signature import Field


class _TypeParser:
    """A port of Go's typeParser: same grammar, same error messages; a name may also be one
    of ``models`` (by name, as declared)."""

    def __init__(self, s: str, models: Mapping[str, Model]) -> None:
        self.s = s
        self.i = 0
        self.models = models

    def done(self) -> bool:
        return self.i >= len(self.s)

    def space(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def next(self, c: str) -> bool:
        """Whether the next character after spaces is ``c``; takes it if so."""
        self.space()
        if not self.done() and self.s[self.i] == c:
            self.i += 1
            return True
        return False

    def word(self) -> str:
        start = self.i
        while self.i < len(self.s) and (self.s[self.i] == "." or _ident_char(self.s[self.i])):
            self.i += 1
        return self.s[start : self.i]

    def expect(self, c: str) -> None:
        self.space()
        if self.done() or self.s[self.i] != c:
            raise ValueError(f"expected '{c}' at position {self.i} of {quote(self.s)}")
        self.i += 1
        self.space()

    def not_none(self, t: FieldType) -> FieldType:
        if t.kind == _NONE:
            raise ValueError(
                f"a bare None is not a type in {quote(self.s)} (write Optional[T], Union[T, None] or T | None)"
            )
        return t

    def union(self, depth: int) -> FieldType:
        parts = [self.primary(depth)]
        while self.next("|"):
            parts.append(self.primary(depth))
        if len(parts) == 1:
            return parts[0]
        if any(t.kind == HISTORY for t in parts):
            raise self.whole_history()
        return make_union(parts)

    def whole_history(self) -> ValueError:
        return ValueError(f"{HISTORY} is a field's whole type, not part of one, in {quote(self.s)}")

    def primary(self, depth: int) -> FieldType:
        if depth > MAX_TYPE_DEPTH:
            raise ValueError(f"type {quote(self.s)} nests more than {MAX_TYPE_DEPTH} levels")
        if self.next("("):
            t = self.union(depth + 1)
            self.expect(")")
            return t
        self.space()
        name = self.word()
        if name in (STR, INT, FLOAT, BOOL):
            return FieldType(name)
        if name in ("Any", "typing.Any"):
            return FieldType(ANY)
        if name in ("None", "NoneType"):
            return FieldType(_NONE)
        if name in ("list", "List", "typing.List"):
            if not self.open(name):
                return FieldType(LIST, FieldType(ANY))
            elem = self.elem(depth + 1)
            self.expect("]")
            return FieldType(LIST, elem)
        if name in ("dict", "Dict", "typing.Dict"):
            return self.dict(name, depth)
        if name in ("tuple", "Tuple", "typing.Tuple"):
            return self.tuple(name, depth)
        if name in ("Optional", "typing.Optional"):
            self.expect("[")
            t = self.union(depth + 1)
            self.expect("]")
            return make_union((t, FieldType(_NONE)))
        if name in ("Union", "typing.Union"):
            self.expect("[")
            parts = [self.union(depth + 1)]
            while self.next(","):
                parts.append(self.union(depth + 1))
            self.expect("]")
            return make_union(parts)
        if name in ("Literal", "typing.Literal"):
            return self.literal()
        if name == HISTORY:  # not "History", which DSPy's string signatures do not know either
            if depth > 0:
                raise self.whole_history()
            return FieldType(HISTORY)
        if name in MEDIA_KINDS:  # not "Image", "File" or "Audio", which DSPy's string signatures do not know either
            return FieldType(name)
        if name in (DATE, DATETIME):  # not "date", which DSPy's string signatures know only where it is imported
            return FieldType(name)
        if name == "":
            raise ValueError(f"expected a type at position {self.i} of {quote(self.s)}")
        model = self.models.get(name)
        if model is not None:
            return FieldType(MODEL, model=model)
        known = f", and the signature's models: {', '.join(self.models)}" if self.models else ""
        raise ValueError(f"unknown type {quote(name)} in {quote(self.s)} (known: {_KNOWN_TYPES}{known})")

    def elem(self, depth: int) -> FieldType:
        return self.not_none(self.union(depth))

    def open(self, name: str) -> bool:
        """Take a container's ``[``; False for a bare ``list``, ``dict`` or ``tuple`` (as
        DSPy takes them; typing's ``List``, ``Dict`` and ``Tuple`` need their brackets)."""
        if name in ("list", "dict", "tuple"):
            return self.next("[")
        self.expect("[")
        return True

    def dict(self, name: str, depth: int) -> FieldType:
        if not self.open(name):
            return FieldType(DICT, FieldType(ANY), key=FieldType(STR))
        key = self.union(depth + 1)
        if key.kind not in (STR, INT) and not key.str_literal:
            raise ValueError(f"dict keys must be str, int or a Literal of strings, not {quote(str(key))}, in {quote(self.s)}")
        self.expect(",")
        elem = self.elem(depth + 1)
        self.expect("]")
        return FieldType(DICT, elem, key=key)

    def tuple(self, name: str, depth: int) -> FieldType:
        if not self.open(name):
            return FieldType(TUPLE, FieldType(ANY), variadic=True)
        members = [self.elem(depth + 1)]
        while self.next(","):
            self.space()
            if len(members) == 1 and self.s.startswith("...", self.i):
                self.i += 3
                self.expect("]")
                return FieldType(TUPLE, members[0], variadic=True)
            members.append(self.elem(depth + 1))
        self.expect("]")
        return FieldType(TUPLE, members=tuple(members))

    def literal(self) -> FieldType:
        self.expect("[")
        values: list[LiteralValue] = []
        while True:
            value = self.literal_value()
            if FieldType(LITERAL, values=tuple(values)).has_literal(value):
                shown = quote(value) if isinstance(value, str) else literal_text(value)
                raise ValueError(f"value {shown} appears twice in the Literal {quote(self.s)}")
            values.append(value)
            self.space()
            if not self.done() and self.s[self.i] == ",":
                self.i += 1
                continue
            self.expect("]")
            return FieldType(LITERAL, values=tuple(values))

    def literal_value(self) -> LiteralValue:
        """One value of a Literal (Go's ``typeParser.literalValue``)."""
        self.space()
        if self.done():
            raise ValueError(f"expected a value of a Literal at position {self.i} of {quote(self.s)}")
        c = self.s[self.i]
        if c in "'\"":
            return self.literal_string()
        if "0" <= c <= "9" or c == ".":
            start = self.i
            while not self.done() and (
                _ident_char(self.s[self.i]) or self.s[self.i] == "." or (self.s[self.i] in "+-" and self.s[self.i - 1] in "eE")
            ):
                self.i += 1
            text = self.s[start : self.i]
            if _DIGITS.fullmatch(text):
                if (len(text) > 1 and text[0] == "0") or len(text) > 19 or int(text) > _INT_MAX:
                    raise ValueError(
                        f"value {text} of a Literal is not an integer within int64, written without leading zeros, in {quote(self.s)}"
                    )
                return int(text)
            if not _FLOAT.fullmatch(text):
                raise ValueError(
                    f"value {text} of a Literal is not a number written in decimal (without '_', a base prefix or 'j') in {quote(self.s)}"
                )
            f = float(text)
            if f == float("inf"):
                raise ValueError(f"value {text} of a Literal is not a finite float in {quote(self.s)}")
            return f
        if _ident_char(c):
            word = self.word()
            if word in _WORDS:
                return _WORDS[word]
        raise ValueError(
            "values of a Literal must be quoted strings, integers from 0, floats, True, False or None "
            f"(DSPy's string signatures take no negative number) in {quote(self.s)}"
        )

    def literal_string(self) -> str:
        """A quoted string, as Python's ``ast.literal_eval`` reads it, in the forms Go's
        ``typeParser.literalString`` takes."""
        s, q = self.s, self.s[self.i]
        if s.startswith(q * 3, self.i):
            raise ValueError(f"a Literal's strings may not be triple-quoted, in {quote(s)}")
        out: list[str] = []
        i = self.i + 1
        while i < len(s):
            c = s[i]
            if c == q:
                self.i = i + 1
                return "".join(out)
            if c in "\n\r":
                break
            if c == "\\":
                r, n = self.literal_escape(i)
                out.append(r)
                i += n
                continue
            if c == "\0":
                raise ValueError(f"a value of a Literal holds a NUL character (write \\x00) in {quote(s)}")
            if "\ud800" <= c <= "\udfff":  # what Go reads as text that is not UTF-8
                raise ValueError(f"a value of a Literal is not valid UTF-8 in {quote(s)}")
            out.append(c)
            i += 1
        raise ValueError(f"unterminated value of a Literal in {quote(s)}")

    def literal_escape(self, i: int) -> _EscapeRead:
        """The escape at ``self.s[i]`` (a backslash): its character and its length."""
        s = self.s
        rest = s[i + 1 :]
        if not rest:
            raise ValueError(f"unterminated value of a Literal in {quote(s)}")
        c = rest[0]
        if c in _ESCAPES:
            return _ESCAPES[c], 2
        if "0" <= c <= "7":
            digits = 1
            while digits < 3 and digits < len(rest) and "0" <= rest[digits] <= "7":
                digits += 1
            n = int(rest[:digits], 8)
            if n > 0o377:
                raise ValueError(f"escape \\{rest[:digits]} of a Literal's string is beyond \\377 in {quote(s)}")
            return chr(n), 1 + digits
        digits = {"x": 2, "u": 4, "U": 8}.get(c, 0)
        if not digits:
            raise ValueError(
                f"escape \\{c} of a Literal's string is not one dspgo takes "
                f"(\\\\, \\', \\\", \\a, \\b, \\f, \\n, \\r, \\t, \\v, \\ooo, \\xhh, \\uhhhh, \\Uhhhhhhhh) in {quote(s)}"
            )
        hexits = rest[1 : 1 + digits]
        if len(hexits) < digits or not _HEX.fullmatch(hexits):
            raise ValueError(f"escape \\{c} of a Literal's string needs {digits} hex digits in {quote(s)}")
        n = int(hexits, 16)
        if n > 0x10FFFF or 0xD800 <= n <= 0xDFFF:
            raise ValueError(f"escape \\{rest[: 1 + digits]} of a Literal's string is not a Unicode character in {quote(s)}")
        return chr(n), 2 + digits


#: The names a Literal's value may be.
_WORDS: dict[str, LiteralValue] = {"True": True, "False": False, "None": None}
#: A string's escapes of one character.
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]+")
#: A float as a Literal takes it: digits with a point, an exponent or both.
_FLOAT = re.compile(r"(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+")
#: The JSON type of each type of a Literal's value, as pydantic's schema names it.
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
#: The escapes of :func:`literal_text` beside the controls'.
_TEXT_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def literal_text(v: LiteralValue) -> str:
    """A Literal's value as its type's canonical form writes it (Go's ``LiteralText``): a
    string quoted as ``repr`` quotes it (in single quotes, or double ones when it holds a
    single quote and no double one), a backslash, the quote, ``\\t``, ``\\n``, ``\\r`` and
    the other control characters (U+0000–U+001F, U+007F–U+009F, as ``\\xhh``) escaped, any
    other character as it is; an int in decimal; a float as ``repr``; True, False, None."""
    if isinstance(v, str):
        q = '"' if "'" in v and '"' not in v else "'"
        out = [q]
        for c in v:
            if c == q:
                out.append("\\" + c)
            elif c in _TEXT_ESCAPES:
                out.append(_TEXT_ESCAPES[c])
            elif c < " " or "\x7f" <= c <= "\x9f":
                out.append(f"\\x{ord(c):02x}")
            else:
                out.append(c)
        out.append(q)
        return "".join(out)
    return repr(v)


def _ident_char(c: str) -> bool:
    return c == "_" or "a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9"


def parse_type(s: str, models: Mapping[str, Model] | None = None) -> FieldType:
    """Parse a type as written in a DSPy signature; ``""`` is ``str``. Raises ``ValueError``.

    The grammar of Go's ``program.ParseType`` (docs/protocol.md, "Program specs"): typing's
    spellings, PEP 604 unions with parentheses, bare ``list``/``dict``/``tuple`` (of Any);
    unions flattened and deduplicated as ``typing.Union`` does. A name may also be one of
    ``models`` (a signature's, by name in declared order), which an unknown type's error
    lists.
    """
    p = _TypeParser(s, models or {})
    p.space()
    if p.done():
        return FieldType(STR)
    t = p.union(0)
    p.space()
    if not p.done():
        raise ValueError(f"unexpected {quote(s[p.i:])} after the type in {quote(s)}")
    p.not_none(t)
    guess = t.guess_in_union()
    if guess:
        raise ValueError(
            f"{guess} may not be in a Union of several types, in {quote(s)} (which one a value is would be a guess): "
            f"use Optional[{guess}], or a field of its own"
        )
    return t


def _dumped(v: Any) -> Any:
    """A converted value as pydantic's JSON schema holds it (``to_jsonable_python`` of the
    value pydantic validated): the same JSON, a dict's int keys as their decimal text."""
    if isinstance(v, dict):
        return {str(k): _dumped(e) for k, e in v.items()}
    if isinstance(v, list):
        return [_dumped(e) for e in v]
    return v
