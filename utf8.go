package dspgo

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// checkInputs returns the path of the first value of inputs that cannot
// be sent as it is, and what is wrong with it (checkValue); "" when every
// one can. An input's name that is not valid UTF-8 cannot either.
// Encoding a string that is not valid UTF-8 as JSON would replace its bad
// bytes with U+FFFD without a word, and the program would run on another
// text than the caller's.
func checkInputs(inputs map[string]any) (path, problem string) {
	for name, v := range inputs {
		if !utf8.ValidString(name) {
			return "inputs", describeBad("key", name) + notUTF8
		}
		if b := checkValue(v); b != nil {
			return "input " + name + b.path(), b.what
		}
	}
	return "", ""
}

// checkSpecValues is checkInputs for what a spec holds: its
// instructions, module and state as text; its fields' and its models'
// names, types and descriptions as text and their defaults as values;
// and its demos (label "demo") as values.
func checkSpecValues(spec ProgramSpec) (path, problem string) {
	type text struct{ path, s string }
	type value struct {
		path string
		v    any
	}
	texts := []text{{"instructions", spec.Instructions}, {"module", spec.Module}, {"state", string(spec.State)},
		{"step_instructions", spec.StepInstructions}}
	var defaults []value
	addFields := func(side string, fields []Field) {
		for i, f := range fields {
			at := fmt.Sprintf("%s field %d ", side, i)
			texts = append(texts, text{at + "name", f.Name}, text{at + "type", f.Type}, text{at + "description", f.Description})
			defaults = append(defaults, value{at + "default", f.Default})
		}
	}
	addFields("input", spec.Signature.Inputs)
	addFields("output", spec.Signature.Outputs)
	for i, m := range spec.Signature.Models {
		at := fmt.Sprintf("model %d", i)
		texts = append(texts, text{at + " name", m.Name}, text{at + " description", m.Description})
		addFields(at, m.Fields)
	}
	for _, t := range texts {
		if !utf8.ValidString(t.s) {
			return t.path, describeBad("text", t.s) + notUTF8
		}
	}
	for _, d := range defaults {
		if b := checkValue(d.v); b != nil {
			return d.path + b.path(), b.what
		}
	}
	if path, problem := checkDemoValues(spec.Demos, "demo"); path != "" {
		return path, problem
	}
	return checkDemoValues(spec.StepDemos, "step demo")
}

// checkDemoValues is checkInputs for demos (or examples, by label): their
// inputs, outputs, reasoning and trajectory.
func checkDemoValues(demos []Demo, label string) (path, problem string) {
	for i, d := range demos {
		at := fmt.Sprintf("%s %d: ", label, i)
		for side, values := range map[string]map[string]any{"input": d.Inputs, "output": d.Outputs} {
			for name, v := range values {
				if !utf8.ValidString(name) {
					return at + side + "s", describeBad("key", name) + notUTF8
				}
				if b := checkValue(v); b != nil {
					return at + side + " " + name + b.path(), b.what
				}
			}
		}
		if !utf8.ValidString(d.Reasoning) {
			return at + "reasoning", describeBad("string", d.Reasoning) + notUTF8
		}
		if d.Trajectory != nil && !utf8.ValidString(*d.Trajectory) {
			return at + "trajectory", describeBad("string", *d.Trajectory) + notUTF8
		}
	}
	return "", ""
}

// notUTF8 ends what is said of a string that is not valid UTF-8.
const notUTF8 = " is not valid UTF-8"

// maxWalkDepth is how deep checkValue walks a value: the lists, maps,
// structs and pointers it nests. A value nested deeper cannot be sent: a
// frame nests at most 128 levels (docs/protocol.md, "Frames").
const maxWalkDepth = 256

// maxWalkValues is how many JSON values a value may hold as it would be
// encoded: each null, bool, number, string, list and object, a map, list
// or pointer the value reaches more than once counted each time, as
// encoding/json would write it each time. It is twice what a frame of
// the default limit (16 MiB) can hold, each value taking at least 2 bytes.
const maxWalkValues = 1 << 24

// quickWalkSteps is how many steps checkValue's first walk takes. That
// walk tracks nothing, so allocates nothing; a value that needs more
// steps, or nests deeper than maxWalkDepth, is walked a second time,
// which walks each map, list and pointer once.
const quickWalkSteps = 1 << 12

// badValue is what is wrong with a value, and where.
type badValue struct {
	// what is wrong: `string "…" is not valid UTF-8`, ….
	what string
	// steps lead from the value to where it is wrong (`[3]`, `["key"]`),
	// innermost first, as the walk returns through them.
	steps []string
	// whole is set when what is wrong is said of the whole value: no
	// steps are kept.
	whole bool
}

// at adds the step the walk returns through.
func (b *badValue) at(step string) *badValue {
	if !b.whole {
		b.steps = append(b.steps, step)
	}
	return b
}

// path returns the steps from the value to where it is wrong, outermost
// first.
func (b *badValue) path() string {
	var sb strings.Builder
	for i := len(b.steps) - 1; i >= 0; i-- {
		sb.WriteString(b.steps[i])
	}
	return sb.String()
}

