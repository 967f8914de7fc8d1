package conformance

import (
	"encoding/json"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
)

// demoCases are the cases of programs with demos (ProgramSpec.Demos).
func demoCases() []Case {
	return []Case{
		{Name: "demos", Doc: "A program with demos is hashed alike by the client and the backend, and runs; the backend refuses a bad demo (sent past the client) with CodeInvalidArgument naming the demo and the field, worded alike on every backend.", Run: caseDemos},
	}
}

func caseDemos(t TB, env *Env) {
	sig := "question, context: list[str] -> answer, confidence: float"
	demos := []dspgo.Demo{
		{Inputs: map[string]any{"question": "Who wrote it?", "context": []string{"Ann wrote it."}},
			Outputs: map[string]any{"answer": "Ann", "confidence": 1}, Reasoning: "The context names Ann."},
		{Inputs: map[string]any{"question": "When?", "context": []string{}}, Outputs: map[string]any{"answer": "In 1999", "confidence": 0.25}},
	}
	plain := create(t, env, sig)
	p := create(t, env, sig, func(s *dspgo.ProgramSpec) { s.Kind = dspgo.KindChainOfThought; s.Demos = demos })
	assert.NotEqual(t, plain.Hash, p.Hash, "demos are part of the hash")
	inputs := map[string]any{"question": "What is Go?", "context": []string{"a language"}}
	out, err := env.Client.Execute(env.Ctx, p.ID, inputs)
	require.NoError(t, err)
	assert.Equal(t, expected(t, p, inputs), out, "the dummy LM's outputs for the spec with its demos")

	spec, err := json.Marshal(command.Spec{Signature: p.Spec.Signature, Kind: dspgo.KindPredict, Demos: []command.Demo{
		{Inputs: demos[1].Inputs, Outputs: demos[1].Outputs},
		{Inputs: map[string]any{"question": "Why?", "context": "all of it"}, Outputs: demos[1].Outputs},
	}})
	require.NoError(t, err)
	args, err := json.Marshal(map[string]json.RawMessage{"spec": spec})
	require.NoError(t, err)
	_, err = env.Adapter.Call(env.Ctx, adapter.Request{Command: command.CreateProgram, Args: args})
	requireCode(t, adapter.CodeInvalidArgument, err)
	assert.Contains(t, err.Error(), `demo 1: input context: expected list[str], got string "all of it"`)
}
