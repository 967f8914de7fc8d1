package program_test

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

func TestParseType(t *testing.T) {
	valid := map[string]string{
		"":                              "str",
		"str":                           "str",
		" int ":                         "int",
		"float":                         "float",
		"bool":                          "bool",
		"list[str]":                     "list[str]",
		"List[ int ]":                   "list[int]",
		"dict[str,float]":               "dict[str, float]",
		"dict[ str , list[bool] ]":      "dict[str, list[bool]]",
		"Literal['a','b']":              "Literal['a', 'b']",
		`Literal["yes", 'no' ]`:         "Literal['yes', 'no']",
		"list[dict[str, Literal['x']]]": "list[dict[str, Literal['x']]]",
	}
	for in, want := range valid {
		typ, err := program.ParseType(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, typ.String(), in)
		again, err := program.ParseType(typ.String())
		require.NoError(t, err)
		assert.Equal(t, typ, again, "the canonical form parses to the same type")
	}
	invalid := map[string]string{
		"string":            "unknown type",
		"list[":             "expected a type",
		"list[str":          "expected ']'",
		"dict[float, str]":  "dict keys must be str, int or a Literal",
		"Literal[a]":        "must be quoted",
		"Literal['a', 'a']": "appears twice",
		"Literal['a":        "unterminated",
		"int int":           "unexpected",
		"list[list[list[list[list[list[list[list[list[list[list[list[list[list[list[list[list[str]]]]]]]]]]]]]]]]]": "nests more than",
	}
	for in, want := range invalid {
		_, err := program.ParseType(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
	}
}

func TestParseSignature(t *testing.T) {
	sig, err := program.ParseSignature("question, context: list[str] -> answer, confidence: float")
	require.NoError(t, err)
	assert.Equal(t, []command.Field{{Name: "question"}, {Name: "context", Type: "list[str]"}}, sig.Inputs)
	assert.Equal(t, []command.Field{{Name: "answer"}, {Name: "confidence", Type: "float"}}, sig.Outputs)
	assert.Equal(t, "question, context: list[str] -> answer, confidence: float", sig.String())

	sig, err = program.ParseSignature("a: dict[str, int], b: Literal['x', 'y'] -> c")
	require.NoError(t, err, "commas inside brackets do not split fields")
	assert.Len(t, sig.Inputs, 2)

	for _, s := range []string{" -> joke", "->joke: str"} {
		sig, err = program.ParseSignature(s)
		require.NoError(t, err, "no inputs, as DSPy takes it")
		assert.Empty(t, sig.Inputs)
		assert.Equal(t, " -> joke", sig.String())
	}
	_, err = program.ParseSignature(" -> ")
	assert.ErrorContains(t, err, "has no outputs")

	bad := map[string]string{
		"question answer": `has no "->"`,
		"a -> b -> c":     `more than one "->"`,
		"question -> ":    "has no outputs",
		"a, , b -> c":     "empty field",
		"a, a -> b":       `"a" is used twice`,
		"a -> a":          `"a" is used twice (as input and as output)`,
		"1a -> b":         "not a valid identifier",
		"a-b -> c":        "not a valid identifier",
		"a: strin -> b":   `input field "a": unknown type "strin"`,
		"a -> b: list[":   `output field "b"`,
	}
	for in, want := range bad {
		_, err := program.ParseSignature(in)
		require.Error(t, err, in)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), in)
		assert.Contains(t, err.Error(), want, in)
	}
}

func mustCompile(t *testing.T, sig, kind string) *program.Compiled {
	t.Helper()
	s, err := program.ParseSignature(sig)
	require.NoError(t, err)
	c, err := program.Compile(command.Spec{Signature: s, Kind: kind})
	require.NoError(t, err)
	return c
}

func TestCompile(t *testing.T) {
	a := mustCompile(t, "q: list[ str ] -> a", "")
	b := mustCompile(t, "q: list[str] -> a", "predict")
	assert.Equal(t, command.KindPredict, a.Spec.Kind, "the default kind is filled in")
	assert.Equal(t, a.Hash, b.Hash, "the hash is of the normalized spec")
	assert.Len(t, a.Hash, 64)
	// The hash is part of the contract with the Python worker: pin it
	// (checked against hashlib.sha256 of json.dumps(sort_keys=True)).
	assert.Equal(t, "edf18bb27799aae47dbb88b6cf0e16c94c00f045a9d64b11f92961de9af2a3e0", a.Hash, "canonical spec: %s", mustCanonical(t, a.Spec))

	c := mustCompile(t, "q -> a", "chain_of_thought")
	assert.NotEqual(t, mustCompile(t, "q -> a", "").Hash, c.Hash)
	assert.Equal(t, []string{"reasoning", "a"}, fieldNames(c.OutputFields()))

	_, err := program.Compile(command.Spec{Signature: command.Signature{Inputs: []command.Field{{Name: "q"}}, Outputs: []command.Field{{Name: "reasoning"}}}, Kind: "chain_of_thought"})
	assert.ErrorContains(t, err, `"reasoning" is used twice`)
	_, err = program.Compile(command.Spec{Signature: command.Signature{Inputs: []command.Field{{Name: "q"}}, Outputs: []command.Field{{Name: "a"}}}, Kind: "reflect"})
	assert.ErrorContains(t, err, `kind "reflect" is unknown`)
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
}

