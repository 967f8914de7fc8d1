package dspgo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
)

// A KindModule program on the mock: its module and state are part of its
// spec and hash, the state kept in canonical form; the dummy LM answers it
// as a predict of its signature; ExportDSPy writes its state; a bad
// module spec is CodeInvalidArgument naming the problem.
func TestModuleProgramSpec(t *testing.T) {
	ctx := context.Background()
	c := dspgo.NewClient(mock.New(mock.Options{}))
	sig := dspgo.MustParseSignature("question -> answer, confidence: float")
	state := json.RawMessage(`{"answer": {"demos": [{"question": "Who?", "answer": "Ann", "confidence": 1.0}], "lm": null},
		"metadata": {"dependency_versions": {"dspy": "3.4.1"}}}`)
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Kind: dspgo.KindModule, Module: "rag", Signature: sig, State: state})
	require.NoError(t, err)
	assert.Equal(t, dspgo.KindModule, p.Spec.Kind)
	assert.Equal(t, "rag", p.Spec.Module)
	assert.JSONEq(t, string(state), string(p.Spec.State))
	assert.Equal(t, `{"answer":{"demos":[{"answer":"Ann","confidence":1,"question":"Who?"}],"lm":null},"metadata":{"dependency_versions":{"dspy":"3.4.1"}}}`,
		string(p.Spec.State), "canonical")

	got, err := c.GetProgram(ctx, p.ID)
	require.NoError(t, err)
	assert.Equal(t, p.Spec, got.Spec)

	out, err := c.Execute(ctx, p.ID, map[string]any{"question": "What is Go?"})
	require.NoError(t, err)
	assert.IsType(t, "", out["answer"])
	assert.IsType(t, 0.0, out["confidence"])

	for _, other := range []dspgo.ProgramSpec{
		{Kind: dspgo.KindModule, Module: "other", Signature: sig, State: state},
		{Kind: dspgo.KindModule, Module: "rag", Signature: sig},
		{Kind: dspgo.KindPredict, Signature: sig},
	} {
		q, err := c.CreateProgram(ctx, other)
		require.NoError(t, err)
		assert.NotEqual(t, p.Hash, q.Hash, "%+v", other)
	}

	var file bytes.Buffer
	require.NoError(t, p.ExportDSPy(&file))
	assert.Equal(t, string(p.Spec.State)+"\n", file.String())
	bare, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Kind: dspgo.KindModule, Module: "rag", Signature: sig})
	require.NoError(t, err)
	err = bare.ExportDSPy(&file)
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "a module program exports its state, and this one has none")

	for _, c2 := range []struct {
		spec dspgo.ProgramSpec
		want string
	}{
		{dspgo.ProgramSpec{Kind: dspgo.KindModule, Signature: sig}, "a module program needs its module"},
		{dspgo.ProgramSpec{Kind: dspgo.KindModule, Module: "rag", Signature: sig, State: json.RawMessage(`{"answer":`)}, "state is not JSON"},
		{dspgo.ProgramSpec{Kind: dspgo.KindModule, Module: "rag", Signature: sig, State: json.RawMessage(`"rag.json"`)},
			`state must be a JSON object (what DSPy's module.save writes), got string "rag.json"`},
		{dspgo.ProgramSpec{Kind: dspgo.KindChainOfThought, Module: "rag", Signature: sig}, `module is for kind "module" only (this spec's kind is "chain_of_thought")`},
		{dspgo.ProgramSpec{Module: "rag", Signature: sig}, `module is for kind "module" only (this spec's kind is "predict")`},
	} {
		_, err := c.CreateProgram(ctx, c2.spec)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", err)
		assert.ErrorContains(t, err, c2.want)
	}
}
