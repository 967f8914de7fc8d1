// Package program is the program model shared by the client and the
// in-process backend: signature types, specs, their canonical JSON and hash,
// input and output conversion, and the deterministic dummy language model.
// The Python worker implements the same rules (docs/protocol.md), so that
// every backend gives the same outputs for the same program and inputs.
package program

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dspgo/dspgo/adapter"
)

// Kind is the kind of a field type.
type Kind int

// The type kinds.
const (
	Str Kind = iota
	Int
	Float
	Bool
	List
	Dict
	Literal
	// Any is any JSON value, null included.
	Any
	// Optional is its Elem or null.
	Optional
	// Union is one of its Members, tried in order (see Type.Convert).
	Union
	// Tuple is a fixed-length array of its Members' types, or, when
	// Variadic, an array of Elem of any length.
	Tuple
	// History is DSPy's dspy.History, a conversation so far: an object
	// {"messages": [object, …]}, each message holding earlier values of
	// the signature's fields by name. It is an input field's whole type
	// only, one per signature.
	History
	// Image is DSPy's dspy.Image, an image for the model to see: an object
	// {"url": u}, u a data: URI or an http, https or gs URL. It stands in
	// inputs only, anywhere in their types but among a Union's several
	// members.
	Image
	// File is DSPy's dspy.File, a file for the model to read (a PDF): an
	// object {"file_data": a data: URI, "filename": its name (optional)}.
	// It stands where an Image may.
	File
	// Audio is DSPy's dspy.Audio, a sound for the model to hear: an object
	// {"data": base64, "audio_format": "wav"}. It stands where an Image
	// may.
	Audio
	// Date is Python's datetime.date, a day: its text YYYY-MM-DD. It is in
	// no Union of several types (its value is a string).
	Date
	// DateTime is Python's datetime.datetime, a moment: its canonical
	// text (CanonicalDateTime). It is in no Union of several types.
	DateTime
	// Object is a pydantic model a signature declares (its Model): an
	// object holding the model's fields. It is in no Union of several
	// types and no dict's key.
	Object
)

// noneKind is None (NoneType) while a union is parsed; it never leaves
// ParseType.
const noneKind Kind = -1

// Type is a parsed field type: "str", "int", "float", "bool", "Any",
// "list[T]", "dict[K, V]" (K is str, int or a Literal), "tuple[A, B]",
// "tuple[T, ...]", "Optional[T]", "Union[A, B]", "Literal['a', 'b']" or
// "dspy.History", "dspy.Image", "dspy.File", "dspy.Audio",
// "datetime.date" or "datetime.datetime".
type Type struct {
	Kind Kind
	// Elem is the element type of a list or of a variadic tuple, the value
	// type of a dict, or the type an Optional makes nullable (a Union when
	// it has several members).
	Elem *Type
	// Key is a dict's key type: Str, Int or Literal.
	Key *Type
	// Members are a Union's member types (two or more, distinct, none of
	// them Optional or a Union) or a fixed tuple's element types, in
	// declared order.
	Members []Type
	// Variadic marks tuple[T, ...].
	Variadic bool
	// Values are a Literal's values, distinct, in declared order: each a
	// string, an int64 (an integer from 0), a float64 (finite), a bool or
	// nil (None), of one kind or mixed ("Literal['a', 1, True, None]").
	Values []any
	// Model is an Object's model.
	Model *ModelType
}

// String returns the type's canonical form, the one hashed: "list[str]",
// "dict[str, int]", "Literal['a', 'b']", "Optional[int]" (for "int | None"
// and "Union[int, None]" too), "Union[int, str]", "tuple[int, ...]".
func (t Type) String() string {
	switch t.Kind {
	case Str:
		return "str"
	case Int:
		return "int"
	case Float:
		return "float"
	case Bool:
		return "bool"
	case Any:
		return "Any"
	case List:
		return "list[" + t.Elem.String() + "]"
	case Dict:
		key := "str"
		if t.Key != nil {
			key = t.Key.String()
		}
		return "dict[" + key + ", " + t.Elem.String() + "]"
	case Literal:
		return t.literalString()
	case Optional:
		return "Optional[" + t.Elem.String() + "]"
	case Union:
		return "Union[" + joinTypes(t.Members) + "]"
	case Tuple:
		if t.Variadic {
			return "tuple[" + t.Elem.String() + ", ...]"
		}
		return "tuple[" + joinTypes(t.Members) + "]"
	case History:
		return HistoryType
	case Image:
		return ImageType
	case File:
		return FileType
	case Audio:
		return AudioType
	case Date:
		return DateType
	case DateTime:
		return DateTimeType
	case Object:
		return t.Model.Name
	case noneKind:
		return "None"
	}
	return fmt.Sprintf("Kind(%d)", int(t.Kind))
}

