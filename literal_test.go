package dspgo_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
)

// Literals of integers, as DSPy's ratings and scores are written
// (Literal[1, 2, 3]): an input takes one of the integers, the dummy LM's
// output is one (an int64), the mock and a Python worker agree, and from
// Go structs an integer field's enum= gives one.
func TestIntegerLiterals(t *testing.T) {
	ctx := t.Context()
	sig := dspgo.MustParseSignature("review, floor: Literal[1,2,3] -> rating: Literal[1, 2, 3, 4, 5], votes: list[Literal[0, 1]]")
	var outputs []map[string]any
	for _, c := range mockAndPython(t) {
		p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
		require.NoError(t, err)
		assert.Equal(t, "review, floor: Literal[1, 2, 3] -> rating: Literal[1, 2, 3, 4, 5], votes: list[Literal[0, 1]]", p.Spec.Signature.String())
		out, err := c.Execute(ctx, p.ID, map[string]any{"review": "Great food.", "floor": 2})
		require.NoError(t, err)
		assert.Contains(t, []any{int64(1), int64(2), int64(3), int64(4), int64(5)}, out["rating"])
		outputs = append(outputs, out)

		for value, why := range map[any]string{
			"2": `input floor: expected Literal[1, 2, 3], got string "2"`,
			4:   "input floor: 4 is not one of Literal[1, 2, 3]",
			2.5: "input floor: expected Literal[1, 2, 3], got float64 2.5",
		} {
			_, err = c.Execute(ctx, p.ID, map[string]any{"review": "?", "floor": value})
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", value)
			assert.ErrorContains(t, err, why)
		}
	}
	assert.Equal(t, outputs[0], outputs[1])

	_, err := dspgo.ParseSignature("x: Literal[1, 'a'] -> y")
	assert.ErrorContains(t, err, "the values of a Literal must be all quoted strings or all integers")

	type judgeIn struct{ Review string }
	type judgeOut struct {
		Rating int8 `dspy:"rating,enum=1|2|3|4|5"`
	}
	judge, err := dspgo.NewTyped[judgeIn, judgeOut](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Equal(t, "review -> rating: Literal[1, 2, 3, 4, 5]", judge.Program().Spec.Signature.String())
	got, err := judge.Execute(ctx, judgeIn{Review: "Great food."})
	require.NoError(t, err)
	assert.Contains(t, []int8{1, 2, 3, 4, 5}, got.Rating)
	_, err = dspgo.NewTyped[judgeIn, struct {
		Rating uint8 `dspy:"rating,enum=1|300"`
	}](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	assert.ErrorContains(t, err, `enum value "300" is not an integer from 0 that uint8 holds`)
	_, err = dspgo.NewTyped[judgeIn, struct {
		Rating int `dspy:"rating,enum=1|01"`
	}](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	assert.ErrorContains(t, err, "enum value 1 appears twice")
}
