package port_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/internal/lmtest"
)

// TestDemosInBothEnginesPrompts: a program's demos, created through the
// client, reach the LM from both engines as DSPy's ChatAdapter writes
// them: a user and an assistant message per demo, between the system
// message and the input, the same messages from both; the outputs are the
// test LM's as without demos.
func TestDemosInBothEnginesPrompts(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	sig := dspgo.MustParseSignature("question, context: list[str] -> answer, confidence: float")
	demos := []dspgo.Demo{
		{Inputs: map[string]any{"question": "Who wrote it?", "context": []string{"Ann wrote it."}},
			Outputs: map[string]any{"answer": "Ann", "confidence": 1}, Reasoning: "The context names Ann."},
		{Inputs: map[string]any{"question": "When?", "context": []string{}}, Outputs: map[string]any{"answer": "In 1999", "confidence": 0.25}},
	}
	inputs := map[string]any{"question": "What is Go?", "context": []string{"Go is a language."}}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, kind := range []string{dspgo.KindPredict, dspgo.KindChainOfThought} {
		ds := demos
		if kind == dspgo.KindPredict {
			ds = []dspgo.Demo{demos[0], demos[1]}
			ds[0].Reasoning = ""
		}
		byEngine := map[string][]lmtest.Message{}
		for _, engine := range []string{"native", "dspy"} {
			c := newEngineClient(t, srv, engine)
			p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig, Kind: kind, Demos: ds})
			require.NoError(t, err)
			out, err := c.Execute(ctx, p.ID, inputs)
			require.NoError(t, err, "%s %s", engine, kind)
			fields := sig.Outputs
			if kind == dspgo.KindChainOfThought {
				fields = append([]dspgo.Field{{Name: "reasoning", Type: "str"}}, fields...)
			}
			assert.Equal(t, expectedOutputs(t, fields), out, "%s %s", engine, kind)

			reqs := requestsOf(srv.Requests(), engine)
			require.NotEmpty(t, reqs)
			msgs := reqs[len(reqs)-1].Messages
			require.Len(t, msgs, 6, "%s %s: system, two demos, the input", engine, kind)
			roles := make([]string, len(msgs))
			for i, m := range msgs {
				roles[i] = m.Role
			}
			assert.Equal(t, []string{"system", "user", "assistant", "user", "assistant", "user"}, roles)
			assert.Contains(t, msgs[5].Content, "What is Go?")
			byEngine[engine] = msgs[1:5]
		}
		assert.Equal(t, byEngine["dspy"], byEngine["native"], "%s: the native engine writes the demos as DSPy does", kind)
		demo := byEngine["native"]
		when, who := 2, 0 // the demos in order
		if kind == dspgo.KindChainOfThought {
			when, who = 0, 2 // the demo without reasoning first, as DSPy shows an incomplete demo
			assert.True(t, strings.HasPrefix(demo[when].Content, "This is an example of the task, though some input or output fields are not supplied."))
			assert.Contains(t, demo[when+1].Content, "[[ ## reasoning ## ]]\nNot supplied for this particular example. \n\n")
			assert.Contains(t, demo[who+1].Content, "[[ ## reasoning ## ]]\nThe context names Ann.")
		}
		assert.True(t, strings.HasSuffix(demo[when].Content, "[[ ## question ## ]]\nWhen?\n\n[[ ## context ## ]]\n[]"), demo[when].Content)
		assert.Contains(t, demo[who].Content, "[[ ## context ## ]]\n[\"Ann wrote it.\"]")
		assert.True(t, strings.HasSuffix(demo[when+1].Content, "[[ ## confidence ## ]]\n0.25\n\n[[ ## completed ## ]]\n"), demo[when+1].Content)
		assert.Contains(t, demo[who+1].Content, "[[ ## confidence ## ]]\n1.0\n", "a float as Python writes it")
	}
}
