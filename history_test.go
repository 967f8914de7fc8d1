package dspgo_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
)

// A conversational program: a dspy.History input holds the turns so far
// ({"messages": [...]}); the mock and a Python worker take it alike and
// agree on the dummy LM's outputs, and refuse a history of another shape
// or one used as an output.
func TestConversationHistory(t *testing.T) {
	ctx := t.Context()
	sig := dspgo.MustParseSignature("question, history: dspy.History -> answer")
	history := map[string]any{"messages": []map[string]any{{"question": "Who wrote it?", "answer": "Ann"}}}

	var answers []any
	for _, c := range mockAndPython(t) {
		p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
		require.NoError(t, err)
		out, err := c.Execute(ctx, p.ID, map[string]any{"question": "And Bob?", "history": history})
		require.NoError(t, err)
		answers = append(answers, out["answer"])

		_, err = c.Execute(ctx, p.ID, map[string]any{"question": "?", "history": []string{"Who wrote it?"}})
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		assert.ErrorContains(t, err, `input history: expected dspy.History, an object {"messages": [{field: value, …}, …]}, got array`)
	}
	assert.Equal(t, answers[0], answers[1])

	_, err := dspgo.ParseSignature("question -> history: dspy.History")
	assert.ErrorContains(t, err, `output field "history": dspy.History is an input type (the conversation so far)`)
	_, err = dspgo.ParseSignature("question, turns: list[dspy.History] -> answer")
	assert.ErrorContains(t, err, `dspy.History is a field's whole type, not part of one`)
}
