package dspgo_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
)

// Field names of other letters than ASCII's (réponse, größe, 答え), as
// DSPy's string signatures take them: the mock and a Python worker take
// the same spec (the client checks the worker's hash against its own),
// convert its inputs and give the same dummy outputs; a model's fields
// may be so named too; Go structs name fields so; names DSPy would read
// as others (NFKC) or could not read back are refused alike.
func TestUnicodeFieldNames(t *testing.T) {
	ctx := t.Context()
	sig := dspgo.MustParseSignature("frage, größe: int -> réponse, 答え: list[str]")
	sig.Outputs = append(sig.Outputs, dspgo.Field{Name: "Ответ", Type: "Antwort"})
	sig.Models = []dspgo.Model{{Name: "Antwort", Fields: []dspgo.Field{{Name: "wörter", Type: "list[str]"}, {Name: "名前", Type: "int"}}}}
	var outputs []map[string]any
	for _, c := range mockAndPython(t) {
		p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
		require.NoError(t, err)
		assert.Equal(t, "frage, größe: int -> réponse, 答え: list[str], Ответ: Antwort", p.Spec.Signature.String())
		out, err := c.Execute(ctx, p.ID, map[string]any{"frage": "?", "größe": 3})
		require.NoError(t, err)
		require.IsType(t, map[string]any{}, out["Ответ"])
		assert.Contains(t, out["Ответ"], "名前")
		outputs = append(outputs, out)

		_, err = c.Execute(ctx, p.ID, map[string]any{"frage": "?", "größe": "3"})
		assert.ErrorContains(t, err, "input größe: expected int")

		for name, why := range map[string]string{
			"ﬁeld": `output field name "ﬁeld" is not in NFKC form`,
			"x·y":  `output field name "x·y" holds "·" (U+00B7), which DSPy's ChatAdapter does not read`,
			"2x":   `output field name "2x" is not a valid identifier`,
		} {
			bad := dspgo.Signature{Inputs: []dspgo.Field{{Name: "q", Type: "str"}}, Outputs: []dspgo.Field{{Name: name, Type: "str"}}}
			_, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: bad})
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%s: %v", name, err)
			assert.ErrorContains(t, err, why)
		}
	}
	assert.Equal(t, outputs[0], outputs[1])

	_, err := dspgo.ParseSignature("ﬁeld -> x")
	assert.ErrorContains(t, err, `input field name "ﬁeld" is not in NFKC form`)

	type frageIn struct {
		Frage string
		Größe int
	}
	type antwortOut struct {
		Réponse string
		Antwort []string `dspy:"答え"`
	}
	typed, err := dspgo.NewTyped[frageIn, antwortOut](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Equal(t, "frage, größe: int -> réponse, 答え: list[str]", typed.Program().Spec.Signature.String())
	got, err := typed.Execute(ctx, frageIn{Frage: "?", Größe: 3})
	require.NoError(t, err)
	assert.NotEmpty(t, got.Réponse)
}
