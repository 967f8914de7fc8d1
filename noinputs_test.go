package dspgo_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
)

// A program of no inputs, as DSPy's "-> joke": created and run with an
// empty (or nil) map of inputs on the mock and on a Python worker, which
// agree on its outputs; from Go structs, In is then struct{}. An input
// given to it is still refused.
func TestProgramOfNoInputs(t *testing.T) {
	ctx := t.Context()
	sig, err := dspgo.ParseSignature("-> joke, rating: int")
	require.NoError(t, err)
	assert.Equal(t, " -> joke, rating: int", sig.String())

	var outputs []map[string]any
	for _, c := range mockAndPython(t) {
		p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig, Kind: dspgo.KindChainOfThought})
		require.NoError(t, err)
		assert.NotNil(t, p.Spec.Signature.Inputs, "an empty list, as the spec's JSON has it")
		out, err := c.Execute(ctx, p.ID, nil)
		require.NoError(t, err)
		assert.IsType(t, "", out["joke"])
		assert.IsType(t, int64(0), out["rating"])
		again, err := c.Execute(ctx, p.ID, map[string]any{})
		require.NoError(t, err)
		assert.Equal(t, out, again)
		outputs = append(outputs, out)

		_, err = c.Execute(ctx, p.ID, map[string]any{"topic": "cats"})
		assert.ErrorContains(t, err, `input "topic" is not in the signature`)
	}
	assert.Equal(t, outputs[0], outputs[1], "the mock and the Python worker give the dummy LM's same outputs")

	type joke struct {
		Joke   string
		Rating int
	}
	typed, err := dspgo.NewTyped[struct{}, joke](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Empty(t, typed.Program().Spec.Signature.Inputs)
	got, err := typed.Execute(ctx, struct{}{})
	require.NoError(t, err)
	assert.NotEmpty(t, got.Joke)
}

// mockAndPython are a client of the mock and one of a Python worker (on
// the dummy LM), which must agree; the worker is closed at the end of t.
func mockAndPython(t *testing.T) []*dspgo.Client {
	py, err := port.New(t.Context(), port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Logger: testutil.Discard})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, py.Close(t.Context())) })
	return []*dspgo.Client{dspgo.NewClient(mock.New(mock.Options{})), dspgo.NewClient(py)}
}