func fieldNames(fields []command.Field) []string {
	var names []string
	for _, f := range fields {
		names = append(names, f.Name)
	}
	return names
}

func mustCanonical(t *testing.T, v any) string {
	t.Helper()
	b, err := program.Canonical(v)
	require.NoError(t, err)
	return string(b)
}

func TestInputs(t *testing.T) {
	c := mustCompile(t, "s, n: int, x: float, ok: bool, tags: list[str], m: dict[str, int], mode: Literal['a', 'b'] -> out", "")
	in := map[string]any{
		"s": "hi", "n": uint8(7), "x": 2, "ok": true,
		"tags": [2]string{"a", "b"}, "m": map[string]any{"k": json.Number("3")}, "mode": "b",
	}
	got, err := c.Inputs(in)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"s": "hi", "n": int64(7), "x": float64(2), "ok": true,
		"tags": []string{"a", "b"}, "m": map[string]int64{"k": 3}, "mode": "b",
	}, got)

	bad := []struct {
		change map[string]any
		want   string
	}{
		{map[string]any{"s": nil}, `input s: expected str, got null`},
		{map[string]any{"s": []any{"a", 2}}, `input s[1]: expected str, got int 2`},
		{map[string]any{"s": []any{[]string{"a"}}}, `input s[0]: expected str, got array`},
		{map[string]any{"s": struct{ A int }{1}}, `input s: expected str, got struct`},
		{map[string]any{"n": 1.5}, `input n: expected int, got float64 1.5`},
		{map[string]any{"n": uint64(math.MaxUint64)}, `input n: expected int, got uint64 18446744073709551615, beyond int64`},
		{map[string]any{"n": json.Number("1e300")}, `input n: expected int, got number 1e300`},
		{map[string]any{"x": math.NaN()}, `input x: expected float, got float64 NaN, which JSON cannot carry`},
		{map[string]any{"x": float32(math.Inf(-1))}, `input x: expected float, got float32 -Inf, which JSON cannot carry`},
		{map[string]any{"tags": []any{"a", 2}}, `input tags[1]: expected str, got int 2`},
		{map[string]any{"m": map[string]any{"k": "v"}}, `input m["k"]: expected int, got string "v"`},
		{map[string]any{"mode": "c"}, `input mode: "c" is not one of Literal['a', 'b']`},
		{map[string]any{"extra": 1}, `input "extra" is not in the signature`},
	}
	for _, tt := range bad {
		args := map[string]any{}
		for k, v := range in {
			args[k] = v
		}
		for k, v := range tt.change {
			args[k] = v
		}
		_, err := c.Inputs(args)
		require.Error(t, err, tt.want)
		assert.Contains(t, err.Error(), tt.want)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	}
	delete(in, "s")
	_, err = c.Inputs(in)
	assert.ErrorContains(t, err, `input "s" is missing`)
}

// TestStrFieldsTakeWhatDSPyShows: a signature's str field (an untyped
// one too) takes what DSPy 3.4.1's ChatAdapter shows in one, as DSPy's
// RAG programs give a list of passages to "context"; a str nested in
// another type, or a model's, takes strings only.
func TestStrFieldsTakeWhatDSPyShows(t *testing.T) {
	c := mustCompile(t, "context, question: str, tags: list[str] -> answer", "")
	for _, tt := range []struct {
		in   any
		want any
	}{
		{[]string{"Ann wrote it.", "Bo read it."}, []string{"Ann wrote it.", "Bo read it."}},
		{[]any{}, []string{}},
		{json.Number("42"), int64(42)},
		{2.5, 2.5},
		{true, true},
		{map[string]any{"k": []any{1, "x"}}, map[string]any{"k": []any{int64(1), "x"}}},
	} {
		got, err := c.Inputs(map[string]any{"context": tt.in, "question": tt.in, "tags": []string{}})
		require.NoError(t, err, "%#v", tt.in)
		assert.Equal(t, tt.want, got["context"], "%#v", tt.in)
		assert.Equal(t, tt.want, got["question"], "%#v", tt.in)
	}
	_, err := c.Inputs(map[string]any{"context": "c", "question": "q", "tags": []any{[]string{"a"}}})
	assert.ErrorContains(t, err, "input tags[0]: expected str, got array", "a list's str takes strings only")
	_, err = c.Inputs(map[string]any{"context": nil, "question": "q", "tags": []string{}})
	assert.ErrorContains(t, err, "input context: expected str, got null")
}

