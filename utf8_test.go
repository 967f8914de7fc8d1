package dspgo_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

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
// instructions, fields, models, state), its values (fields' and models'
// fields' defaults, demos) and an example's values that are not
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
		{dspgo.ProgramSpec{Signature: dspgo.Signature{Inputs: []dspgo.Field{{Name: "q", Type: "str", Default: "a\xffb"}}, Outputs: sig.Outputs}},
			`input field 0 default: string "a\xffb" is not valid UTF-8`},
		{dspgo.ProgramSpec{Signature: dspgo.Signature{Inputs: sig.Inputs, Outputs: []dspgo.Field{{Name: "a", Type: "dict[str, int]", Default: map[string]any{"\xff": 1}}}}},
			`output field 0 default: key "\xff" is not valid UTF-8`},
		{dspgo.ProgramSpec{Signature: dspgo.Signature{Inputs: []dspgo.Field{{Name: "q", Type: "list[str]", Default: []string{"ok", "\xc3"}}}, Outputs: sig.Outputs}},
			`input field 0 default[1]: string "\xc3" is not valid UTF-8`},
		{dspgo.ProgramSpec{Signature: dspgo.Signature{Inputs: sig.Inputs, Outputs: sig.Outputs, Models: []dspgo.Model{{Name: "M\xff", Fields: []dspgo.Field{{Name: "f"}}}}}},
			`model 0 name: text "M\xff" is not valid UTF-8`},
		{dspgo.ProgramSpec{Signature: withModel(dspgo.Model{Name: "M", Description: "\xfe", Fields: []dspgo.Field{{Name: "f"}}})}, `model 0 description`},
		{dspgo.ProgramSpec{Signature: withModel(dspgo.Model{Name: "M", Fields: []dspgo.Field{{Name: "f"}, {Name: "g", Description: "\x80"}}})},
			`model 0 field 1 description: text "\x80" is not valid UTF-8`},
		{dspgo.ProgramSpec{Signature: withModel(dspgo.Model{Name: "M", Fields: []dspgo.Field{{Name: "f", Type: "str\xff"}}})}, `model 0 field 0 type`},
		{dspgo.ProgramSpec{Signature: withModel(dspgo.Model{Name: "M", Fields: []dspgo.Field{{Name: "f", Default: "a\xffb"}}})},
			`model 0 field 0 default: string "a\xffb" is not valid UTF-8`},
	} {
		_, err := c.CreateProgram(ctx, tc.spec)
		require.Error(t, err, tc.want)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		assert.ErrorContains(t, err, tc.want)
	}
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig, Demos: demo("\ufffd")})
	require.NoError(t, err, "U+FFFD itself is text")
	m, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: withModel(dspgo.Model{Name: "M", Description: "é \ufffd",
		Fields: []dspgo.Field{{Name: "f", Default: "a\ufffdb"}}})})
	require.NoError(t, err, "valid UTF-8 in a model and a default")
	assert.Equal(t, "a\ufffdb", m.Spec.Signature.Models[0].Fields[0].Default)
	_, err = c.Evaluate(ctx, p, []dspgo.Example{{Inputs: map[string]any{"q": "\xff"}, Outputs: map[string]any{"a": "x"}}},
		func(context.Context, dspgo.Example, map[string]any) (float64, error) { return 1, nil })
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, `devset example 0: input q: string "\xff" is not valid UTF-8`)
}

// withModel returns the signature "q -> a: M" whose model M is m (m
// names it).
func withModel(m dspgo.Model) dspgo.Signature {
	return dspgo.Signature{Inputs: []dspgo.Field{{Name: "q"}}, Outputs: []dspgo.Field{{Name: "a", Type: m.Name}}, Models: []dspgo.Model{m}}
}

// sharedDAG returns a value of levels maps, each holding the one below
// twice: a few hundred bytes in memory, 3·2^levels − 1 JSON values as
// encoded.
func sharedDAG(levels int) map[string]any {
	m := map[string]any{"leaf": 1}
	for range levels {
		m = map[string]any{"a": m, "b": m}
	}
	return m
}

// promptly runs f, failing the test if it has not returned within a
// minute (a walk that is not linear runs for ages); f's goroutine is gone
// when promptly returns normally.
func promptly(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the call did not return within a minute")
		return nil
	}
}