func joinTypes(types []Type) string {
	parts := make([]string, len(types))
	for i, m := range types {
		parts[i] = m.String()
	}
	return strings.Join(parts, ", ")
}

// ParseType parses a type written as in a DSPy signature. Spaces around
// brackets, commas and "|" are allowed; an empty string is "str". The
// grammar and its canonical forms are in docs/protocol.md ("Program
// specs"): typing's spellings (List, Dict, Tuple, Optional, Union, Any,
// Literal, with or without "typing."), PEP 604 unions with parentheses
// ("str | (int | float) | None"), and bare list, dict and tuple (of Any).
// Unions are flattened and their repeated members dropped, as Python's
// typing does; None goes into an Optional around the rest.
func ParseType(s string) (Type, error) {
	return parseType(s, nil)
}

// parseType is ParseType where a name may also be one of models'.
func parseType(s string, models *Models) (Type, error) {
	p := typeParser{s: s, models: models}
	p.space()
	if p.done() {
		return Type{Kind: Str}, nil
	}
	t, err := p.union(0)
	if err != nil {
		return Type{}, err
	}
	p.space()
	if !p.done() {
		return Type{}, fmt.Errorf("unexpected %q after the type in %q", p.s[p.i:], s)
	}
	if err := p.notNone(t); err != nil {
		return Type{}, err
	}
	if guess := t.guessInUnion(); guess != "" {
		return Type{}, fmt.Errorf("%s may not be in a Union of several types, in %q (which one a value is would be a guess): use Optional[%s], or a field of its own", guess, s, guess)
	}
	return t, nil
}

// Media is the canonical form of the first dspy.Image, dspy.File or
// dspy.Audio that t is or holds (content the model takes beside the
// prompt's text, an input only); "" when it holds none.
func (t Type) Media() string {
	if t.Kind == Image || t.Kind == File || t.Kind == Audio {
		return t.String()
	}
	return t.firstOfParts(Type.Media)
}

// guessInUnion is the canonical form of the first type a Union in t has
// among several members that a Union cannot tell from the others by its
// value: a medium (Media), a date or datetime, whose values are strings,
// or a model, whose values are objects; "" when there is none.
func (t Type) guessInUnion() string {
	if t.Kind == Union {
		if guess := t.firstOfParts(Type.unionless); guess != "" {
			return guess
		}
	}
	return t.firstOfParts(Type.guessInUnion)
}

// unionless is the canonical form of the first medium, date, datetime or
// model t is or holds, or "".
func (t Type) unionless() string {
	if t.Kind == Date || t.Kind == DateTime || t.Kind == Object {
		return t.String()
	}
	if media := t.Media(); media != "" {
		return media
	}
	return t.firstOfParts(Type.unionless)
}

// firstOfParts is the first non-empty f of t's element and members, or "".
func (t Type) firstOfParts(f func(Type) string) string {
	if t.Elem != nil {
		if s := f(*t.Elem); s != "" {
			return s
		}
	}
	for _, m := range t.Members {
		if s := f(m); s != "" {
			return s
		}
	}
	return ""
}

const maxTypeDepth = 16

// HistoryType is the canonical form of the History type.
const HistoryType = "dspy.History"

// ImageType is the canonical form of the Image type.
const ImageType = "dspy.Image"

// FileType is the canonical form of the File type.
const FileType = "dspy.File"

// AudioType is the canonical form of the Audio type.
const AudioType = "dspy.Audio"

type typeParser struct {
	s      string
	i      int
	models *Models
}

func (p *typeParser) done() bool { return p.i >= len(p.s) }

