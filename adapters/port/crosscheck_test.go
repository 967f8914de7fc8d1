package port_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/port"
)

// crossTypes are the field types the cross-checks draw from.
var crossTypes = []string{"str", "int", "float", "bool", "list[str]", "list[int]", "dict[str, float]",
	"Literal['low', 'mid', 'high']", "list[dict[str, bool]]", "dict[str, list[int]]",
	"Optional[float]", "Union[int, str]", "Optional[Union[list[str], int]]", "Any", "tuple[int, str]",
	"tuple[int, ...]", "dict[int, str]", "list[Optional[int]]"}

// randomValue returns an input value of the type.
func randomInput(r *rand.Rand, typ string) any {
	switch typ {
	case "str":
		words := []string{"Go", "Python", "héllo", "世界", "🎉", "\"quoted\"", "tab\there", "line\nbreak", "<&>"}
		return words[r.IntN(len(words))] + fmt.Sprint(r.IntN(100))
	case "int":
		return r.Int64N(2_000_000) - 1_000_000
	case "float":
		return []float64{r.Float64(), r.NormFloat64() * 1e6, 1.0, 1e-7, 12345678.5, 0}[r.IntN(6)]
	case "bool":
		return r.IntN(2) == 0
	case "list[str]":
		return []string{"a", randomInput(r, "str").(string)}[:1+r.IntN(2)]
	case "list[int]":
		return []int{r.IntN(10), r.IntN(1000)}
	case "dict[str, float]":
		return map[string]float64{"x": r.Float64(), "é": 2.5}
	case "Literal['low', 'mid', 'high']":
		return []string{"low", "mid", "high"}[r.IntN(3)]
	case "list[dict[str, bool]]":
		return []map[string]bool{{"ok": true}, {"no": false, "yes": true}}
	case "dict[str, list[int]]":
		return map[string][]int{"k": {1, 2, 3}}
	case "Optional[float]":
		return []any{nil, 2.5, 3}[r.IntN(3)]
	case "Union[int, str]":
		return []any{r.IntN(100), randomInput(r, "str"), "42"}[r.IntN(3)]
	case "Optional[Union[list[str], int]]":
		return []any{nil, []string{"a", "b"}, 7}[r.IntN(3)]
	case "Any":
		return []any{nil, "héllo wörld", 1.5, 12, []any{1, "a", nil}, map[string]any{"k": []float64{0.5}}}[r.IntN(6)]
	case "tuple[int, str]":
		return []any{r.IntN(100), randomInput(r, "str")}
	case "tuple[int, ...]":
		return []int{r.IntN(10), r.IntN(1000), -3}[:r.IntN(4)]
	case "dict[int, str]":
		return map[int]string{r.IntN(100): "a", -7: randomInput(r, "str").(string)}
	case "list[Optional[int]]":
		return []any{1, nil, r.IntN(100)}
	}
	panic("no random input for " + typ)
}

// TestCrossCheckMockAndPython runs the same 50 (program, inputs) pairs
// through the mock and through the Python worker with the dummy LM: the
// outputs must be identical, and so must their streams, chunk for chunk.
func TestCrossCheckMockAndPython(t *testing.T) {
	ctx := t.Context()
	m := mock.New(mock.Options{})
	defer m.Close(ctx)
	py := newPython(t, port.Options{})
	onMock, onPython := dspgo.NewClient(m), dspgo.NewClient(py)

	r := rand.New(rand.NewPCG(50, 50))
	for i := range 50 {
		var in, out []string
		inputs := map[string]any{}
		for j := range 1 + r.IntN(3) {
			typ := crossTypes[r.IntN(len(crossTypes))]
			name := fmt.Sprintf("in%d", j)
			in = append(in, name+": "+typ)
			inputs[name] = randomInput(r, typ)
		}
		for j := range 1 + r.IntN(4) {
			out = append(out, fmt.Sprintf("out%d: %s", j, crossTypes[r.IntN(len(crossTypes))]))
		}
		spec := dspgo.ProgramSpec{
			ID:           fmt.Sprint("p", i),
			Signature:    dspgo.MustParseSignature(strings.Join(in, ", ") + " -> " + strings.Join(out, ", ")),
			Instructions: []string{"", "Answer briefly.", "Réponds — 简短 🎉"}[r.IntN(3)],
			Kind:         []string{dspgo.KindPredict, dspgo.KindChainOfThought, dspgo.KindReact}[r.IntN(3)],
		}
		a, err := onMock.CreateProgram(ctx, spec)
		require.NoError(t, err)
		b, err := onPython.CreateProgram(ctx, spec)
		require.NoError(t, err)
		require.Equal(t, a.Hash, b.Hash, "pair %d: spec hash", i)

		want, err := onMock.Execute(ctx, a.ID, inputs)
		require.NoError(t, err, "pair %d on the mock", i)
		got, err := onPython.Execute(ctx, b.ID, inputs)
		require.NoError(t, err, "pair %d on Python", i)
		assert.Equal(t, want, got, "pair %d: %s with %v", i, spec.Signature, inputs)

		streamed := func(c *dspgo.Client, id string) []dspgo.StreamPart {
			var parts []dspgo.StreamPart
			for part, err := range c.ExecuteStream(ctx, id, inputs) {
				require.NoError(t, err, "pair %d", i)
				parts = append(parts, part)
			}
			return parts
		}
		assert.Equal(t, streamed(onMock, a.ID), streamed(onPython, b.ID), "pair %d: the streams", i)
	}
}
