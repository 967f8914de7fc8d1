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

	_, err := dspgo.ParseSignature("x: Literal[-1, 1] -> y")
	assert.ErrorContains(t, err, "DSPy's string signatures take no negative number")

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

// Literals of every value DSPy 3.4.1's string signatures take: strings
// with quotes and escapes, True, False, None, floats and mixes. The mock
// and a Python worker take the same canonical spec (the client checks the
// worker's hash against its own), convert inputs alike (a JSON boolean, a
// null) and give the same dummy outputs, each of its Go type.
func TestLiteralsOfEveryValue(t *testing.T) {
	ctx := t.Context()
	sig := dspgo.MustParseSignature(`q, flag: Literal[True, False], pick: Literal["a", None] -> ` +
		`yes: Literal[True, False], quote: Literal["it's", 'a, \'b\' "c"', 'tab\t'], maybe: Literal['a', None], ` +
		`ratio: Literal[1.5, 2.5e-7], mixed: Literal['x', 1, 1.0, True, None], flags: list[Literal[False]]`)
	const canonical = `q, flag: Literal[True, False], pick: Literal['a', None] -> ` +
		`yes: Literal[True, False], quote: Literal["it's", 'a, \'b\' "c"', 'tab\t'], maybe: Literal['a', None], ` +
		`ratio: Literal[1.5, 2.5e-07], mixed: Literal['x', 1, 1.0, True, None], flags: list[Literal[False]]`
	var outputs []map[string]any
	for _, c := range mockAndPython(t) {
		p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
		require.NoError(t, err)
		assert.Equal(t, canonical, p.Spec.Signature.String())
		var out map[string]any
		for i := range 8 { // several dummy outputs, to meet more of the values
			out, err = c.Execute(ctx, p.ID, map[string]any{"q": i, "flag": i%2 == 0, "pick": nil})
			require.NoError(t, err)
			assert.IsType(t, true, out["yes"])
			assert.Contains(t, []any{"it's", `a, 'b' "c"`, "tab\t"}, out["quote"])
			assert.Contains(t, []any{"a", nil}, out["maybe"])
			assert.Contains(t, []any{1.5, 2.5e-7}, out["ratio"])
			assert.Contains(t, []any{"x", int64(1), float64(1), true, nil}, out["mixed"])
			assert.IsType(t, []bool{}, out["flags"])
			outputs = append(outputs, out)
		}
		for value, why := range map[any]string{
			1:      "input flag: expected Literal[True, False], got int 1",
			"True": `input flag: expected Literal[True, False], got string "True"`,
			nil:    "input flag: expected Literal[True, False], got null",
		} {
			_, err = c.Execute(ctx, p.ID, map[string]any{"q": "?", "flag": value, "pick": "a"})
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", value)
			assert.ErrorContains(t, err, why)
		}
	}
	assert.Equal(t, outputs[:8], outputs[8:], "the mock and the Python worker")
}