func (p *typeParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// next reports whether the next byte after spaces is c, and takes it if so.
func (p *typeParser) next(c byte) bool {
	p.space()
	if !p.done() && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *typeParser) word() string {
	start := p.i
	for p.i < len(p.s) && (isIdentByte(p.s[p.i]) || p.s[p.i] == '.') {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *typeParser) expect(c byte) error {
	p.space()
	if p.done() || p.s[p.i] != c {
		return fmt.Errorf("expected %q at position %d of %q", c, p.i, p.s)
	}
	p.i++
	p.space()
	return nil
}

// notNone refuses None where a type is needed: it is a member of a union
// only.
func (p *typeParser) notNone(t Type) error {
	if t.Kind == noneKind {
		return fmt.Errorf("a bare None is not a type in %q (write Optional[T], Union[T, None] or T | None)", p.s)
	}
	return nil
}

// union parses one type or several separated by "|".
func (p *typeParser) union(depth int) (Type, error) {
	var parts []Type
	for {
		t, err := p.primary(depth)
		if err != nil {
			return Type{}, err
		}
		parts = append(parts, t)
		if !p.next('|') {
			break
		}
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	for _, t := range parts {
		if t.Kind == History {
			return Type{}, wholeHistory(p.s)
		}
	}
	return makeUnion(parts), nil
}

// wholeHistory is the error of a History inside another type.
func wholeHistory(s string) error {
	return fmt.Errorf("%s is a field's whole type, not part of one, in %q", HistoryType, s)
}

// makeUnion is typing.Union[parts]: nested unions flattened, repeated
// members dropped (the first kept), one member itself, and None making
// an Optional of the rest.
func makeUnion(parts []Type) Type {
	var members []Type
	seen := map[string]bool{}
	nullable := false
	var add func(t Type)
	add = func(t Type) {
		switch t.Kind {
		case noneKind:
			nullable = true
		case Optional:
			nullable = true
			add(*t.Elem)
		case Union:
			for _, m := range t.Members {
				add(m)
			}
		default:
			if s := t.String(); !seen[s] {
				seen[s] = true
				members = append(members, t)
			}
		}
	}
	for _, t := range parts {
		add(t)
	}
	var out Type
	switch len(members) {
	case 0:
		return Type{Kind: noneKind}
	case 1:
		out = members[0]
	default:
		out = Type{Kind: Union, Members: members}
	}
	if nullable {
		return Type{Kind: Optional, Elem: &out}
	}
	return out
}

func (p *typeParser) primary(depth int) (Type, error) {
	if depth > maxTypeDepth {
		return Type{}, fmt.Errorf("type %q nests more than %d levels", p.s, maxTypeDepth)
	}
	if p.next('(') {
		t, err := p.union(depth + 1)
		if err != nil {
			return Type{}, err
		}
		return t, p.expect(')')
	}
	p.space()
	name := p.word()
	switch name {
	case "str":
		return Type{Kind: Str}, nil
	case "int":
		return Type{Kind: Int}, nil
	case "float":
		return Type{Kind: Float}, nil
	case "bool":
		return Type{Kind: Bool}, nil
	case "Any", "typing.Any":
		return Type{Kind: Any}, nil
	case "None", "NoneType":
		return Type{Kind: noneKind}, nil
	case "list", "List", "typing.List":
		return p.list(name, depth)
	case "dict", "Dict", "typing.Dict":
		return p.dict(name, depth)
	case "tuple", "Tuple", "typing.Tuple":
		return p.tuple(name, depth)
	case "Optional", "typing.Optional":
		if err := p.expect('['); err != nil {
			return Type{}, err
		}
		t, err := p.union(depth + 1)
		if err != nil {
			return Type{}, err
		}
		return makeUnion([]Type{t, {Kind: noneKind}}), p.expect(']')
	case "Union", "typing.Union":
		if err := p.expect('['); err != nil {
			return Type{}, err
		}
		var parts []Type
		for {
			t, err := p.union(depth + 1)
			if err != nil {
				return Type{}, err
			}
			parts = append(parts, t)
			if !p.next(',') {
				break
			}
		}
		return makeUnion(parts), p.expect(']')
	case "Literal", "typing.Literal":
		return p.literal()
	case HistoryType: // not "History", which DSPy's string signatures do not know either
		if depth > 0 {
			return Type{}, wholeHistory(p.s)
		}
		return Type{Kind: History}, nil
	case ImageType: // not "Image", which DSPy's string signatures do not know either
		return Type{Kind: Image}, nil
	case FileType:
		return Type{Kind: File}, nil
	case AudioType:
		return Type{Kind: Audio}, nil
	case DateType: // not "date", which DSPy's string signatures know only where it is imported
		return Type{Kind: Date}, nil
	case DateTimeType:
		return Type{Kind: DateTime}, nil
	case "":
		return Type{}, fmt.Errorf("expected a type at position %d of %q", p.i, p.s)
	}
	if model := p.models.lookup(name); model != nil {
		return Type{Kind: Object, Model: model}, nil
	}
	return Type{}, fmt.Errorf("unknown type %q in %q (known: str, int, float, bool, Any, list[T], dict[K, V], tuple[T, ...], Optional[T], Union[T, U], T | U, Literal['a', ...], dspy.History, dspy.Image, dspy.File, dspy.Audio, datetime.date, datetime.datetime%s)", name, p.s, p.models.known())
}

// elem parses a type that is not None, as a container's argument.
func (p *typeParser) elem(depth int) (Type, error) {
	t, err := p.union(depth)
	if err != nil {
		return Type{}, err
	}
	return t, p.notNone(t)
}

// open takes a container's "[". It reports false for a bare list, dict or
// tuple, which DSPy takes as of Any; typing's List, Dict and Tuple need
// their brackets (DSPy refuses them bare).
func (p *typeParser) open(name string) (bool, error) {
	if name == "list" || name == "dict" || name == "tuple" {
		return p.next('['), nil
	}
	return true, p.expect('[')
}

// list parses the bracketed part of list[T]; a bare list is list[Any].
func (p *typeParser) list(name string, depth int) (Type, error) {
	if ok, err := p.open(name); err != nil || !ok {
		return Type{Kind: List, Elem: &Type{Kind: Any}}, err
	}
	elem, err := p.elem(depth + 1)
	if err != nil {
		return Type{}, err
	}
	return Type{Kind: List, Elem: &elem}, p.expect(']')
}

// dict parses the bracketed part of dict[K, V]; a bare dict is
// dict[str, Any].
func (p *typeParser) dict(name string, depth int) (Type, error) {
	if ok, err := p.open(name); err != nil || !ok {
		return Type{Kind: Dict, Key: &Type{Kind: Str}, Elem: &Type{Kind: Any}}, err
	}
	key, err := p.union(depth + 1)
	if err != nil {
		return Type{}, err
	}
	if key.Kind != Str && key.Kind != Int && !key.StrLiteral() {
		return Type{}, fmt.Errorf("dict keys must be str, int or a Literal of strings, not %q, in %q", key.String(), p.s)
	}
	if err := p.expect(','); err != nil {
		return Type{}, err
	}
	elem, err := p.elem(depth + 1)
	if err != nil {
		return Type{}, err
	}
	return Type{Kind: Dict, Key: &key, Elem: &elem}, p.expect(']')
}

// tuple parses the bracketed part of tuple[A, B] or tuple[T, ...]; a bare
// tuple is tuple[Any, ...].
func (p *typeParser) tuple(name string, depth int) (Type, error) {
	if ok, err := p.open(name); err != nil || !ok {
		return Type{Kind: Tuple, Variadic: true, Elem: &Type{Kind: Any}}, err
	}
	var members []Type
	for {
		t, err := p.elem(depth + 1)
		if err != nil {
			return Type{}, err
		}
		members = append(members, t)
		if !p.next(',') {
			break
		}
		p.space()
		if len(members) == 1 && strings.HasPrefix(p.s[p.i:], "...") {
			p.i += len("...")
			return Type{Kind: Tuple, Variadic: true, Elem: &members[0]}, p.expect(']')
		}
	}
	return Type{Kind: Tuple, Members: members}, p.expect(']')
}

func isIdentByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

var anyType = reflect.TypeFor[any]()

// GoType is the Go type values of t convert to: string (str, and
// datetime.date and datetime.datetime, as their canonical text), int64,
// float64, bool, a Literal's values' type when they are of one kind
// (string, int64, float64, bool), []T (list[T], tuple[T, ...]), []any (a
// fixed tuple), map[string]V (dict[str, V], dict[Literal[...], V]),
// map[int64]V (dict[int, V]), any for Any, Optional and Union (nil
// for null, else the value of the member that took it) and for a Literal
// of several kinds of values or with None (nil, or the value), and
// map[string]any for dspy.History ({"messages": []any of
// map[string]any}), dspy.Image ({"url": string}), dspy.File
// ({"file_data": string, "filename": string}), dspy.Audio ({"data":
// string, "audio_format": string}) and a model (each field's value by
// its name).
func (t Type) GoType() reflect.Type {
	switch t.Kind {
	case History, Image, File, Audio, Object:
		return reflect.TypeFor[map[string]any]()
	case Int:
		return reflect.TypeFor[int64]()
	case Literal:
		return t.literalGoType()
	case Float:
		return reflect.TypeFor[float64]()
	case Bool:
		return reflect.TypeFor[bool]()
	case List:
		return reflect.SliceOf(t.Elem.GoType())
	case Tuple:
		if t.Variadic {
			return reflect.SliceOf(t.Elem.GoType())
		}
		return reflect.TypeFor[[]any]()
	case Dict:
		key := reflect.TypeFor[string]()
		if t.Key != nil && t.Key.Kind == Int {
			key = reflect.TypeFor[int64]()
		}
		return reflect.MapOf(key, t.Elem.GoType())
	case Any, Optional, Union:
		return anyType
	}
	return reflect.TypeFor[string]()
}

// Convert returns v as a value of t's GoType, or an error that names path
// and says what was expected. v may be a Go value of any matching kind
// (any integer or float type, slices, arrays, maps with string keys, or
// integer keys for dict[int, V]) or a value decoded from JSON
// (json.Number included). The rules, the same in the Python worker, are in
// docs/protocol.md ("Input conversion"); in short: a Union takes the value
// as its first member that takes it exactly (without changing its JSON
// kind: an integral number is exactly an int, never a float), else as its
// first member that takes it at all; Optional takes null as nil; Any
// takes any JSON value (numbers become int64 when integral and exact,
// else float64); a dict[int, V] takes keys that are decimal integers.
func (t Type) Convert(v any, path string) (any, error) {
	rv, err := t.convert(reflect.ValueOf(v), path, conv{filled: new(int)})
	if err != nil {
		return nil, err
	}
	return rv.Interface(), nil
}

// conv is the state of one conversion.
type conv struct {
	// exact (a union's first pass) refuses conversions that change a
	// value's JSON kind: a float then takes only non-integral numbers.
	exact bool
	// filled counts the values the conversion's models' fields took from
	// their defaults (convertModel), shared by the whole conversion.
	filled *int
}

// ConvertField converts v, the value of a signature's field of type t
// (an input, an output, a value of a demo, a field's default), as Convert
// does, but for a str field: one takes, besides a string, the values
// DSPy 3.4.1 shows in a str field (its ChatAdapter's format_field_value),
// an array of strings (the LM sees a numbered list, "[1] «…»"), a bool, a
// number or an object (converted as Any converts them; the LM sees str()
// or JSON). DSPy's untyped fields are str fields, and its RAG programs
// give a list of passages to one ("context, question -> answer"). A
// model's str field takes strings only, as pydantic's does.
func (t Type) ConvertField(v any, path string) (any, error) {
	if t.Kind == Str {
		rv := indirect(reflect.ValueOf(v))
		switch k := rv.Kind(); {
		case !rv.IsValid(), k == reflect.String && rv.Type() != reflect.TypeFor[json.Number]():
		case isArray(rv):
			return strList.Convert(v, path)
		case k == reflect.Bool, k == reflect.Map, rv.Type() == reflect.TypeFor[json.Number](), isInteger(k), k == reflect.Float32, k == reflect.Float64:
			out, err := convertAny(rv, path, 0)
			if err != nil {
				return nil, err
			}
			return out.Interface(), nil
		}
	}
	return t.Convert(v, path)
}

// strList is list[str], the type of an array a str field takes.
var strList = Type{Kind: List, Elem: &Type{Kind: Str}}

// convert converts v as c says.
func (t Type) convert(v reflect.Value, path string, c conv) (reflect.Value, error) {
	v = indirect(v)
	bad := func(why string) (reflect.Value, error) {
		return reflect.Value{}, fmt.Errorf("%s: %s", path, why)
	}
	null := !v.IsValid() || v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer
	switch t.Kind {
	case Any:
		return convertAny(v, path, 0)
	case History:
		return convertHistory(v, path)
	case Image:
		return convertImage(v, path)
	case File:
		return convertFile(v, path)
	case Audio:
		return convertAudio(v, path)
	case Date:
		return convertDate(v, path)
	case DateTime:
		return convertDateTime(v, path)
	case Optional:
		if null {
			return reflect.Zero(anyType), nil
		}
		return t.Elem.convert(v, path, c)
	case Union:
		for _, m := range t.Members {
			if out, err := m.convert(v, path, conv{exact: true, filled: c.filled}); err == nil {
				return out, nil
			}
		}
		if !c.exact {
			for _, m := range t.Members {
				if out, err := m.convert(v, path, c); err == nil {
					return out, nil
				}
			}
		}
		if null {
			return bad(fmt.Sprintf("expected %s, got null", t))
		}
		return bad(fmt.Sprintf("expected %s, got %s", t, describe(v)))
	}
	if null && t.Kind == Literal && t.hasLiteral(nil) {
		return reflect.Zero(anyType), nil
	}
	if null {
		return bad(fmt.Sprintf("expected %s, got null", t))
	}
	switch t.Kind {
	case Literal:
		return t.convertLiteral(v, path, c)
	case Str:
		return t.convertString(v, path)
	}
	switch t.Kind {
	case Bool:
		if v.Kind() != reflect.Bool {
			return bad("expected bool, got " + describe(v))
		}
		return reflect.ValueOf(v.Bool()), nil
	case Int:
		n, ok := toInt(v)
		if !ok {
			return bad("expected int, got " + describe(v))
		}
		return reflect.ValueOf(n), nil
	case Float:
		f, ok := toFloat(v)
		if !ok || c.exact && f == math.Trunc(f) {
			return bad("expected float, got " + describe(v))
		}
		return reflect.ValueOf(f), nil
	case List:
		return t.Elem.convertArray(v, path, c, t)
	case Tuple:
		if t.Variadic {
			return t.Elem.convertArray(v, path, c, t)
		}
		if !isArray(v) {
			return bad(fmt.Sprintf("expected %s, got %s", t, describe(v)))
		}
		if v.Len() != len(t.Members) {
			return bad(fmt.Sprintf("expected %s, got an array of %d", t, v.Len()))
		}
		out := make([]any, v.Len())
		for i, m := range t.Members {
			e, err := m.convert(v.Index(i), path+"["+strconv.Itoa(i)+"]", c)
			if err != nil {
				return reflect.Value{}, err
			}
			out[i] = e.Interface()
		}
		return reflect.ValueOf(out), nil
	case Dict:
		return t.convertDict(v, path, c)
	case Object:
		return t.convertModel(v, path, c)
	}
	return bad("unsupported type " + t.String())
}

// convertString converts v to t, str.
func (t Type) convertString(v reflect.Value, path string) (reflect.Value, error) {
	if v.Kind() != reflect.String || v.Type() == reflect.TypeFor[json.Number]() {
		return reflect.Value{}, fmt.Errorf("%s: expected %s, got %s", path, t, describe(v))
	}
	return reflect.ValueOf(v.String()), nil
}

// indirect follows interfaces and pointers down to a value, or to a nil
// one (or the invalid Value of a nil any).
func indirect(v reflect.Value) reflect.Value {
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) && !v.IsNil() {
		v = v.Elem()
	}
	return v
}

func isArray(v reflect.Value) bool {
	return (v.Kind() == reflect.Slice || v.Kind() == reflect.Array) && v.Type() != reflect.TypeFor[[]byte]() &&
		v.Type() != reflect.TypeFor[json.RawMessage]()
}

// convertArray converts an array whose elements are of type t (the
// element type of whole, a list or a variadic tuple).
func (t Type) convertArray(v reflect.Value, path string, c conv, whole Type) (reflect.Value, error) {
	if !isArray(v) {
		return reflect.Value{}, fmt.Errorf("%s: expected %s, got %s", path, whole, describe(v))
	}
	out := reflect.MakeSlice(reflect.SliceOf(t.GoType()), v.Len(), v.Len())
	for i := range v.Len() {
		e, err := t.convert(v.Index(i), path+"["+strconv.Itoa(i)+"]", c)
		if err != nil {
			return reflect.Value{}, err
		}
		out.Index(i).Set(e)
	}
	return out, nil
}

// convertDict converts an object to t, a dict type. Keys of a dict[int, V]
// are decimal integer strings ("-12", optionally with "+", within int64)
// or Go integers; two keys that are the same integer are an error.
func (t Type) convertDict(v reflect.Value, path string, c conv) (reflect.Value, error) {
	keyKind := Str
	if t.Key != nil {
		keyKind = t.Key.Kind
	}
	if v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.String && (keyKind != Int || !isInteger(v.Type().Key().Kind())) {
		return reflect.Value{}, fmt.Errorf("%s: expected %s, got %s", path, t, describe(v))
	}
	out := reflect.MakeMapWithSize(t.GoType(), v.Len())
	texts := map[int64]string{}
	for _, k := range sortedKeys(v) {
		text := ""
		var key reflect.Value
		switch {
		case k.Kind() != reflect.String:
			n, ok := toInt(k)
			if !ok {
				return reflect.Value{}, fmt.Errorf("%s: key %s is not an int", path, strconv.FormatUint(k.Uint(), 10))
			}
			text, key = strconv.FormatInt(n, 10), reflect.ValueOf(n)
		case keyKind == Int:
			text = k.String()
			n, ok := parseIntKey(text)
			if !ok {
				return reflect.Value{}, fmt.Errorf("%s: key %q is not an int", path, text)
			}
			key = reflect.ValueOf(n)
		default:
			text = k.String()
			if keyKind == Literal && !t.Key.hasLiteral(text) {
				return reflect.Value{}, fmt.Errorf("%s: key %q is not one of %s", path, text, t.Key)
			}
			key = reflect.ValueOf(text)
		}
		if keyKind == Int {
			n := key.Int()
			if prev, dup := texts[n]; dup {
				a, b := min(prev, text), max(prev, text)
				return reflect.Value{}, fmt.Errorf("%s: keys %q and %q are the same int %d", path, a, b, n)
			}
			texts[n] = text
		}
		e, err := t.Elem.convert(v.MapIndex(k), path+"["+strconv.Quote(text)+"]", c)
		if err != nil {
			return reflect.Value{}, err
		}
		out.SetMapIndex(key, e)
	}
	return out, nil
}

// sortedKeys returns a map's keys in the order of their JSON text (an
// integer's in decimal), so that of several bad entries the same one is
// reported every time, and in Python too.
func sortedKeys(v reflect.Value) []reflect.Value {
	keys := v.MapKeys()
	slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(mapKeyText(a), mapKeyText(b)) })
	return keys
}

