package program

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/dspgo/dspgo/command"
)

// constraintKinds are what the value of each of pydantic's constraints
// that DSPy 3.4.1 shows takes ("number", "length" or "bool"), by name
// (dspy.signatures.field's PYDANTIC_CONSTRAINT_MAP; its words for them
// are the worker's to write).
var constraintKinds = map[string]string{
	"gt": "number", "ge": "number", "lt": "number", "le": "number",
	"min_length": "length", "max_length": "length",
	"multiple_of": "number", "allow_inf_nan": "bool",
}

// IsConstraint reports whether name is one of the constraints a field
// takes ("ge", "max_length", …; see command.Constraint).
func IsConstraint(name string) bool {
	_, ok := constraintKinds[name]
	return ok
}

// constraintNames lists the constraints in DSPy's order, for errors.
const constraintNames = "gt, ge, lt, le, min_length, max_length, multiple_of, allow_inf_nan"

// jsonNumber is a JSON number's text.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// normalizeConstraints checks a signature field's constraints (field
// names it: "output field \"score\"") and returns them with each value
// as the text Python prints for it; nil when there are none. The Python
// worker keeps the same rules and messages (protocol/testdata/constraints.json).
func normalizeConstraints(cs []command.Constraint, t Type, field string) ([]command.Constraint, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	out := make([]command.Constraint, len(cs))
	for i, c := range cs {
		kind, ok := constraintKinds[c.Name]
		if !ok {
			return nil, invalid("%s: constraint %q is unknown (known: %s)", field, c.Name, constraintNames)
		}
		for _, prev := range out[:i] {
			if prev.Name == c.Name {
				return nil, invalid("%s: constraint %q is given twice", field, c.Name)
			}
		}
		text, err := constraintText(kind, reflect.ValueOf(c.Value))
		if err == nil {
			err = constraintApplies(c.Name, text, t)
		}
		if err != nil {
			return nil, invalid("%s: constraint %q: %v", field, c.Name, err)
		}
		out[i] = command.Constraint{Name: c.Name, Value: text}
	}
	return out, nil
}

// constraintText is v as Python prints the value of a constraint that
// takes want ("number", "length" or "bool"). A number is an int or a
// float, as Python reads it from JSON: a Go integer or the text of a
// JSON number without a fraction or exponent is an int, any other
// number a float (a length's integral float an int); a bool is a Go
// bool or its normalized text, "True" or "False".
func constraintText(want string, v reflect.Value) (string, error) {
	v = indirect(v)
	expected := func(got string) error { return fmt.Errorf("expected %s, got %s", constraintWant[want], got) }
	if !v.IsValid() || v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		return "", expected("null")
	}
	if want == "bool" || v.Kind() == reflect.Bool {
		switch {
		case want == "bool" && v.Kind() == reflect.String && (v.String() == "True" || v.String() == "False"):
			return v.String(), nil // normalized already
		case want != "bool" || v.Kind() != reflect.Bool:
			return "", expected(describe(v))
		case v.Bool():
			return "True", nil
		}
		return "False", nil
	}
	var (
		n       int64
		f       float64
		isFloat bool
	)
	switch k := v.Kind(); {
	case isInteger(k):
		var ok bool
		if n, ok = toInt(v); !ok {
			return "", expected(describe(v))
		}
	case k == reflect.Float32 || k == reflect.Float64:
		f, isFloat = v.Float(), true
	case k == reflect.String && jsonNumber.MatchString(v.String()):
		s := v.String()
		var err error
		if !strings.ContainsAny(s, ".eE") {
			if n, err = strconv.ParseInt(s, 10, 64); err != nil {
				return "", expected("number " + s + ", beyond int64")
			}
			break
		}
		if f, err = strconv.ParseFloat(s, 64); err != nil {
			if v.Type() == reflect.TypeFor[json.Number]() {
				// Python reads the JSON number as an infinite float.
				return "", expected("number " + map[bool]string{false: "Infinity", true: "-Infinity"}[strings.HasPrefix(s, "-")])
			}
			return "", expected("number " + s + ", beyond a float")
		}
		isFloat = true
	default:
		return "", expected(describe(v))
	}
	if isFloat {
		switch {
		case math.IsInf(f, 0) || math.IsNaN(f):
			return "", expected(describe(v))
		case want == "length" && f == math.Trunc(f) && math.Abs(f) < 1<<53:
			n, isFloat = int64(f), false
		case want == "length":
			return "", expected(FloatRepr(f))
		default:
			return FloatRepr(f), nil
		}
	}
	if want == "length" && n < 0 {
		return "", expected(strconv.FormatInt(n, 10))
	}
	return strconv.FormatInt(n, 10), nil
}

// constraintApplies checks the rules pydantic applies when DSPy builds
// the signature (and refuses the class otherwise), for a constraint of
// that name with the normalized value text on a field of type t: an int
// field's bounds and multiple are integers, a date field takes no
// numeric bound, and allow_inf_nan=True is for a float field (each in an
// Optional too). pydantic ignores other constraints that do not apply to
// a type, and so does DSPy.
func constraintApplies(name, text string, t Type) error {
	if t.Kind == Optional {
		t = *t.Elem
	}
	bound := name == "gt" || name == "ge" || name == "lt" || name == "le"
	switch {
	case t.Kind == Int && (bound || name == "multiple_of"):
		if f, err := strconv.ParseFloat(text, 64); err == nil && f != math.Trunc(f) {
			return fmt.Errorf("an int field's is an integer (pydantic's rule), got %s", text)
		}
	case t.Kind == Date && bound:
		return fmt.Errorf("a %s field's bound is a date, which a constraint of dspgo's is not", t)
	case name == "allow_inf_nan" && text == "True" && t.Kind != Float:
		return fmt.Errorf("the value True is for a float field (pydantic's rule)")
	}
	return nil
}

// constraintWant words what a constraint's value must be.
var constraintWant = map[string]string{"number": "a number", "length": "a non-negative integer", "bool": "a bool"}
