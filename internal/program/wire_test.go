package program

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/dspgo/dspgo/command"
)

// PyFloats turns exactly the integral floats encoding/json would write as
// integers (2^53 up to 1e21, either sign) into Python's repr, and copies
// only what holds one.
func TestPyFloats(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want any
	}{
		{1e16, json.Number("1e+16")},
		{-1e20, json.Number("-1e+20")},
		{9007199254740992.0, json.Number("9007199254740992.0")},
		{123456789012345678.0, json.Number("1.2345678901234568e+17")},
		{9007199254740991.0, 9007199254740991.0}, // below 2^53: an int already (anyNumber)
		{1e21, 1e21},                             // encoding/json writes "1e+21"
		{2.5, 2.5},
		{int64(1e17), int64(1e17)},
		{"1e16", "1e16"},
		{nil, nil},
		{[]any{1, []any{1e16}}, []any{1, []any{json.Number("1e+16")}}},
		{map[string]any{"a": map[string]any{"b": -1e19}, "c": "x"}, map[string]any{"a": map[string]any{"b": json.Number("-1e+19")}, "c": "x"}},
	} {
		assert.Equal(t, tc.want, PyFloats(tc.in), "%v", tc.in)
	}

	inner := []any{1e16}
	m := map[string]any{"changed": inner, "kept": []any{1.5}}
	out := PyFloats(m).(map[string]any)
	assert.Equal(t, 1e16, inner[0], "the value given is not changed")
	assert.Equal(t, []any{json.Number("1e+16")}, out["changed"])
	assert.Same(t, &m["kept"].([]any)[0], &out["kept"].([]any)[0], "what holds no such float is shared")
	plain := map[string]any{"a": []any{1.5}}
	assert.Same(t, &plain["a"].([]any)[0], &PyFloatsMap(plain)["a"].([]any)[0])
}

// WireSpec reaches the defaults of inputs, outputs and models' fields and
// the demos' values, and leaves the spec it is given as it was.
func TestWireSpec(t *testing.T) {
	spec := command.Spec{
		Signature: command.Signature{
			Inputs:  []command.Field{{Name: "q", Default: 1e16}, {Name: "r", Default: 1.5}},
			Outputs: []command.Field{{Name: "a", Default: []any{1e17}}},
			Models:  []command.Model{{Name: "M"}, {Name: "N", Fields: []command.Field{{Name: "x", Default: -1e18}}}},
		},
		Demos:     []command.Demo{{Inputs: map[string]any{"q": 1.0}}, {Inputs: map[string]any{"q": 1e19}, Outputs: map[string]any{"a": 1e20}}},
		StepDemos: []command.Demo{{Outputs: map[string]any{"next_tool_args": map[string]any{"n": 1e17}}}},
	}
	wire := WireSpec(spec)
	assert.Equal(t, json.Number("1e+16"), wire.Signature.Inputs[0].Default)
	assert.Equal(t, 1.5, wire.Signature.Inputs[1].Default)
	assert.Equal(t, []any{json.Number("1e+17")}, wire.Signature.Outputs[0].Default)
	assert.Equal(t, json.Number("-1e+18"), wire.Signature.Models[1].Fields[0].Default)
	assert.Equal(t, map[string]any{"q": 1.0}, wire.Demos[0].Inputs)
	assert.Equal(t, map[string]any{"q": json.Number("1e+19")}, wire.Demos[1].Inputs)
	assert.Equal(t, map[string]any{"a": json.Number("1e+20")}, wire.Demos[1].Outputs)
	assert.Equal(t, map[string]any{"n": json.Number("1e+17")}, wire.StepDemos[0].Outputs["next_tool_args"])

	assert.Equal(t, 1e16, spec.Signature.Inputs[0].Default, "the spec given is not changed")
	assert.Equal(t, -1e18, spec.Signature.Models[1].Fields[0].Default)
	assert.Equal(t, 1e19, spec.Demos[1].Inputs["q"])
	same := command.Spec{Signature: command.Signature{Inputs: []command.Field{{Name: "q", Default: 2.5}}}}
	assert.Same(t, &same.Signature.Inputs[0], &WireSpec(same).Signature.Inputs[0])
}