func isInteger(k reflect.Kind) bool {
	return reflect.Int <= k && k <= reflect.Uintptr
}

// parseIntKey reads a dict[int, V] key: an optional sign and ASCII digits,
// within int64.
func parseIntKey(s string) (int64, bool) {
	digits := strings.TrimLeft(s, "+-")
	if len(s)-len(digits) > 1 || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// maxValueDepth is how deep an Any value may nest, as a frame's JSON
// (docs/protocol.md, "Frames"); it also stops a cyclic Go value.
const maxValueDepth = 128

// convertAny converts a JSON value to Go's JSON types: nil, bool, string,
// int64 (an integer literal within int64, or an integral float below
// 2^53), float64 (any other finite number), []any and map[string]any.
// A json.RawMessage is decoded first.
func convertAny(v reflect.Value, path string, depth int) (reflect.Value, error) {
	v = indirect(v)
	bad := func(why string) (reflect.Value, error) {
		return reflect.Value{}, fmt.Errorf("%s: %s", path, why)
	}
	if !v.IsValid() || v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		return reflect.Zero(anyType), nil
	}
	if depth > maxValueDepth {
		return bad(fmt.Sprintf("the value nests more than %d levels", maxValueDepth))
	}
	switch v.Type() {
	case reflect.TypeFor[json.Number]():
		s := v.String()
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return reflect.ValueOf(n), nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || !strings.ContainsAny(s, ".eE") {
			return bad(fmt.Sprintf("number %s is out of range", s))
		}
		return anyNumber(f, path)
	case reflect.TypeFor[json.RawMessage]():
		decoded, err := decodeJSON(v.Bytes())
		if err != nil {
			return bad(fmt.Sprintf("expected Any (a JSON value), got invalid JSON: %v", err))
		}
		return convertAny(reflect.ValueOf(decoded), path, depth)
	}
	switch k := v.Kind(); {
	case k == reflect.Bool:
		return reflect.ValueOf(v.Bool()), nil
	case k == reflect.String:
		return reflect.ValueOf(v.String()), nil
	case isInteger(k):
		n, ok := toInt(v)
		if !ok {
			return bad(fmt.Sprintf("number %d is out of range", v.Uint()))
		}
		return reflect.ValueOf(n), nil
	case k == reflect.Float32 || k == reflect.Float64:
		return anyNumber(v.Float(), path)
	case isArray(v):
		out := make([]any, v.Len())
		for i := range v.Len() {
			e, err := convertAny(v.Index(i), path+"["+strconv.Itoa(i)+"]", depth+1)
			if err != nil {
				return reflect.Value{}, err
			}
			out[i] = e.Interface()
		}
		return reflect.ValueOf(out), nil
	case k == reflect.Map && v.Type().Key().Kind() == reflect.String:
		out := make(map[string]any, v.Len())
		for _, k := range sortedKeys(v) {
			key := k.String()
			e, err := convertAny(v.MapIndex(k), path+"["+strconv.Quote(key)+"]", depth+1)
			if err != nil {
				return reflect.Value{}, err
			}
			out[key] = e.Interface()
		}
		return reflect.ValueOf(out), nil
	}
	return bad("expected Any (a JSON value), got " + describe(v))
}

