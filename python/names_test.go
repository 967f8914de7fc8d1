package python_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/lmtest"
)

// Fields named in other letters than ASCII's (réponse, größe, 答え),
// through both engines against the test LM server: the dspy engine
// (DSPy's ChatAdapter) and the native engine send the same messages,
// which the server reads the fields of, and both read, and stream, the
// same outputs from its reply.
func TestBothEnginesUnicodeFieldNames(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	a, err := port.New(t.Context(), dspyWorker(t))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close(t.Context())) })
	c := dspgo.NewClient(a)
	sig := dspgo.MustParseSignature("frage, größe: int -> réponse, 答え: list[str], Ответ_2: int")
	p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: sig, Kind: dspgo.KindChainOfThought, Instructions: "Réponds."})
	require.NoError(t, err)
	inputs := map[string]any{"frage": "Pourquoi?", "größe": 3}
	var messages [][]lmtest.Message
	for _, engine := range []string{"dspy", "native"} {
		lm := dspgo.LMConfig{Provider: dspgo.ProviderOpenAI, Engine: engine, Model: "test-model", BaseURL: srv.URL(), APIKeyEnv: keyEnv}
		require.NoError(t, c.ConfigureLM(t.Context(), lm))
		srv.Reset()
		out, err := c.Execute(t.Context(), p.ID, inputs)
		require.NoError(t, err, engine)
		assert.Equal(t, expected(t, sig, "reasoning"), out, engine)
		texts := map[string]string{}
		var last dspgo.StreamPart
		for part, err := range c.ExecuteStream(t.Context(), p.ID, inputs) {
			require.NoError(t, err, engine)
			if part.Outputs != nil {
				last = part
			}
			texts[part.Field] += part.Delta
		}
		assert.Equal(t, out, last.Outputs, engine)
		assert.Equal(t, out["réponse"], texts["réponse"], engine)
		reqs := srv.Requests()
		require.Len(t, reqs, 2, engine)
		assert.Equal(t, []lmtest.Field{{Name: "reasoning", Type: "str"}, {Name: "réponse", Type: "str"}, {Name: "答え", Type: "list[str]"},
			{Name: "Ответ_2", Type: "int"}}, reqs[0].Fields, engine)
		messages = append(messages, reqs[0].Messages)
	}
	assert.Equal(t, messages[0], messages[1], "the native engine's messages are DSPy's ChatAdapter's")
}
