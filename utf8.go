package dspgo

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// checkUTF8 returns the path of the first string of inputs (a value or a
// map key, at any depth) that is not valid UTF-8, and what it is (`string
// "…"`, `key "…"`); "" when every string is UTF-8. Encoding such a string as JSON would replace its
// bad bytes with U+FFFD without a word, and the program would run on
// another text than the caller's. The walk allocates only when it finds
// one: the path is made on the way back.
func checkUTF8(inputs map[string]any) (path, bad string) {
	for name, v := range inputs {
		if !utf8.ValidString(name) {
			return "inputs", describeBad("key", name)
		}
		if b := badString(v, 0); b != nil {
			return "input " + name + b.path(), b.what
		}
	}
	return "", ""
}

// checkSpecUTF8 is checkUTF8 for what a spec holds as text: its
// instructions, module, fields (names, types, descriptions), state and
// demos (label "demo"; an example's "devset example"…, for checkExamples).
func checkSpecUTF8(spec ProgramSpec) (path, bad string) {
	texts := []struct{ path, s string }{{"instructions", spec.Instructions}, {"module", spec.Module}, {"state", string(spec.State)}}
	for side, fields := range map[string][]Field{"input": spec.Signature.Inputs, "output": spec.Signature.Outputs} {
		for i, f := range fields {
			at := fmt.Sprintf("%s field %d ", side, i)
			texts = append(texts, struct{ path, s string }{at + "name", f.Name}, struct{ path, s string }{at + "type", f.Type},
				struct{ path, s string }{at + "description", f.Description})
		}
	}
	for _, t := range texts {
		if !utf8.ValidString(t.s) {
			return t.path, describeBad("text", t.s)
		}
	}
	return checkDemosUTF8(spec.Demos, "demo")
}

// checkDemosUTF8 is checkUTF8 for demos (or examples, by label): their
// inputs, outputs and reasoning.
func checkDemosUTF8(demos []Demo, label string) (path, bad string) {
	for i, d := range demos {
		at := fmt.Sprintf("%s %d: ", label, i)
		for side, values := range map[string]map[string]any{"input": d.Inputs, "output": d.Outputs} {
			for name, v := range values {
				if !utf8.ValidString(name) {
					return at + side + "s", describeBad("key", name)
				}
				if b := badString(v, 0); b != nil {
					return at + side + " " + name + b.path(), b.what
				}
			}
		}
		if !utf8.ValidString(d.Reasoning) {
			return at + "reasoning", describeBad("string", d.Reasoning)
		}
	}
	return "", ""
}

// notUTF8 is a string found not valid UTF-8 in a value: what it is, and
// the steps from the value to it (`[3]`, `["key"]`), innermost first, as
// the walk returns through them.
type notUTF8 struct {
	what  string
	steps []string
}

// at adds the step the walk returns through.
func (b *notUTF8) at(step string) *notUTF8 {
	b.steps = append(b.steps, step)
	return b
}

// path returns the steps from the value to the string, outermost first.
func (b *notUTF8) path() string {
	var sb strings.Builder
	for i := len(b.steps) - 1; i >= 0; i-- {
		sb.WriteString(b.steps[i])
	}
	return sb.String()
}

// maxUTF8Depth stops the walk of values nested deeper than any that
// converts (and of values that contain themselves).
const maxUTF8Depth = 256

// badString returns the first string in v that is not valid UTF-8, or
// nil.
func badString(v any, depth int) *notUTF8 {
	if depth > maxUTF8Depth {
		return nil
	}
	// The types inputs usually have, without reflection.
	switch v := v.(type) {
	case nil, bool, int, int64, float64:
		return nil
	case string:
		if !utf8.ValidString(v) {
			return &notUTF8{what: describeBad("string", v)}
		}
		return nil
	case []string:
		for i, s := range v {
			if !utf8.ValidString(s) {
				return (&notUTF8{what: describeBad("string", s)}).at(index(i))
			}
		}
		return nil
	case []any:
		for i, e := range v {
			if b := badString(e, depth+1); b != nil {
				return b.at(index(i))
			}
		}
		return nil
	case map[string]any:
		for k, e := range v {
			if b := badKeyOrValue(k, e, depth); b != nil {
				return b
			}
		}
		return nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return badString(rv.String(), depth)
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return badString(rv.Elem().Interface(), depth+1)
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return nil // bytes are not text; conversion refuses them
		}
		for i := range rv.Len() {
			if b := badString(rv.Index(i).Interface(), depth+1); b != nil {
				return b.at(index(i))
			}
		}
	case reflect.Map:
		iter := rv.MapRange()
		for iter.Next() {
			k := iter.Key()
			if k.Kind() != reflect.String {
				continue // conversion refuses keys that are not strings
			}
			if b := badKeyOrValue(k.String(), iter.Value().Interface(), depth); b != nil {
				return b
			}
		}
	}
	return nil
}

// badKeyOrValue returns a map's key k when it is not valid UTF-8 (at the
// map's own path), else the first string of its value v that is not.
func badKeyOrValue(k string, v any, depth int) *notUTF8 {
	if !utf8.ValidString(k) {
		return &notUTF8{what: describeBad("key", k)}
	}
	if b := badString(v, depth+1); b != nil {
		return b.at("[" + strconv.Quote(k) + "]")
	}
	return nil
}

// index is the step to element i of a list.
func index(i int) string { return "[" + strconv.Itoa(i) + "]" }

// describeBad says what is not UTF-8: `string "…"` or `key "…"`, with
// the bad bytes escaped.
func describeBad(what, s string) string {
	if len(s) > 40 {
		return what + " " + strconv.Quote(s[:40]) + "…"
	}
	return what + " " + strconv.Quote(s)
}