// anyNumber is a float as Any holds it: int64 when integral below 2^53.
func anyNumber(f float64, path string) (reflect.Value, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return reflect.Value{}, fmt.Errorf("%s: number %v is out of range", path, f)
	}
	if f == math.Trunc(f) && math.Abs(f) < maxExactInt {
		return reflect.ValueOf(int64(f)), nil
	}
	return reflect.ValueOf(f), nil
}

// describe names a value that did not convert, for the error: its JSON
// kind, or its Go type, with the value for a string or a number.
func describe(v reflect.Value) string {
	switch {
	case v.Type() == reflect.TypeFor[json.Number]():
		return "number " + v.String()
	case v.CanInt():
		return v.Type().String() + " " + strconv.FormatInt(v.Int(), 10)
	case v.CanUint():
		s := v.Type().String() + " " + strconv.FormatUint(v.Uint(), 10)
		if v.Uint() > math.MaxInt64 {
			s += ", beyond int64"
		}
		return s
	case v.CanFloat():
		f := v.Float()
		s := v.Type().String() + " " + strconv.FormatFloat(f, 'g', -1, v.Type().Bits())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			s += ", which JSON cannot carry"
		}
		return s
	case v.Kind() == reflect.String:
		s := v.String()
		if len(s) > 40 { // bytes: cut at the start of a character, as Python cuts it
			n := 40
			for n > 0 && !utf8.RuneStart(s[n]) {
				n--
			}
			s = s[:n] + "…"
		}
		return "string " + strconv.Quote(s)
	case v.Kind() == reflect.Map:
		return "object"
	case v.Kind() == reflect.Slice || v.Kind() == reflect.Array:
		return "array"
	}
	return v.Type().String()
}

