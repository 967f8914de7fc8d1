package program

import (
	"encoding/json"
	"maps"
	"math"
	"slices"

	"github.com/dspgo/dspgo/command"
)

// jsonExponentFrom is the magnitude from which encoding/json writes a
// float64 in exponent notation; below it an integral float is written as
// an integer.
const jsonExponentFrom = 1e21

// PyFloats returns a converted value as a backend must read it: each
// float64 that encoding/json would write as an integer a backend reads as
// an int (an integral value of magnitude 2^53 up to 1e21; smaller ones are
// ints already, see anyNumber) becomes the json.Number of its Python repr
// ("1e+16"), so that it stays the float it is: its spec hashes as the
// client's, and one past int64 is not refused as out of range. v is never
// changed; the maps and slices holding such a float are copied, the rest
// is shared.
func PyFloats(v any) any {
	out, _ := pyFloats(v)
	return out
}

// pyFloats is PyFloats, also saying whether anything changed.
func pyFloats(v any) (any, bool) {
	switch v := v.(type) {
	case float64:
		if a := math.Abs(v); a >= maxExactInt && a < jsonExponentFrom && v == math.Trunc(v) {
			return json.Number(FloatRepr(v)), true
		}
	case map[string]any:
		if out := pyFloatsMap(v); out != nil {
			return out, true
		}
	case []any:
		var out []any
		for i, e := range v {
			if e, changed := pyFloats(e); changed {
				if out == nil {
					out = slices.Clone(v)
				}
				out[i] = e
			}
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}

// pyFloatsMap is PyFloats of a map: a copy if anything changed, else nil.
func pyFloatsMap(m map[string]any) map[string]any {
	var out map[string]any
	for k, e := range m {
		if e, changed := pyFloats(e); changed {
			if out == nil {
				out = maps.Clone(m)
			}
			out[k] = e
		}
	}
	return out
}

// PyFloatsMap is PyFloats of a map of values (inputs, a demo's side).
func PyFloatsMap(m map[string]any) map[string]any {
	if out := pyFloatsMap(m); out != nil {
		return out
	}
	return m
}

// WireSpec returns s as a backend must read it: the defaults of its
// fields (and of its models' fields) and the values of its demos (and of
// a react spec's step demos) through PyFloats. s is not changed; what
// holds no such float is shared.
func WireSpec(s command.Spec) command.Spec {
	s.Signature.Inputs, _ = wireFields(s.Signature.Inputs)
	s.Signature.Outputs, _ = wireFields(s.Signature.Outputs)
	var models []command.Model
	for i, m := range s.Signature.Models {
		if fields, changed := wireFields(m.Fields); changed {
			if models == nil {
				models = slices.Clone(s.Signature.Models)
			}
			models[i].Fields = fields
		}
	}
	if models != nil {
		s.Signature.Models = models
	}
	s.Demos = WireDemos(s.Demos)
	s.StepDemos = WireDemos(s.StepDemos)
	return s
}

// WireDemos returns demos (or examples) with their values through
// PyFloats; demos itself is not changed.
func WireDemos(demos []command.Demo) []command.Demo {
	var out []command.Demo
	for i, d := range demos {
		in, outs := pyFloatsMap(d.Inputs), pyFloatsMap(d.Outputs)
		if in == nil && outs == nil {
			continue
		}
		if out == nil {
			out = slices.Clone(demos)
		}
		if in != nil {
			out[i].Inputs = in
		}
		if outs != nil {
			out[i].Outputs = outs
		}
	}
	if out == nil {
		return demos
	}
	return out
}

// wireFields returns fields with their defaults through PyFloats, and
// whether any changed (a copy then; fields is not changed).
func wireFields(fields []command.Field) ([]command.Field, bool) {
	var out []command.Field
	for i, f := range fields {
		if d, changed := pyFloats(f.Default); changed {
			if out == nil {
				out = slices.Clone(fields)
			}
			out[i].Default = d
		}
	}
	if out == nil {
		return fields, false
	}
	return out, true
}