// checkValue returns what makes v unfit to send as JSON, or nil: a string
// that is not valid UTF-8 (a value or a map key, at any depth, a struct's
// exported fields included, as they encode); a value that holds itself
// (a cycle), which JSON cannot encode; a value nested deeper than
// maxWalkDepth; or one that would encode to more than maxWalkValues JSON
// values, as a value of 40 maps, each holding the one below twice, would
// (2^40). Its steps are no more than v's size in memory (the second walk
// walks each map, list and pointer once) nor, but for the first walk's,
// than the values v encodes to, up to maxWalkValues. The first walk of
// the types inputs usually have (strings, numbers, []string, []any,
// map[string]any, History) allocates nothing but the path of what it
// finds unfit, made on the way back.
func checkValue(v any) *badValue {
	w := walker{left: quickWalkSteps}
	if _, b := w.value(v, 0); b != nil || !w.gaveUp {
		return b
	}
	w = walker{seen: map[ref]int{}}
	_, b := w.reflected(reflect.ValueOf(v), 0)
	return b
}

// walker walks a value for checkValue, first without tracking what it
// walks (seen nil) and then, when that gives up, tracking it.
type walker struct {
	// left is the first walk's steps left.
	left int
	// gaveUp is set when the first walk ran out of steps or nested deeper
	// than maxWalkDepth.
	gaveUp bool
	// seen is the second walk's: the size of each map, list and pointer
	// walked (in JSON values, at least 1), onPath while it is being walked.
	seen map[ref]int
}

// ref is what a value may reach more than once: a map, a list (a slice's
// array and length) or a pointer.
type ref struct {
	p any // its unsafe.Pointer
	n int // a slice's length
	t reflect.Type
}

// onPath marks in walker.seen a ref whose walk has not returned.
const onPath = 0

// step takes one step of the first walk at depth; false when the walk
// gives up.
func (w *walker) step(n, depth int) bool {
	if w.left -= n; w.left < 0 || depth > maxWalkDepth {
		w.gaveUp = true
	}
	return !w.gaveUp
}

// value walks v at depth and returns its size in JSON values (the first
// walk's is not exact). The types inputs usually have are walked without
// reflection in the first walk.
func (w *walker) value(v any, depth int) (int, *badValue) {
	if w.seen != nil {
		return w.reflected(reflect.ValueOf(v), depth)
	}
	switch v := v.(type) {
	case nil, bool, int, int64, float64:
		w.step(1, depth)
		return 1, nil
	case string:
		w.step(1, depth)
		return 1, badText("string", v)
	case []string:
		if !w.step(1+len(v), depth) {
			return 0, nil
		}
		for i, s := range v {
			if b := badText("string", s); b != nil {
				return 0, b.at(index(i))
			}
		}
		return 1 + len(v), nil
	case []any:
		if !w.step(1, depth) {
			return 0, nil
		}
		n := 1
		for i, e := range v {
			m, b := w.value(e, depth+1)
			if b != nil {
				return 0, b.at(index(i))
			}
			if w.gaveUp {
				return 0, nil
			}
			n += m
		}
		return n, nil
	case map[string]any:
		if !w.step(1, depth) {
			return 0, nil
		}
		n := 1
		for k, e := range v {
			if b := badText("key", k); b != nil {
				return 0, b
			}
			m, b := w.value(e, depth+1)
			if b != nil {
				return 0, b.at(key(k))
			}
			if w.gaveUp {
				return 0, nil
			}
			n += m
		}
		return n, nil
	case History:
		return w.history(v, depth)
	case *History:
		if v == nil {
			break
		}
		if !w.step(1, depth) {
			return 0, nil
		}
		return w.history(*v, depth+1)
	}
	return w.reflected(reflect.ValueOf(v), depth)
}

// history is value for a History in the first walk: an object of one
// list of messages.
func (w *walker) history(h History, depth int) (int, *badValue) {
	if !w.step(2, depth+1) {
		return 0, nil
	}
	n := 2
	for i, m := range h.Messages {
		k, b := w.value(m, depth+2)
		if b != nil {
			return 0, b.at(index(i)).at(key("messages"))
		}
		if w.gaveUp {
			return 0, nil
		}
		n += k
	}
	return n, nil
}

// reflected is value for any value, by reflection. It never calls
// Interface, which panics on what an unexported field holds.
func (w *walker) reflected(v reflect.Value, depth int) (int, *badValue) {
	if w.seen == nil {
		if !w.step(1, depth) {
			return 0, nil
		}
	} else if depth > maxWalkDepth {
		return 0, &badValue{what: fmt.Sprintf("the value nests more than %d levels", maxWalkDepth), whole: true}
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return 1, nil
		}
		w.left++ // the first walk's: the value it holds takes the step
		return w.reflected(v.Elem(), depth)
	case reflect.String:
		return 1, badText("string", v.String())
	case reflect.Pointer:
		if v.IsNil() {
			return 1, nil
		}
		return w.shared(ref{p: v.UnsafePointer(), t: v.Type()}, v, depth)
	case reflect.Map:
		if v.Len() == 0 {
			return 1, nil
		}
		return w.shared(ref{p: v.UnsafePointer(), t: v.Type()}, v, depth)
	case reflect.Slice:
		if v.Type() == rawMessageType && !utf8.Valid(v.Bytes()) {
			return 0, &badValue{what: describeBad("JSON text", string(v.Bytes())) + notUTF8}
		}
		if v.Len() == 0 || v.Type().Elem().Kind() == reflect.Uint8 {
			return 1, nil // bytes are not text (conversion refuses them), or JSON text, its size bounded by its length
		}
		return w.shared(ref{p: v.UnsafePointer(), n: v.Len(), t: v.Type()}, v, depth)
	case reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return 1, nil
		}
		return w.inside(v, depth)
	case reflect.Struct:
		return w.inside(v, depth)
	}
	return 1, nil
}