// maxExactInt is 2^53: floats at or above it are no longer exact integers.
const maxExactInt = 1 << 53

func toInt(v reflect.Value) (int64, bool) {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := v.Uint()
		return int64(u), u <= math.MaxInt64
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if f != math.Trunc(f) || math.Abs(f) >= maxExactInt {
			return 0, false
		}
		return int64(f), true
	case reflect.String:
		if v.Type() != reflect.TypeFor[json.Number]() {
			return 0, false
		}
		if n, err := strconv.ParseInt(v.String(), 10, 64); err == nil {
			return n, true
		}
		f, err := strconv.ParseFloat(v.String(), 64)
		if err != nil {
			return 0, false
		}
		return toInt(reflect.ValueOf(f))
	}
	return 0, false
}

func toFloat(v reflect.Value) (float64, bool) {
	var f float64
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f = float64(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		f = float64(v.Uint())
	case reflect.Float32, reflect.Float64:
		f = v.Float()
	case reflect.String:
		if v.Type() != reflect.TypeFor[json.Number]() {
			return 0, false
		}
		var err error
		if f, err = strconv.ParseFloat(v.String(), 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

// invalid wraps a message as an adapter error with CodeInvalidArgument.
func invalid(format string, args ...any) error {
	return adapter.Errorf(adapter.CodeInvalidArgument, format, args...)
}

// adapterError is a CodeInternal adapter error.
func adapterError(msg string) error {
	return &adapter.Error{Code: adapter.CodeInternal, Message: msg}
}

// convertHistory converts a dspy.History value: an object whose one key,
// "messages", holds an array of objects, each value as Any converts it,
// or a Go struct whose JSON encoding is one (dspgo.History).
func convertHistory(v reflect.Value, path string) (reflect.Value, error) {
	want := fmt.Sprintf(`expected %s, an object {"messages": [{field: value, …}, …]}`, HistoryType)
	v, err := structAsJSON(v)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("%s: %s: %v", path, want, err)
	}
	messages, err := soleKey(v, "messages", HistoryType, want, path)
	if err != nil {
		return reflect.Value{}, err
	}
	list := Type{Kind: List, Elem: &Type{Kind: Dict, Key: &Type{Kind: Str}, Elem: &Type{Kind: Any}}}
	out, err := list.convert(messages, path+".messages", conv{filled: new(int)})
	if err != nil {
		return reflect.Value{}, err
	}
	items := make([]any, out.Len())
	for i := range items {
		items[i] = out.Index(i).Interface()
	}
	return reflect.ValueOf(map[string]any{"messages": items}), nil
}

// structAsJSON takes a Go struct (dspgo.History, dspgo.Image, dspgo.File,
// dspgo.Audio) as the value
// of its JSON encoding; any other value is returned as it is, indirected.
func structAsJSON(v reflect.Value) (reflect.Value, error) {
	v = indirect(v)
	if !v.IsValid() || v.Kind() != reflect.Struct {
		return v, nil
	}
	data, err := json.Marshal(v.Interface())
	if err != nil {
		return reflect.Value{}, err
	}
	decoded, _ := decodeJSON(data) // json.Marshal wrote one JSON value
	return reflect.ValueOf(decoded), nil
}

// soleKey returns the value of key in v, an object whose one key it must
// be (of a value of type typ); want says what was expected.
func soleKey(v reflect.Value, key, typ, want, path string) (reflect.Value, error) {
	if !v.IsValid() || v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.String {
		if !v.IsValid() || v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
			return reflect.Value{}, fmt.Errorf("%s: %s, got null", path, want)
		}
		return reflect.Value{}, fmt.Errorf("%s: %s, got %s", path, want, describe(v))
	}
	keys := v.MapKeys()
	slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
	var value reflect.Value
	for _, k := range keys {
		if k.String() != key {
			return reflect.Value{}, fmt.Errorf("%s: %q is not a key of a %s (its one key is %q)", path, k.String(), typ, key)
		}
		value = v.MapIndex(k)
	}
	if !value.IsValid() {
		return reflect.Value{}, fmt.Errorf("%s: %s, got an object without %q", path, want, key)
	}
	return value, nil
}
