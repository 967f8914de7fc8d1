package dspgo_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// An integral float from 2^53 up to 1e21 (which encoding/json writes as
// an integer) in an Any or str value, or a Union[int, float], stays a
// float on the way to a backend: a default or a demo holding one hashes
// as the client's, one past int64 is not refused as out of range, and
// the mock and a Python worker give the dummy LM's outputs of the float
// the client holds.
func TestIntegralFloatsStayFloats(t *testing.T) {
	ctx := t.Context()
	sig, err := dspgo.ParseSignature("q: Any, n: Union[int, float], s: str -> a, b: int")
	require.NoError(t, err)
	sig.Inputs[0].Default = map[string]any{"big": 1e16, "list": []any{-1e20, 2.5}}
	spec := dspgo.ProgramSpec{Signature: sig, Kind: dspgo.KindPredict, Demos: []dspgo.Demo{
		{Inputs: map[string]any{"q": 1e20, "n": -9007199254740992.0, "s": 1e18}, Outputs: map[string]any{"a": "x", "b": 1}},
	}}
	inputs := []map[string]any{
		{"n": 1e17, "s": "text"},
		{"q": []any{1e16, -1e20, 3.0}, "n": 2.0, "s": 1e19},
		{"q": 123456789012345678.0, "n": 1e21, "s": 9.5e20},
	}

	compiled, err := program.Compile(command.Spec{Signature: spec.Signature, Kind: spec.Kind, Demos: spec.Demos})
	require.NoError(t, err)
	for _, c := range mockAndPython(t) {
		p, err := c.CreateProgram(ctx, spec)
		require.NoError(t, err, "%s: the backend hashes the spec as the client does", c.Adapter().Name())
		for i, in := range inputs {
			converted, err := compiled.Inputs(in)
			require.NoError(t, err)
			want, err := compiled.DummyOutputs(converted)
			require.NoError(t, err)
			out, err := c.Execute(ctx, p.ID, in)
			require.NoError(t, err, "%s: inputs %d", c.Adapter().Name(), i)
			assert.Equal(t, want["a"], out["a"], "%s: inputs %d reach the backend as the client holds them", c.Adapter().Name(), i)
			assert.EqualValues(t, want["b"], out["b"], "%s: inputs %d", c.Adapter().Name(), i)
		}
	}
}
