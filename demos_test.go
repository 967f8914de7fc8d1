package dspgo_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
)

func ragDemos() []dspgo.Demo {
	return []dspgo.Demo{
		{Inputs: map[string]any{"question": "Who wrote it?", "context": []string{"Ann wrote it.", "Bob read it."}},
			Outputs: map[string]any{"answer": "Ann", "confidence": 1}},
		{Inputs: map[string]any{"question": "When?", "context": []string{}}, Outputs: map[string]any{"answer": "In 1999", "confidence": 0.25}},
	}
}

// TestDemos: the mock validates demos (errors name the demo and the
// field), hashes them, and runs the program; a created program's spec holds
// them converted.
func TestDemos(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	sig := dspgo.MustParseSignature("question, context: list[str] -> answer, confidence: float")
	plain, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
	require.NoError(t, err)
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig, Demos: ragDemos()})
	require.NoError(t, err)
	assert.NotEqual(t, plain.Hash, p.Hash, "demos are part of the hash")
	assert.Equal(t, 1.0, p.Spec.Demos[0].Outputs["confidence"], "converted to the field's type")
	out, err := c.Execute(ctx, p.ID, map[string]any{"question": "What is Go?", "context": []string{"a language"}})
	require.NoError(t, err)
	assert.Contains(t, out["answer"], "answer ", "the dummy LM answers; demos reach it only through the hash")

	cot, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig, Kind: dspgo.KindChainOfThought,
		Demos: []dspgo.Demo{{Inputs: ragDemos()[0].Inputs, Outputs: ragDemos()[0].Outputs, Reasoning: "Ann is named."}}})
	require.NoError(t, err)
	assert.Equal(t, "Ann is named.", cot.Spec.Demos[0].Reasoning)

	incomplete, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig, Demos: []dspgo.Demo{
		{Inputs: map[string]any{"question": "Who read it?"}, Outputs: map[string]any{"answer": "Bob"}}}})
	require.NoError(t, err, "a bootstrapped demo without the context is one DSPy shows as incomplete")
	assert.Equal(t, map[string]any{"question": "Who read it?"}, incomplete.Spec.Demos[0].Inputs)

	for _, bad := range []struct {
		kind string
		demo dspgo.Demo
		want string
	}{
		{"", dspgo.Demo{Inputs: ragDemos()[0].Inputs, Outputs: map[string]any{"answer": "x", "confidence": "high"}},
			`demo 0: output confidence: expected float, got string "high"`},
		{dspgo.KindPredict, dspgo.Demo{Inputs: ragDemos()[0].Inputs, Outputs: ragDemos()[0].Outputs, Reasoning: "r"},
			`demo 0: reasoning is only for chain_of_thought and react programs (this one is predict)`},
	} {
		_, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig, Kind: bad.kind, Demos: []dspgo.Demo{bad.demo}})
		require.Error(t, err)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		assert.Contains(t, err.Error(), bad.want)
	}
}
