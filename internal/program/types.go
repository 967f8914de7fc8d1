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
	"strconv"
	"strings"

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
)

// Type is a parsed field type: "str", "int", "float", "bool", "list[T]",
// "dict[str, T]" or "Literal['a', 'b']".
type Type struct {
	Kind Kind
	// Elem is the element type of a list or the value type of a dict.
	Elem *Type
	// Values are a Literal's allowed strings, in declared order.
	Values []string
}

// String returns the type's canonical form, the one hashed: "list[str]",
// "dict[str, int]", "Literal['a', 'b']".
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
	case List:
		return "list[" + t.Elem.String() + "]"
	case Dict:
		return "dict[str, " + t.Elem.String() + "]"
	case Literal:
		quoted := make([]string, len(t.Values))
		for i, v := range t.Values {
			quoted[i] = "'" + v + "'"
		}
		return "Literal[" + strings.Join(quoted, ", ") + "]"
	}
	return fmt.Sprintf("Kind(%d)", int(t.Kind))
}

// ParseType parses a type written as in a DSPy signature. Spaces around
// brackets and commas are allowed; an empty string is "str".
func ParseType(s string) (Type, error) {
	p := typeParser{s: s}
	p.space()
	if p.done() {
		return Type{Kind: Str}, nil
	}
	t, err := p.parse(0)
	if err != nil {
		return Type{}, err
	}
	p.space()
	if !p.done() {
		return Type{}, fmt.Errorf("unexpected %q after the type in %q", p.s[p.i:], s)
	}
	return t, nil
}

const maxTypeDepth = 16

type typeParser struct {
	s string
	i int
}

func (p *typeParser) done() bool { return p.i >= len(p.s) }