// TestOptionalInputsMayBeLeftOut: an Optional input left out stays out
// (DSPy leaves it out of the prompt, where a null is "None"); any other
// input is required, Any included (DSPy's annotation_allows_none), and an
// unknown input is refused even beside one left out.
func TestOptionalInputsMayBeLeftOut(t *testing.T) {
	c := mustCompile(t, "q, hint: Optional[str], k: int | None, u: Union[int, str, None], x: Any -> a", "")
	got, err := c.Inputs(map[string]any{"q": "?", "x": nil})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"q": "?", "x": nil}, got, "left out, not null")
	got, err = c.Inputs(map[string]any{"q": "?", "x": 1, "hint": nil, "k": 2})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"q": "?", "x": int64(1), "hint": nil, "k": int64(2)}, got)

	for _, tt := range []struct {
		in   map[string]any
		want string
	}{
		{map[string]any{"x": 1}, `input "q" is missing (the program takes "q", "hint", "k", "u", "x")`},
		{map[string]any{"q": "?"}, `input "x" is missing`},
		{map[string]any{"q": "?", "x": 1, "extra": 1}, `input "extra" is not in the signature`},
	} {
		_, err := c.Inputs(tt.in)
		require.Error(t, err, tt.want)
		assert.ErrorContains(t, err, tt.want)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	}

	left, err := c.DummyOutputs(map[string]any{"q": "?", "x": nil})
	require.NoError(t, err)
	null, err := c.DummyOutputs(map[string]any{"q": "?", "x": nil, "hint": nil, "k": nil, "u": nil})
	require.NoError(t, err)
	assert.NotEqual(t, left, null, "the dummy LM tells an input left out from a null")
}

func TestOutputs(t *testing.T) {
	c := mustCompile(t, "q -> a, n: int, f: float, b: bool, l: list[int], d: dict[str, list[str]]", "")
	var raw map[string]any
	dec := json.NewDecoder(jsonReader(`{"a":"x","n":3,"f":1,"b":false,"l":[1,2],"d":{"k":["v"]},"extra":true}`))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&raw))
	got, err := c.Outputs(raw)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"a": "x", "n": int64(3), "f": float64(1), "b": false, "l": []int64{1, 2}, "d": map[string][]string{"k": {"v"}}}, got)
	assert.Equal(t, reflect.TypeFor[[]int64](), reflect.TypeOf(got["l"]), "outputs have their declared Go types")

	delete(raw, "n")
	_, err = c.Outputs(raw)
	assert.ErrorContains(t, err, `output "n" is missing`)
	assert.Equal(t, adapter.CodeInternal, adapter.CodeOf(err))
}

func TestDummyChunks(t *testing.T) {
	assert.Equal(t, []string{"answer", " 1a2b", " 3c4d"}, program.TextDeltas("answer 1a2b 3c4d"))
	assert.Equal(t, []string{""}, program.TextDeltas(""))
	assert.Equal(t, []string{"  a", "  b", " "}, program.TextDeltas("  a  b "))
	c := mustCompile(t, "q -> a, n: int, tags: list[str]", "chain_of_thought")
	in, err := c.Inputs(map[string]any{"q": "x"})
	require.NoError(t, err)
	out, err := c.DummyOutputs(in)
	require.NoError(t, err)
	chunks, err := c.DummyChunks(out)
	require.NoError(t, err)
	text := map[string]string{}
	var order []string
	for _, ch := range chunks {
		if len(order) == 0 || order[len(order)-1] != ch.Field {
			order = append(order, ch.Field)
		}
		text[ch.Field] += ch.Delta
	}
	assert.Equal(t, []string{"reasoning", "a", "n", "tags"}, order)
	assert.Equal(t, out["a"], text["a"])
	tags, _ := program.Canonical(out["tags"])
	assert.Equal(t, string(tags), text["tags"])
	assert.Equal(t, c.Hash, mustCompile(t, "q -> a, n: int, tags: list[str]", "chain_of_thought").Hash)
	assert.NotEqual(t, mustCompile(t, "q -> a", "react").Hash, mustCompile(t, "q -> a", "").Hash)
}
