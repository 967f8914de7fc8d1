package dspgo_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
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

	// A dspgo.History is that value too, in a map of inputs.
	c := dspgo.NewClient(mock.New(mock.Options{}))
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
	require.NoError(t, err)
	out, err := c.Execute(ctx, p.ID, map[string]any{"question": "And Bob?",
		"history": dspgo.History{Messages: history["messages"].([]map[string]any)}})
	require.NoError(t, err)
	assert.Equal(t, answers[0], out["answer"])
	_, err = c.Execute(ctx, p.ID, map[string]any{"question": "And Bob?", "history": &dspgo.History{}})
	require.NoError(t, err)

	// From Go structs: a History field is the dspy.History input, and the
	// same conversation gives the same answer.
	type chatIn struct {
		Question string
		History  dspgo.History
	}
	type chatOut struct{ Answer string }
	typed, err := dspgo.NewTyped[chatIn, chatOut](ctx, c, dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Equal(t, "question, history: dspy.History -> answer", typed.Program().Spec.Signature.String())
	got, err := typed.Execute(ctx, chatIn{Question: "And Bob?", History: dspgo.History{Messages: history["messages"].([]map[string]any)}})
	require.NoError(t, err)
	assert.Equal(t, answers[0], got.Answer)
	_, err = typed.Execute(ctx, chatIn{Question: "Who wrote it?"})
	require.NoError(t, err, "no earlier turn")
	_, err = dspgo.NewTyped[chatIn, struct{ History dspgo.History }](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	assert.ErrorContains(t, err, "dspy.History is an input type")
	_, err = dspgo.NewTyped[struct{ Turns []dspgo.History }, chatOut](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	assert.ErrorContains(t, err, "dspy.History is a field's whole type")

	_, err = dspgo.ParseSignature("question -> history: dspy.History")
	assert.ErrorContains(t, err, `output field "history": dspy.History is an input type (the conversation so far)`)
	_, err = dspgo.ParseSignature("question, turns: list[dspy.History] -> answer")
	assert.ErrorContains(t, err, `dspy.History is a field's whole type, not part of one`)
}