// TestValuesThatCannotBeEncodedAreRefused: an input, a demo's value or an
// example's that holds itself (a cycle, which encoding/json refuses too),
// that shares maps so that it would encode to more than 2^24 JSON values,
// or that nests deeper than any frame, is CodeInvalidArgument naming the
// field, at once, whatever its context's deadline; a value that shares
// maps but encodes to few values runs. The walk that refuses them takes
// time linear in the value's size in memory.
func TestValuesThatCannotBeEncodedAreRefused(t *testing.T) {
	c, a := newClient(t)
	ctx := t.Context()
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("x: Any, h: dspy.History -> y")})
	require.NoError(t, err)

	cyclicMap := map[string]any{}
	cyclicMap["a"], cyclicMap["b"] = cyclicMap, cyclicMap
	cyclicList := make([]any, 2)
	cyclicList[0], cyclicList[1] = cyclicList, cyclicList
	var cyclicPointer any
	cyclicPointer = &cyclicPointer
	chain := map[string]any{}
	chain["next"] = chain
	deep := any("bottom")
	for range 300 {
		deep = map[string]any{"d": deep}
	}
	cycle := "the value holds itself (a cycle), which JSON cannot encode"
	tooLarge := "the value would encode as more than 16777216 JSON values"
	before := len(a.Calls())
	for _, tc := range []struct {
		name   string
		inputs map[string]any
		want   []string // in the error, in order
	}{
		{"a map holding itself twice", map[string]any{"x": cyclicMap}, []string{`input x["`, cycle}},
		{"a list holding itself", map[string]any{"x": cyclicList}, []string{`input x[`, cycle}},
		{"a pointer to itself", map[string]any{"x": &cyclicPointer}, []string{"input x: ", cycle}},
		{"a map holding itself once", map[string]any{"x": chain}, []string{`input x["next"]: `, cycle}},
		{"40 maps, each holding the next twice", map[string]any{"x": sharedDAG(40)}, []string{"input x: ", tooLarge}},
		{"the same in a History", map[string]any{"x": 1, "h": dspgo.History{Messages: []map[string]any{{"y": sharedDAG(40)}}}},
			[]string{"input h: ", tooLarge}},
		{"300 levels", map[string]any{"x": deep}, []string{"input x: the value nests more than 256 levels"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			err := promptly(t, func() error {
				_, err := c.Execute(ctx, p.ID, tc.inputs)
				return err
			})
			require.Error(t, err)
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", err)
			assert.Regexp(t, regexp.QuoteMeta(tc.want[0])+".*"+regexp.QuoteMeta(strings.Join(tc.want[1:], "")), err.Error())
		})
	}
	assert.Len(t, a.Calls(), before, "nothing was sent")

	t.Run("demos, defaults and examples", func(t *testing.T) {
		sig := dspgo.MustParseSignature("q: Any -> a")
		err := promptly(t, func() error {
			_, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.Signature{
				Inputs: []dspgo.Field{{Name: "q", Type: "Any", Default: sharedDAG(40)}}, Outputs: sig.Outputs}})
			return err
		})
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		assert.ErrorContains(t, err, "input field 0 default: "+tooLarge)
		err = promptly(t, func() error {
			_, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig,
				Demos: []dspgo.Demo{{Inputs: map[string]any{"q": cyclicMap}, Outputs: map[string]any{"a": "x"}}}})
			return err
		})
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		assert.ErrorContains(t, err, cycle)
		assert.ErrorContains(t, err, `demo 0: input q["`)
		q, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
		require.NoError(t, err)
		err = promptly(t, func() error {
			_, err := c.Evaluate(ctx, q, []dspgo.Example{{Inputs: map[string]any{"q": "?"}, Outputs: map[string]any{"a": sharedDAG(40)}}},
				func(context.Context, dspgo.Example, map[string]any) (float64, error) { return 1, nil })
			return err
		})
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		assert.ErrorContains(t, err, "devset example 0: output a: "+tooLarge)
	})

	t.Run("shared values that encode to few run", func(t *testing.T) {
		out, err := c.Execute(ctx, p.ID, map[string]any{"x": sharedDAG(3), "h": dspgo.History{}})
		require.NoError(t, err)
		assert.Contains(t, out, "y")
		big := make([]any, 10000) // walked twice: past the first walk's steps
		for i := range big {
			big[i] = sharedDAG(1)
		}
		_, err = c.Execute(ctx, p.ID, map[string]any{"x": big, "h": dspgo.History{}})
		require.NoError(t, err)
		big[9999] = map[string]any{"k": "\xff"}
		_, err = c.Execute(ctx, p.ID, map[string]any{"x": big, "h": dspgo.History{}})
		assert.ErrorContains(t, err, `input x[9999]["k"]: string "\xff" is not valid UTF-8`)
	})
}

// TestInputsThatAreNotUTF8AreRefusedWhereverTheyAre: strings under a
// dict[int, …]'s integer keys, in the exported fields of a struct (a
// History's messages) and in JSON text given as a json.RawMessage are
// checked too: encoding/json would replace their bad bytes.
func TestInputsThatAreNotUTF8AreRefusedWhereverTheyAre(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("d: dict[int, str], h: dspy.History -> y")})
	require.NoError(t, err)
	_, err = c.Execute(ctx, p.ID, map[string]any{"d": map[int64]string{7: "a\xffb"}, "h": dspgo.History{}})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, `input d["7"]: string "a\xffb" is not valid UTF-8`)
	_, err = c.Execute(ctx, p.ID, map[string]any{"d": map[int64]string{}, "h": &dspgo.History{Messages: []map[string]any{{"d": map[string]any{}, "y": "c\xff"}}}})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, `input h["messages"][0]["y"]: string "c\xff" is not valid UTF-8`)
	_, err = c.Execute(ctx, p.ID, map[string]any{"d": map[int64]string{7: "ok"}, "h": dspgo.History{Messages: []map[string]any{{"d": map[string]any{}, "y": "c"}}}})
	assert.NoError(t, err)

	q, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("x: Any -> y")})
	require.NoError(t, err)
	_, err = c.Execute(ctx, q.ID, map[string]any{"x": json.RawMessage("{\"k\": [\"a\xffb\"]}")})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, `input x: JSON text "{\"k\": [\"a\xffb\"]}" is not valid UTF-8`)
	out, err := c.Execute(ctx, q.ID, map[string]any{"x": json.RawMessage(`{"k": ["a\u00ffb"]}`)})
	require.NoError(t, err)
	assert.Contains(t, out, "y")
}