func (p *typeParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
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

func (p *typeParser) parse(depth int) (Type, error) {
	if depth > maxTypeDepth {
		return Type{}, fmt.Errorf("type %q nests more than %d levels", p.s, maxTypeDepth)
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
	case "list", "List":
		return p.container(List, depth)
	case "dict", "Dict":
		return p.container(Dict, depth)
	case "Literal", "typing.Literal":
		return p.literal()
	case "":
		return Type{}, fmt.Errorf("expected a type at position %d of %q", p.i, p.s)
	}
	return Type{}, fmt.Errorf("unknown type %q in %q (known: str, int, float, bool, list[T], dict[str, T], Literal['a', ...])", name, p.s)
}

// container parses the bracketed part of list[T] or dict[str, T].
func (p *typeParser) container(kind Kind, depth int) (Type, error) {
	if err := p.expect('['); err != nil {
		return Type{}, err
	}
	if kind == Dict {
		if key := p.word(); key != "str" {
			return Type{}, fmt.Errorf("dict keys must be str, not %q, in %q", key, p.s)
		}
		if err := p.expect(','); err != nil {
			return Type{}, err
		}
	}
	elem, err := p.parse(depth + 1)
	if err != nil {
		return Type{}, err
	}
	if err := p.expect(']'); err != nil {
		return Type{}, err
	}
	return Type{Kind: kind, Elem: &elem}, nil
}

func (p *typeParser) literal() (Type, error) {
	if err := p.expect('['); err != nil {
		return Type{}, err
	}
	t := Type{Kind: Literal}
	seen := map[string]bool{}
	for {
		p.space()
		if p.done() || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
			return Type{}, fmt.Errorf("values of a Literal must be quoted strings in %q", p.s)
		}
		quote := p.s[p.i]
		end := strings.IndexByte(p.s[p.i+1:], quote)
		if end < 0 {
			return Type{}, fmt.Errorf("unterminated value of a Literal in %q", p.s)
		}
		v := p.s[p.i+1 : p.i+1+end]
		if strings.ContainsAny(v, `'"\`) {
			return Type{}, fmt.Errorf("value %q of a Literal may not contain quotes or backslashes", v)
		}
		if seen[v] {
			return Type{}, fmt.Errorf("value %q appears twice in the Literal %q", v, p.s)
		}
		seen[v] = true
		t.Values = append(t.Values, v)
		p.i += end + 2
		p.space()
		if !p.done() && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if err := p.expect(']'); err != nil {
			return Type{}, err
		}
		return t, nil
	}
}

func isIdentByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// GoType is the Go type values of t convert to: string, int64, float64,
// bool, []T and map[string]T.
func (t Type) GoType() reflect.Type {
	switch t.Kind {
	case Int:
		return reflect.TypeFor[int64]()
	case Float:
		return reflect.TypeFor[float64]()
	case Bool:
		return reflect.TypeFor[bool]()
	case List:
		return reflect.SliceOf(t.Elem.GoType())
	case Dict:
		return reflect.MapOf(reflect.TypeFor[string](), t.Elem.GoType())
	}
	return reflect.TypeFor[string]()
}

// Convert returns v as a value of t's GoType, or an error that names path
// and says what was expected. v may be a Go value of any matching kind
// (any integer or float type, slices, arrays, maps with string keys) or a
// value decoded from JSON (json.Number included).
func (t Type) Convert(v any, path string) (any, error) {
	rv, err := t.convert(reflect.ValueOf(v), path)
	if err != nil {
		return nil, err
	}
	return rv.Interface(), nil
}

func (t Type) convert(v reflect.Value, path string) (reflect.Value, error) {
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			break
		}
		v = v.Elem()
	}
	bad := func(why string) (reflect.Value, error) {
		return reflect.Value{}, fmt.Errorf("%s: %s", path, why)
	}
	if !v.IsValid() || (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		return bad(fmt.Sprintf("expected %s, got null", t))
	}
	got := describe(v)
	switch t.Kind {
	case Str, Literal:
		if v.Kind() != reflect.String || v.Type() == reflect.TypeFor[json.Number]() {
			return bad(fmt.Sprintf("expected %s, got %s", t, got))
		}
		s := v.String()
		if t.Kind == Literal && !contains(t.Values, s) {
			return bad(fmt.Sprintf("%q is not one of %s", s, t))
		}
		return reflect.ValueOf(s), nil
	case Bool:
		if v.Kind() != reflect.Bool {
			return bad(fmt.Sprintf("expected bool, got %s", got))
		}
		return reflect.ValueOf(v.Bool()), nil
	case Int:
		n, ok := toInt(v)
		if !ok {
			return bad(fmt.Sprintf("expected int, got %s", got))
		}
		return reflect.ValueOf(n), nil
	case Float:
		f, ok := toFloat(v)
		if !ok {
			return bad(fmt.Sprintf("expected float, got %s", got))
		}
		return reflect.ValueOf(f), nil
	case List:
		if v.Kind() != reflect.Slice && v.Kind() != reflect.Array || v.Type() == reflect.TypeFor[[]byte]() {
			return bad(fmt.Sprintf("expected %s, got %s", t, got))
		}
		out := reflect.MakeSlice(t.GoType(), v.Len(), v.Len())
		for i := range v.Len() {
			e, err := t.Elem.convert(v.Index(i), path+"["+strconv.Itoa(i)+"]")
			if err != nil {
				return reflect.Value{}, err
			}
			out.Index(i).Set(e)
		}
		return out, nil
	case Dict:
		if v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.String {
			return bad(fmt.Sprintf("expected %s, got %s", t, got))
		}
		out := reflect.MakeMapWithSize(t.GoType(), v.Len())
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key().String()
			e, err := t.Elem.convert(iter.Value(), path+"["+strconv.Quote(k)+"]")
			if err != nil {
				return reflect.Value{}, err
			}
			out.SetMapIndex(reflect.ValueOf(k), e)
		}
		return out, nil
	}
	return bad("unsupported type " + t.String())
}

func describe(v reflect.Value) string {
	switch {
	case v.Type() == reflect.TypeFor[json.Number]():
		return "number " + v.String()
	case v.Kind() == reflect.String:
		s := v.String()
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return "string " + strconv.Quote(s)
	case v.Kind() == reflect.Map:
		return "object"
	case v.Kind() == reflect.Slice || v.Kind() == reflect.Array:
		return "array"
	}
	return v.Type().String()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
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
