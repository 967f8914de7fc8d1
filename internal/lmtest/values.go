package lmtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
)

// Value returns the value the server answers for an output field named field
// of type typ (spelled as DSPy or dspgo write it: "str", "list[int]",
// "dict[str, float]", "Literal['a', 'b']", "Optional[int]", "int | None",
// "Union[int, NoneType]", "tuple[int, str]", "Any"...), by the rule in the
// package documentation. Ints are int, floats float64, lists and tuples
// []any, dicts and objects map[string]any, None nil. Unknown type names are
// str; only a malformed type string (unbalanced brackets, an unterminated
// quote) is an error.
func Value(field, typ string) (any, error) {
	t, err := parseTypeString(typ)
	if err != nil {
		return nil, err
	}
	return valueOf(field, t), nil
}

// ValueFromSchema returns the value the server answers for a field named
// field whose type is given by a JSON schema (a response_format property, a
// tool's argument, a pydantic model), by the rule in the package
// documentation. The arguments the server gives a tool are
// ValueFromSchema("", schema) for the tool's object schema: each argument
// then takes its own name.
func ValueFromSchema(field string, schema []byte) (any, error) {
	t, err := parseSchema(schema)
	if err != nil {
		return nil, err
	}
	return valueOf(field, t), nil
}

// NameHash is the hash the value rule draws from: 64-bit FNV-1a of the
// name's UTF-8 bytes.
func NameHash(name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return h.Sum64()
}

// valueOf applies the value rule of the package documentation.
func valueOf(name string, t *fieldType) any {
	h := NameHash(name)
	switch t.kind {
	case kindInt:
		return int(1 + h%100)
	case kindFloat:
		cents := h % 10000
		if cents%100 == 0 {
			cents++
		}
		return float64(cents) / 100
	case kindBool:
		return h%2 == 0
	case kindNone:
		return nil
	case kindDate:
		return dateOf(h).Format(time.DateOnly)
	case kindDateTime:
		return dateOf(h).Add(time.Duration(h%86400) * time.Second).Format("2006-01-02T15:04:05Z")
	case kindLiteral:
		if len(t.choices) == 0 {
			return strValue(name, h)
		}
		if n, ok := t.choices[0].(int64); ok {
			return int(n)
		}
		return t.choices[0]
	case kindList:
		return []any{valueOf(childName(name, 0), t.elem), valueOf(childName(name, 1), t.elem)}
	case kindTuple:
		out := make([]any, len(t.items))
		for i, item := range t.items {
			out[i] = valueOf(childName(name, i), item)
		}
		return out
	case kindDict:
		out := map[string]any{}
		for i := range 2 {
			child := childName(name, i)
			key := fmt.Sprintf("key%d", i)
			if t.key.kind != kindStr && t.key.kind != kindAny {
				key = literalText(valueOf(child, t.key))
			}
			if _, dup := out[key]; !dup {
				out[key] = valueOf(child, t.elem)
			}
		}
		return out
	case kindObject:
		out := make(map[string]any, len(t.props))
		for _, p := range t.props {
			child := p.name
			if name != "" {
				child = name + "." + p.name
			}
			out[p.name] = valueOf(child, p.typ)
		}
		return out
	}
	return strValue(name, h) // str, Any, unknown names
}

// dateOf is the day a value of a date or datetime field draws: 2000-01-01
// plus h % 36525 days.
func dateOf(h uint64) time.Time {
	return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(h%36525))
}

func childName(name string, i int) string { return fmt.Sprintf("%s[%d]", name, i) }

func strValue(name string, h uint64) string {
	if name == "" {
		name = "value"
	}
	return fmt.Sprintf("%s %04x %04x", name, h&0xffff, (h>>16)&0xffff)
}

// marshal is JSON without HTML escaping and without a trailing newline.
func marshal(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// valueText is how a value is written in a [[ ## field ## ]] section: a str
// field's string (or a Literal's string member) as it is, anything else as
// JSON.
func valueText(v any, t *fieldType) string {
	if s, ok := v.(string); ok && (t.kind == kindStr || t.kind == kindLiteral || t.kind == kindDate || t.kind == kindDateTime) {
		return s
	}
	return marshal(v)
}