// shared walks inside v, a map, a slice or a pointer that r identifies:
// in the second walk once, its size remembered, and a cycle when it is
// reached again from inside.
func (w *walker) shared(r ref, v reflect.Value, depth int) (int, *badValue) {
	if w.seen == nil {
		return w.inside(v, depth)
	}
	if n, ok := w.seen[r]; ok {
		if n == onPath {
			return 0, &badValue{what: "the value holds itself (a cycle), which JSON cannot encode"}
		}
		return n, nil
	}
	w.seen[r] = onPath
	n, b := w.inside(v, depth)
	if b == nil {
		w.seen[r] = n
	}
	return n, b
}

// inside walks what v holds: a pointer's element, a list's elements, a
// map's keys and values, a struct's fields as encoding/json encodes them.
func (w *walker) inside(v reflect.Value, depth int) (int, *badValue) {
	if v.Kind() == reflect.Pointer {
		return w.reflected(v.Elem(), depth+1) // a pointer is not a value of its own
	}
	n := 1
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			m, b := w.reflected(v.Index(i), depth+1)
			if b != nil {
				return 0, b.at(index(i))
			}
			if n, b = addValues(n, m); b != nil || w.gaveUp {
				return 0, b
			}
		}
	case reflect.Map:
		var iter reflect.MapIter
		iter.Reset(v)
		for iter.Next() {
			k := iter.Key()
			if k.Kind() == reflect.String {
				if b := badText("key", k.String()); b != nil {
					return 0, b
				}
			}
			m, b := w.reflected(iter.Value(), depth+1)
			if b != nil {
				return 0, b.at(keyStep(k))
			}
			if n, b = addValues(n, m); b != nil || w.gaveUp {
				return 0, b
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			name, ok := jsonKey(t.Field(i))
			if !ok {
				continue
			}
			m, b := w.reflected(v.Field(i), depth+1)
			if b != nil {
				if name != "" {
					b.at(key(name))
				}
				return 0, b
			}
			if name == "" {
				m-- // an embedded struct's fields are in v's object; a nil one is left out
			}
			if n, b = addValues(n, m); b != nil || w.gaveUp {
				return 0, b
			}
		}
	}
	return n, nil
}

// addValues adds m, the JSON values of a part of a value, to n, those of
// the value so far, refusing the value when they are more than
// maxWalkValues.
func addValues(n, m int) (int, *badValue) {
	if n += m; n > maxWalkValues {
		return 0, &badValue{what: fmt.Sprintf("the value would encode as more than %d JSON values "+
			"(a map, list or pointer it reaches more than once counted each time)", maxWalkValues), whole: true}
	}
	return n, nil
}

// jsonKey returns the key encoding/json writes a struct's field under:
// its tag's name, else its name; "" for an embedded struct, whose fields
// it writes in the struct's own object; false for a field it leaves out
// (unexported, or tagged "-").
func jsonKey(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false
	}
	name, _, _ := strings.Cut(tag, ",")
	if f.Anonymous && name == "" {
		t := f.Type
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() == reflect.Struct {
			return "", true
		}
	}
	if !f.IsExported() {
		return "", false
	}
	if name == "" {
		name = f.Name
	}
	return name, true
}

// badText returns s when it is not valid UTF-8, as what, else nil.
func badText(what, s string) *badValue {
	if utf8.ValidString(s) {
		return nil
	}
	return &badValue{what: describeBad(what, s) + notUTF8}
}

// index is the step to element i of a list.
func index(i int) string { return "[" + strconv.Itoa(i) + "]" }

// key is the step to a map's or an object's key k.
func key(k string) string { return "[" + strconv.Quote(k) + "]" }

// keyStep is the step to a map's key k, written as its JSON text.
func keyStep(k reflect.Value) string {
	switch {
	case k.Kind() == reflect.String:
		return key(k.String())
	case k.CanInt():
		return key(strconv.FormatInt(k.Int(), 10))
	case k.CanUint():
		return key(strconv.FormatUint(k.Uint(), 10))
	}
	return "[" + fmt.Sprint(k) + "]"
}

// describeBad says what is not UTF-8: `string "…"` or `key "…"`, with
// the bad bytes escaped.
func describeBad(what, s string) string {
	if len(s) > 40 {
		return what + " " + strconv.Quote(s[:40]) + "…"
	}
	return what + " " + strconv.Quote(s)
}
