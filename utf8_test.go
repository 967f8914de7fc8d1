package dspgo_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
)

type label string

// TestInputsThatAreNotUTF8AreRefused: a string input that is not valid
// UTF-8, at any depth, as a value or a key, is CodeInvalidArgument naming
// the field, before anything is sent; it is never replaced by U+FFFD.
func TestInputsThatAreNotUTF8AreRefused(t *testing.T) {
	c, a := newClient(t)
	ctx := t.Context()
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p",
		Signature: dspgo.MustParseSignature("question, context: list[str], meta: dict[str, list[str]], tag: Literal['a', 'b'] -> answer")})
	require.NoError(t, err)
	good := func() map[string]any {
		return map[string]any{"question": "q", "context": []string{"c"}, "meta": map[string]any{"k": []any{"v"}}, "tag": "a"}
	}
	cases := []struct {
		set   func(map[string]any)
		names string
	}{
		{func(in map[string]any) { in["question"] = "bad \xff" }, `input question: string "bad \xff"`},
		{func(in map[string]any) { in["question"] = label("\xc3") }, `input question: string "\xc3"`},
		{func(in map[string]any) { in["context"] = []string{"ok", "\xed\xa0\x80"} }, `input context[1]`},
		{func(in map[string]any) { in["context"] = []any{"ok", "\x80"} }, `input context[1]`},
		{func(in map[string]any) { in["meta"] = map[string]any{"k": []any{"ok", "\xc0\xaf"}} }, `input meta["k"][1]`},
		{func(in map[string]any) { in["meta"] = map[string][]string{"\xff": {"v"}} }, `input meta: key "\xff"`},
		{func(in map[string]any) { in["meta"] = map[string]any{"k": &[]string{"\xf4\x90\x80\x80"}} }, `input meta["k"][0]`},
		{func(in map[string]any) { in["tag"] = "a\xff" }, `input tag`},
		{func(in map[string]any) { in["\xffextra"] = "x" }, `inputs: key "\xffextra"`},
	}
	before := len(a.Calls())
	for _, cs := range cases {
		in := good()
		cs.set(in)
		_, err := c.Execute(ctx, p.ID, in)
		require.Error(t, err)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", err)
		assert.Contains(t, err.Error(), cs.names)
		assert.Contains(t, err.Error(), "not valid UTF-8")
		for _, serr := range c.ExecuteStream(ctx, p.ID, in) {
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(serr), "%v", serr)
		}
	}
	assert.Len(t, a.Calls(), before, "nothing was sent")

	out, err := c.Execute(ctx, p.ID, good())
	require.NoError(t, err)
	assert.Contains(t, out, "answer")
	_, err = c.Execute(ctx, p.ID, map[string]any{"question": "héllo 世界 🎉 \ufffd", "context": []string{}, "meta": map[string]any{}, "tag": "b"})
	require.NoError(t, err, "valid UTF-8, U+FFFD included, runs")
}

// TestSpecsAndExamplesThatAreNotUTF8AreRefused: a spec's text (its
// instructions, fields, demos, state) and an example's values that are not
// valid UTF-8 are CodeInvalidArgument naming where, as inputs are; never
// replaced by U+FFFD, which would give another program the same hash.
func TestSpecsAndExamplesThatAreNotUTF8AreRefused(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	sig := dspgo.MustParseSignature("q -> a")
	demo := func(q string) []dspgo.Demo {
		return []dspgo.Demo{{Inputs: map[string]any{"q": q}, Outputs: map[string]any{"a": "x"}}}
	}
	for _, tc := range []struct {
		spec dspgo.ProgramSpec
		want string
	}{
		{dspgo.ProgramSpec{Signature: sig, Instructions: "be \xff\xfe nice"}, `instructions: text "be \xff\xfe nice" is not valid UTF-8`},
		{dspgo.ProgramSpec{Signature: dspgo.Signature{Inputs: []dspgo.Field{{Name: "q", Type: "str", Description: "the \xc3"}}, Outputs: sig.Outputs}},
			`input field 0 description`},
		{dspgo.ProgramSpec{Signature: sig, Demos: demo("\xff")}, `demo 0: input q: string "\xff" is not valid UTF-8`},
		{dspgo.ProgramSpec{Signature: sig, Demos: []dspgo.Demo{{Inputs: map[string]any{"q": "?"}, Outputs: map[string]any{"a": []any{"\x80"}}}}}, `demo 0: output a[0]`},
	} {
		_, err := c.CreateProgram(ctx, tc.spec)
		require.Error(t, err, tc.want)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		assert.ErrorContains(t, err, tc.want)
	}
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig, Demos: demo("\ufffd")})
	require.NoError(t, err, "U+FFFD itself is text")
	_, err = c.Evaluate(ctx, p, []dspgo.Example{{Inputs: map[string]any{"q": "\xff"}, Outputs: map[string]any{"a": "x"}}},
		func(context.Context, dspgo.Example, map[string]any) (float64, error) { return 1, nil })
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, `devset example 0: input q: string "\xff" is not valid UTF-8`)
}
