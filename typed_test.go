package dspgo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
)

// typedIn is the input struct of the mapping tests: one str input.
type typedIn struct{ Q string }

// outputType derives, through NewTyped on the mock, the signature type of
// Out's field F.
func outputType[T any](ctx context.Context, r dspgo.Runner) (string, error) {
	p, err := dspgo.NewTyped[typedIn, struct{ F T }](ctx, r, dspgo.ProgramSpec{})
	if err != nil {
		return "", err
	}
	return p.Program().Spec.Signature.Outputs[0].Type, nil
}

// inputType derives the signature type of In's field F.
func inputType[T any](ctx context.Context, r dspgo.Runner) (string, error) {
	p, err := dspgo.NewTyped[struct{ F T }, struct{ A string }](ctx, r, dspgo.ProgramSpec{})
	if err != nil {
		return "", err
	}
	return p.Program().Spec.Signature.Inputs[0].Type, nil
}

type (
	level  string
	levels []level
	// words is a slice that travels as text: its words joined by spaces.
	words []string
	// recursive has no DSPy type: it never ends.
	recursive []recursive
)

func (w words) MarshalText() ([]byte, error) { return []byte(strings.Join(w, " ")), nil }

func (w *words) UnmarshalText(b []byte) error {
	*w = strings.Fields(string(b))
	return nil
}

// mapping is a Go type and the signature type it is, on both sides.
type mapping struct {
	goType  string
	in, out func(context.Context, dspgo.Runner) (string, error)
	want    string
}

// both is the mapping of T as the field F of In and of Out.
func both[T any](goType, want string) mapping {
	return mapping{goType: goType, in: inputType[T], out: outputType[T], want: want}
}

// tagged is the mapping of S's first field, tag included, as In's and as
// Out's.
func tagged[S any](goType, want string) mapping {
	return mapping{goType: goType, in: fieldOf[S](0), out: fieldOf[S](1), want: want}
}

func TestTypedMapsGoTypes(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	cases := []mapping{
		both[string]("string", "str"),
		both[level]("a named string", "str"),
		both[int]("int", "int"),
		both[int8]("int8", "int"),
		both[int16]("int16", "int"),
		both[int32]("int32", "int"),
		both[int64]("int64", "int"),
		both[uint]("uint", "int"),
		both[uint8]("uint8", "int"),
		both[uint16]("uint16", "int"),
		both[uint32]("uint32", "int"),
		both[uint64]("uint64", "int"),
		both[float32]("float32", "float"),
		both[float64]("float64", "float"),
		both[bool]("bool", "bool"),
		both[[]string]("[]string", "list[str]"),
		both[[][]int]("[][]int", "list[list[int]]"),
		both[levels]("a named slice", "list[str]"),
		both[[2]float64]("[2]float64", "tuple[float, float]"),
		both[[3]string]("[3]string", "tuple[str, str, str]"),
		both[[4]byte]("[4]byte", "tuple[int, int, int, int]"),
		both[map[string]int]("map[string]int", "dict[str, int]"),
		both[map[level][]bool]("map[level][]bool", "dict[str, list[bool]]"),
		both[map[int]string]("map[int]string", "dict[int, str]"),
		both[map[uint8]float64]("map[uint8]float64", "dict[int, float]"),
		both[*int]("*int", "Optional[int]"),
		both[**int]("**int", "Optional[int]"),
		both[*[]string]("*[]string", "Optional[list[str]]"),
		both[[]*int]("[]*int", "list[Optional[int]]"),
		both[map[string]*float64]("map[string]*float64", "dict[str, Optional[float]]"),
		both[any]("any", "Any"),
		both[interface{}]("interface{}", "Any"),
		both[*any]("*any", "Optional[Any]"),
		both[[]any]("[]any", "list[Any]"),
		both[map[string]any]("map[string]any", "dict[str, Any]"),
		both[json.RawMessage]("json.RawMessage", "Any"),
		both[time.Time]("time.Time (MarshalText, UnmarshalText)", "str"),
		both[*time.Time]("*time.Time", "Optional[str]"),
		both[[]netip.Addr]("[]netip.Addr", "list[str]"),
		both[words]("a slice with MarshalText", "str"),
		both[adapter.Code]("an int with MarshalText", "str"),
		both[map[adapter.Code]int]("a map key with MarshalText", "dict[str, int]"),

		// The enum= option, on a field's string, through pointers, slices
		// and map values.
		tagged[struct {
			F string `dspy:"f,enum=low|mid|high"`
		}]("string with enum=", "Literal['low', 'mid', 'high']"),
		tagged[struct {
			F *level `dspy:",enum=a|b"`
		}]("*level with enum=", "Optional[Literal['a', 'b']]"),
		tagged[struct {
			F []string `dspy:"f,enum=x|y"`
		}]("[]string with enum=", "list[Literal['x', 'y']]"),
		tagged[struct {
			F map[int][]*string `dspy:"f,enum=x"`
		}]("map[int][]*string with enum=", "dict[int, list[Optional[Literal['x']]]]"),
		tagged[struct {
			F adapter.Code `dspy:"f,enum=ok|not_found"`
		}]("an int with MarshalText, with enum=", "Literal['ok', 'not_found']"),
	}
	for _, tc := range cases {
		t.Run(tc.goType, func(t *testing.T) {
			got, err := tc.out(ctx, c)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got, "as an output")
			got, err = tc.in(ctx, c)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got, "as an input")
		})
	}
}

// fieldOf derives the signature type of S's field f: as an input (side
// 0) or an output (side 1).
func fieldOf[S any](side int) func(context.Context, dspgo.Runner) (string, error) {
	return func(ctx context.Context, r dspgo.Runner) (string, error) {
		if side == 0 {
			p, err := dspgo.NewTyped[S, struct{ A string }](ctx, r, dspgo.ProgramSpec{})
			if err != nil {
				return "", err
			}
			return p.Program().Spec.Signature.Inputs[0].Type, nil
		}
		p, err := dspgo.NewTyped[typedIn, S](ctx, r, dspgo.ProgramSpec{})
		if err != nil {
			return "", err
		}
		return p.Program().Spec.Signature.Outputs[0].Type, nil
	}
}

// Embedded is a struct to embed; its name is exported, so the embedded
// field is.
type Embedded struct{ X string }

// onlyMarshal has MarshalText but no UnmarshalText: text as an input,
// refused as an output.
type onlyMarshal struct{ x int }

func (o onlyMarshal) MarshalText() ([]byte, error) { return []byte(fmt.Sprint(o.x)), nil }

type inner struct {
	Shared string `dspy:"shared,desc=From the embedded struct"`
	hidden string
}

// names exercises naming: tags, snake case, skipped and promoted fields.
type names struct {
	Question  string
	UserID    int
	HTTPCode  int
	Top5Items []string
	Named     string `dspy:"custom_name,desc=A description, with commas, and = signs"`
	Skipped   string `dspy:"-"`
	private   string
	inner
}

func TestTypedFieldNames(t *testing.T) {
	c, _ := newClient(t)
	p, err := dspgo.NewTyped[names, struct{ A string }](t.Context(), c, dspgo.ProgramSpec{})
	require.NoError(t, err)
	var got []dspgo.Field
	got = append(got, p.Program().Spec.Signature.Inputs...)
	assert.Equal(t, []dspgo.Field{
		{Name: "question", Type: "str"},
		{Name: "user_id", Type: "int"},
		{Name: "http_code", Type: "int"},
		{Name: "top5_items", Type: "list[str]"},
		{Name: "custom_name", Type: "str", Description: "A description, with commas, and = signs"},
		{Name: "shared", Type: "str", Description: "From the embedded struct"},
	}, got)

	_, err = p.Execute(t.Context(), names{Question: "q", Top5Items: []string{"a"}, Named: "n", private: "p", inner: inner{Shared: "s", hidden: "h"}})
	require.NoError(t, err)
}

// Every supported type as an input and (where the dummy LM's values fit)
// as an output.
type allIn struct {
	S       string               `dspy:"s,desc=A string"`
	Level   level                `dspy:"level,enum=low|mid|high"`
	I       int                  `dspy:"i"`
	I8      int8                 `dspy:"i8"`
	U64     uint64               `dspy:"u64"`
	F32     float32              `dspy:"f32"`
	F64     float64              `dspy:"f64"`
	B       bool                 `dspy:"b"`
	List    []string             `dspy:"list"`
	NilList []int                `dspy:"nil_list"`
	Matrix  [][]int16            `dspy:"matrix"`
	Pair    [2]float64           `dspy:"pair"`
	Dict    map[string]int       `dspy:"dict"`
	IntKeys map[uint8]string     `dspy:"int_keys"`
	Opt     *int                 `dspy:"opt"`
	NilOpt  *string              `dspy:"nil_opt"`
	Any     any                  `dspy:"any"`
	AnyMap  map[string]any       `dspy:"any_map"`
	Raw     json.RawMessage      `dspy:"raw"`
	NilRaw  json.RawMessage      `dspy:"nil_raw"`
	When    time.Time            `dspy:"when"`
	Addrs   []netip.Addr         `dspy:"addrs"`
	Code    adapter.Code         `dspy:"code"`
	Counts  map[adapter.Code]int `dspy:"counts"`
	OnlyM   onlyMarshal          `dspy:"only_m"`
	Words   *words               `dspy:"words"`
}

// allInputs is allIn's value below, as the untyped API takes it.
var allInputs = map[string]any{
	"s": "hello", "level": "mid", "i": -7, "i8": -128, "u64": uint64(1 << 60), "f32": 0.5, "f64": 2.25, "b": true,
	"list": []string{"a", "b"}, "nil_list": []int{}, "matrix": [][]int{{1, 2}, {3}}, "pair": []any{1.5, -2.0},
	"dict": map[string]int{"x": 1}, "int_keys": map[string]string{"7": "seven"}, "opt": 3, "nil_opt": nil,
	"any": map[string]any{"k": []any{1, "two", nil}}, "any_map": map[string]any{"n": 1.25},
	"raw": map[string]any{"raw": true}, "nil_raw": nil, "when": "2026-01-02T03:04:05Z", "addrs": []string{"127.0.0.1", "::1"},
	"code": "not_found", "counts": map[string]int{"internal": 2}, "only_m": "42", "words": "two words",
}

func allInValue() allIn {
	three := 3
	return allIn{
		S: "hello", Level: "mid", I: -7, I8: -128, U64: 1 << 60, F32: 0.5, F64: 2.25, B: true,
		List: []string{"a", "b"}, Matrix: [][]int16{{1, 2}, {3}}, Pair: [2]float64{1.5, -2},
		Dict: map[string]int{"x": 1}, IntKeys: map[uint8]string{7: "seven"}, Opt: &three,
		Any: map[string]any{"k": []any{1, "two", nil}}, AnyMap: map[string]any{"n": 1.25},
		Raw: json.RawMessage(`{"raw": true}`), When: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		Code:  adapter.CodeNotFound, Counts: map[adapter.Code]int{adapter.CodeInternal: 2},
		OnlyM: onlyMarshal{42}, Words: &words{"two", "words"},
	}
}

// allOut holds every output type whose values from the dummy LM fit:
// its ints are 0 to 999, its strings "<field> <hex> <hex>". Its json
// tags let the test compare it with the untyped outputs.
type allOut struct {
	S       string            `dspy:"out_s" json:"out_s"`
	Level   level             `dspy:"out_level,enum=low|mid|high" json:"out_level"`
	Levels  []level           `dspy:"out_levels,enum=low|mid|high" json:"out_levels"`
	I       int               `dspy:"out_i" json:"out_i"`
	I16     int16             `dspy:"out_i16" json:"out_i16"`
	U16     uint16            `dspy:"out_u16" json:"out_u16"`
	U       uint              `dspy:"out_u" json:"out_u"`
	F32     float32           `dspy:"out_f32" json:"out_f32"`
	F64     float64           `dspy:"out_f64" json:"out_f64"`
	B       bool              `dspy:"out_b" json:"out_b"`
	List    []string          `dspy:"out_list" json:"out_list"`
	Matrix  [][]int32         `dspy:"out_matrix" json:"out_matrix"`
	Pair    [2]float64        `dspy:"out_pair" json:"out_pair"`
	Dict    map[string]int    `dspy:"out_dict" json:"out_dict"`
	IntKeys map[uint16]string `dspy:"out_int_keys" json:"out_int_keys"`
	Opt     *int              `dspy:"out_opt" json:"out_opt"`
	OptList *[]string         `dspy:"out_opt_list" json:"out_opt_list"`
	Ptrs    []*int64          `dspy:"out_ptrs" json:"out_ptrs"`
	Any     any               `dspy:"out_any" json:"out_any"`
	AnyList []any             `dspy:"out_any_list" json:"out_any_list"`
	AnyMap  map[string]any    `dspy:"out_any_map" json:"out_any_map"`
	Raw     json.RawMessage   `dspy:"out_raw" json:"out_raw"`
	Words   words             `dspy:"out_words" json:"out_words"`
	WordMap map[string]words  `dspy:"out_word_map" json:"out_word_map"`
	Unset   string            `dspy:"-" json:"-"`
}

const allSignature = "s, level: Literal['low', 'mid', 'high'], i: int, i8: int, u64: int, f32: float, f64: float, b: bool, " +
	"list: list[str], nil_list: list[int], matrix: list[list[int]], pair: tuple[float, float], dict: dict[str, int], " +
	"int_keys: dict[int, str], opt: Optional[int], nil_opt: Optional[str], any: Any, any_map: dict[str, Any], raw: Any, nil_raw: Any, " +
	"when, addrs: list[str], code, counts: dict[str, int], only_m, words: Optional[str] -> " +
	"out_s, out_level: Literal['low', 'mid', 'high'], out_levels: list[Literal['low', 'mid', 'high']], out_i: int, " +
	"out_i16: int, out_u16: int, out_u: int, out_f32: float, out_f64: float, out_b: bool, out_list: list[str], " +
	"out_matrix: list[list[int]], out_pair: tuple[float, float], out_dict: dict[str, int], out_int_keys: dict[int, str], " +
	"out_opt: Optional[int], out_opt_list: Optional[list[str]], out_ptrs: list[Optional[int]], out_any: Any, " +
	"out_any_list: list[Any], out_any_map: dict[str, Any], out_raw: Any, out_words, out_word_map: dict[str, str]"

// roundTrip runs allIn → allOut on c typed, and again untyped with the
// inputs written by hand: the dummy LM's outputs, derived from a hash of
// the inputs, are the same only if the struct was encoded as the map, and
// the decoded struct holds the untyped outputs. It returns the outputs.
func roundTrip(t *testing.T, c *dspgo.Client) map[string]any {
	t.Helper()
	ctx := t.Context()
	p, err := dspgo.NewTyped[allIn, allOut](ctx, c, dspgo.ProgramSpec{Instructions: "Every type."})
	require.NoError(t, err)
	assert.Equal(t, allSignature, p.Program().Spec.Signature.String())
	assert.Equal(t, "A string", p.Program().Spec.Signature.Inputs[0].Description)

	out, err := p.Execute(ctx, allInValue())
	require.NoError(t, err)
	untyped, err := c.Execute(ctx, p.Program().ID, allInputs)
	require.NoError(t, err)
	typedJSON, err := json.Marshal(out)
	require.NoError(t, err)
	untypedJSON, err := json.Marshal(untyped)
	require.NoError(t, err)
	assert.JSONEq(t, string(untypedJSON), string(typedJSON))

	// The Go types hold the values themselves, not only their JSON.
	assert.Equal(t, untyped["out_i16"], int64(out.I16))
	assert.Equal(t, untyped["out_words"], strings.Join(out.Words, " "))
	assert.Equal(t, untyped["out_matrix"], toInt64s(out.Matrix))
	if untyped["out_opt"] == nil {
		assert.Nil(t, out.Opt)
	} else {
		assert.Equal(t, untyped["out_opt"], int64(*out.Opt))
	}
	assert.Equal(t, untyped["out_any"], out.Any)
	return untyped
}

func toInt64s(m [][]int32) [][]int64 {
	out := make([][]int64, len(m))
	for i, row := range m {
		for _, v := range row {
			out[i] = append(out[i], int64(v))
		}
	}
	return out
}

func TestTypedRoundTripsEveryType(t *testing.T) {
	c, _ := newClient(t)
	roundTrip(t, c)
}

// The same program on the Python worker, with its dummy LM: the same
// signature, hash and outputs as on the mock.
func TestTypedOnThePythonWorker(t *testing.T) {
	testutil.VerifyNoChildren(t)
	a, err := port.New(t.Context(), port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Logger: testutil.Discard})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close(context.Background())) })
	onPython := roundTrip(t, dspgo.NewClient(a))
	mock, _ := newClient(t)
	assert.Equal(t, roundTrip(t, mock), onPython)
}

func TestTypedStreamsDetailsAndSessions(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	s := c.Session("typed")
	p, err := dspgo.NewTyped[allIn, allOut](ctx, s, dspgo.ProgramSpec{ID: "all"})
	require.NoError(t, err)
	_, err = c.GetProgram(ctx, "all")
	assert.True(t, errors.Is(err, adapter.ErrNotFound), "the program is the session's: %v", err)
	got, err := s.GetProgram(ctx, "all")
	require.NoError(t, err)
	assert.Same(t, p.Program(), got)

	want, err := p.Execute(ctx, allInValue())
	require.NoError(t, err)

	d, err := p.ExecuteDetailed(ctx, allInValue())
	require.NoError(t, err)
	assert.Equal(t, want, d.Output)
	assert.Equal(t, "mock", d.Worker)
	assert.Equal(t, d.Outputs["out_s"], want.S)

	text := map[string]string{}
	var last *dspgo.TypedPart[allOut]
	for part, err := range p.ExecuteStream(ctx, allInValue()) {
		require.NoError(t, err)
		require.Nil(t, last, "the part with the output is the last")
		if part.Output != nil {
			last = &part
			continue
		}
		text[part.Field] += part.Delta
	}
	require.NotNil(t, last)
	assert.Equal(t, want, *last.Output)
	assert.Equal(t, want.S, text["out_s"])
	assert.Equal(t, d.Outputs, last.Outputs)

	require.NoError(t, s.Close(ctx))
	_, err = p.Execute(ctx, allInValue())
	assert.ErrorIs(t, err, dspgo.ErrSessionClosed)
	for _, err := range p.ExecuteStream(ctx, allInValue()) {
		assert.ErrorIs(t, err, dspgo.ErrSessionClosed)
	}
}

// A typed program is safe for concurrent use: every execution encodes and
// decodes its own values.
func TestTypedConcurrentExecutions(t *testing.T) {
	c, _ := newClient(t)
	p, err := dspgo.NewTyped[allIn, allOut](t.Context(), c, dspgo.ProgramSpec{})
	require.NoError(t, err)
	want, err := p.Execute(t.Context(), allInValue())
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				got, err := p.Execute(t.Context(), allInValue())
				assert.NoError(t, err)
				assert.Equal(t, want, got)
			}
		})
	}
	wg.Wait()
}

// A chain of thought's reasoning goes into an Out field named reasoning.
func TestTypedChainOfThoughtReasoning(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	type answer struct {
		Reasoning string
		Answer    string
	}
	p, err := dspgo.NewTyped[typedIn, answer](ctx, c, dspgo.ProgramSpec{Kind: dspgo.KindChainOfThought})
	require.NoError(t, err)
	assert.Equal(t, "q -> answer", p.Program().Spec.Signature.String())
	d, err := p.ExecuteDetailed(ctx, typedIn{Q: "why?"})
	require.NoError(t, err)
	assert.Equal(t, d.Outputs["reasoning"], d.Output.Reasoning)
	assert.Equal(t, d.Outputs["answer"], d.Output.Answer)
	assert.NotEmpty(t, d.Output.Reasoning)

	// Predict has no reasoning of its own: the field is an output.
	q, err := dspgo.NewTyped[typedIn, answer](ctx, c, dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Equal(t, "q -> reasoning, answer", q.Program().Spec.Signature.String())

	_, err = dspgo.NewTyped[typedIn, struct {
		Reasoning int
		Answer    string
	}](ctx, c, dspgo.ProgramSpec{Kind: dspgo.KindChainOfThought})
	assert.ErrorContains(t, err, "Reasoning (int) is int: the reasoning of chain_of_thought is a str")
	_, err = dspgo.NewTyped[typedIn, struct{ Reasoning string }](ctx, c, dspgo.ProgramSpec{Kind: dspgo.KindChainOfThought})
	assert.ErrorContains(t, err, "Out type struct { Reasoning string } has no output besides the reasoning chain_of_thought adds")
}

// One struct as both sides, as a class-based dspy.Signature.
type qaSignature struct {
	Question string  `dspy:"question,input,desc=The question"`
	Answer   string  `dspy:"answer,output"`
	Score    float64 `dspy:",output,desc=0 to 1"`
}

func TestTypedOneStructForBothSides(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	p, err := dspgo.NewTyped[qaSignature, qaSignature](ctx, c, dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Equal(t, dspgo.Signature{
		Inputs:  []dspgo.Field{{Name: "question", Type: "str", Description: "The question"}},
		Outputs: []dspgo.Field{{Name: "answer", Type: "str"}, {Name: "score", Type: "float", Description: "0 to 1"}},
	}, p.Program().Spec.Signature)
	out, err := p.Execute(ctx, qaSignature{Question: "What is Go?", Answer: "ignored"})
	require.NoError(t, err)
	assert.Empty(t, out.Question, "an input field of Out keeps its zero value")
	assert.NotEmpty(t, out.Answer)

	type untagged struct{ Text string }
	_, err = dspgo.NewTyped[untagged, untagged](ctx, c, dspgo.ProgramSpec{})
	assert.ErrorContains(t, err, `"text" is the name of an input (field dspgo_test.untagged.Text (string)) and of an output`)
}

// TestTypedOmitEmpty: a nil pointer input tagged omitempty is left out of
// the inputs (as Client.Execute without it), where an untagged one is sent
// as None; a non-nil one is sent either way.
func TestTypedOmitEmpty(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	type in struct {
		Question string
		Hint     *string `dspy:"hint,omitempty,desc=A hint, if any"`
	}
	type out struct{ Answer string }
	p, err := dspgo.NewTyped[in, out](ctx, c, dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Equal(t, []dspgo.Field{{Name: "question", Type: "str"}, {Name: "hint", Type: "Optional[str]", Description: "A hint, if any"}},
		p.Program().Spec.Signature.Inputs)
	id := p.Program().ID
	hint := "Think of gophers."
	for _, tc := range []struct {
		in   in
		want map[string]any
	}{
		{in{Question: "What is Go?"}, map[string]any{"question": "What is Go?"}},
		{in{Question: "What is Go?", Hint: &hint}, map[string]any{"question": "What is Go?", "hint": hint}},
	} {
		got, err := p.Execute(ctx, tc.in)
		require.NoError(t, err)
		want, err := c.Execute(ctx, id, tc.want)
		require.NoError(t, err)
		assert.Equal(t, want["answer"], got.Answer, "%v", tc.want)
	}
	null, err := c.Execute(ctx, id, map[string]any{"question": "What is Go?", "hint": nil})
	require.NoError(t, err)
	left, err := p.Execute(ctx, in{Question: "What is Go?"})
	require.NoError(t, err)
	assert.NotEqual(t, null["answer"], left.Answer, "left out, not None")
}

// typedDoc is an input model whose field has a default.
type typedDoc struct {
	Text string
	Lang *string `dspy:"lang,omitempty,default=en"`
}

// aged is a model whose field has a default.
type aged struct {
	Name string
	Age  int `dspy:"age,default=7"`
}

// TestTypedDefaults: default= gives a field its Default, the text for
// a str and JSON for other types, a struct's field in its model too; an
// omitempty input left out takes it.
func TestTypedDefaults(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	type in struct {
		Question string
		Limit    *int      `dspy:"limit,omitempty,default=10"`
		Tone     *string   `dspy:"tone,omitempty,default=plain,desc=The tone, if any"`
		Tags     *[]string `dspy:"tags,omitempty,default=[]"`
		Doc      *typedDoc `dspy:"doc,omitempty"`
	}
	type out struct {
		Answer string
		Score  float64 `dspy:"score,default=0.5,desc=0 to 1"`
		Level  string  `dspy:"level,enum=low|high,default=low"`
		People []aged
	}
	p, err := dspgo.NewTyped[in, out](ctx, c, dspgo.ProgramSpec{})
	require.NoError(t, err)
	sig := p.Program().Spec.Signature
	assert.Equal(t, []dspgo.Field{{Name: "question", Type: "str"}, {Name: "limit", Type: "Optional[int]", Default: int64(10)},
		{Name: "tone", Type: "Optional[str]", Description: "The tone, if any", Default: "plain"},
		{Name: "tags", Type: "Optional[list[str]]", Default: []string{}}, {Name: "doc", Type: "Optional[typedDoc]"}}, sig.Inputs)
	assert.Equal(t, []dspgo.Field{{Name: "answer", Type: "str"}, {Name: "score", Type: "float", Description: "0 to 1", Default: 0.5},
		{Name: "level", Type: "Literal['low', 'high']", Default: "low"}, {Name: "people", Type: "list[aged]"}}, sig.Outputs)
	assert.Equal(t, []dspgo.Model{{Name: "aged", Fields: []dspgo.Field{{Name: "name", Type: "str"}, {Name: "age", Type: "int", Default: int64(7)}}},
		{Name: "typedDoc", Fields: []dspgo.Field{{Name: "text", Type: "str"}, {Name: "lang", Type: "Optional[str]", Default: "en"}}}},
		sig.Models)
	ten := 10
	left, err := p.Execute(ctx, in{Question: "What is Go?"})
	require.NoError(t, err)
	given, err := p.Execute(ctx, in{Question: "What is Go?", Limit: &ten})
	require.NoError(t, err)
	assert.Equal(t, given, left, "a nil omitempty input takes its default")
	en := "en"
	left, err = p.Execute(ctx, in{Question: "What is Go?", Doc: &typedDoc{Text: "x"}})
	require.NoError(t, err)
	given, err = p.Execute(ctx, in{Question: "What is Go?", Doc: &typedDoc{Text: "x", Lang: &en}})
	require.NoError(t, err)
	assert.Equal(t, given, left, "a struct's nil omitempty field takes its default")
}

func TestTypedRefusesWhatItCannotMap(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	type embedsPointer struct {
		Q string
		*inner
	}
	type embedsExportedPointer struct {
		Q string
		*Embedded
	}
	type nested struct {
		Q      string
		Person struct{ Name string }
	}
	cases := []struct {
		name   string
		derive func(context.Context, dspgo.Runner) (string, error)
		want   string
	}{
		{"a channel", inputType[chan int], "In field struct { F chan int }.F (chan int): chan int has no DSPy type"},
		{"a function", outputType[func()], "Out field struct { F func() }.F (func()): func() has no DSPy type"},
		{"a complex number", outputType[complex128], "complex128 has no DSPy type"},
		{"uintptr", inputType[uintptr], "uintptr has no DSPy type"},
		{"[]byte", inputType[[]byte], "[]uint8 has no DSPy type: use string for text, or []int for numbers"},
		{"[0]int", inputType[[0]int], "[0]int has no elements"},
		{"an interface with methods", outputType[fmt.Stringer], "interface fmt.Stringer has methods: only the empty interface (any) is Any"},
		{"a float map key", outputType[map[float64]int], "map key type float64 is not a string or an integer type"},
		{"an anonymous struct", outputType[[]struct{ Name string }], "anonymous struct struct { Name string } has no name for its pydantic model: declare it as a named type"},
		{"an anonymous struct field", fieldOf[nested](0), "In field dspgo_test.nested.Person (struct { Name string }): anonymous struct"},
		{"a struct with MarshalText only, as an output", outputType[onlyMarshal], "struct dspgo_test.onlyMarshal has MarshalText or UnmarshalText but not both"},
		{"a recursive type", inputType[recursive], "the type nests more than 16 levels"},
		{"enum= on a float", fieldOf[struct {
			N []float64 `dspy:"n,enum=1|2"`
		}](0), "In field struct { N []float64 \"dspy:\\\"n,enum=1|2\\\"\" }.N ([]float64): enum= applies to strings and integers, and float64 is neither"},
		{"enum= of words on an int", fieldOf[struct {
			N int `dspy:"n,enum=low|high"`
		}](0), `enum value "low" is not an integer from 0 that int holds`},
		{"enum= of a negative int", fieldOf[struct {
			N int `dspy:"n,enum=-1|1"`
		}](0), `enum value "-1" is not an integer from 0 that int holds`},
		{"an empty enum value", fieldOf[struct {
			L string `dspy:"l,enum=a||b"`
		}](1), "enum= has an empty value"},
		{"a quote in an enum value", fieldOf[struct {
			L string `dspy:"l,enum=it's"`
		}](1), `enum value "it's" may not contain quotes or backslashes`},
		{"a repeated enum value", fieldOf[struct {
			L string `dspy:"l,enum=a|a"`
		}](1), `enum value "a" appears twice`},
		{"an unknown tag option", fieldOf[struct {
			L string `dspy:"l,required"`
		}](1), `unknown option "required" (known: input, output, omitempty, enum=A|B, date, datetime, default=VALUE, gt=, ge=, lt=, le=, multiple_of=, min_length=, max_length=, allow_inf_nan=, desc=TEXT)`},
		{"a default= that is no JSON", fieldOf[struct {
			N int `dspy:"n,default=three"`
		}](1), "Out field struct { N int \"dspy:\\\"n,default=three\\\"\" }.N (int): default=three: not a JSON value of int"},
		{"a default= of another type", fieldOf[struct {
			N []int `dspy:"n,default=[1.5]"`
		}](1), "default=[1.5]: the value[0]: expected int, got number 1.5"},
		{"a default= on a struct", fieldOf[struct {
			P Embedded `dspy:"p,default={}"`
		}](1), "default={}: a field that holds a struct (a model) takes no default= in a tag"},
		{"default= twice", fieldOf[struct {
			N int `dspy:"n,default=1,default=2"`
		}](1), "default= appears twice"},
		{"default= that does not fit an output's Go field", fieldOf[struct {
			N uint8 `dspy:"n,default=300"`
		}](1), "default=300 does not fit the field: 300 overflows uint8"},
		{"default= that does not fit a text type", fieldOf[struct {
			T time.Time `dspy:"t,default=tomorrow"`
		}](1), "default=tomorrow does not fit the field: UnmarshalText"},
		{"default=null", fieldOf[struct {
			P *int `dspy:"p,default=null"`
		}](1), "default=null: null is no default"},
		{"default= on an input always sent", fieldOf[struct {
			N int `dspy:"n,default=1"`
		}](0), "default= on an input applies when it is left out, so it is for a pointer tagged omitempty"},
		{"omitempty on a field that is no pointer", fieldOf[struct {
			Hint string `dspy:"hint,omitempty"`
		}](0), "omitempty leaves a nil input out, so it is for a pointer (an Optional input); this field is str"},
		{"omitempty on an output", fieldOf[struct {
			Hint *string `dspy:"hint,omitempty"`
		}](1), "omitempty is for inputs: an output is always in the result"},
		{"a name that is no identifier", fieldOf[struct {
			L string `dspy:"the-name"`
		}](1), `name "the-name" is not a valid identifier`},
		{"a Go name that NFKC changes", fieldOf[struct{ Ｆ int }](1), `name "ｆ" is not in NFKC form`},
		{"a name used twice", fieldOf[struct {
			A string `dspy:"x"`
			B string `dspy:"x"`
		}](1), `name "x" is the name of field`},
		{"an embedded pointer", fieldOf[embedsExportedPointer](0), "embedded pointer *dspgo_test.Embedded is not supported: embed the struct itself, or name the field"},
		{"no fields", fieldOf[struct{ hidden string }](1), "Out type struct { hidden string } has no output field"},
		{"no output fields", fieldOf[struct {
			A string `dspy:"a,input"`
		}](1), "has no output field"},
		{"a pointer to a struct as In", func(ctx context.Context, r dspgo.Runner) (string, error) {
			_, err := dspgo.NewTyped[*typedIn, typedIn](ctx, r, dspgo.ProgramSpec{})
			return "", err
		}, "In type *dspgo_test.typedIn is not a struct type"},
		{"a signature in the spec", func(ctx context.Context, r dspgo.Runner) (string, error) {
			_, err := dspgo.NewTyped[typedIn, typedIn](ctx, r, dspgo.ProgramSpec{Signature: qa})
			return "", err
		}, "leave ProgramSpec.Signature empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.derive(ctx, c)
			require.Error(t, err)
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// An unexported embedded pointer is skipped, as encoding/json does.
	_, err := dspgo.NewTyped[embedsPointer, struct{ A string }](ctx, c, dspgo.ProgramSpec{})
	require.NoError(t, err)
	// Nothing was created by the refusals.
	list, err := c.ListPrograms(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 1)
}

func TestTypedRejectsAnEnumValueTheLiteralLacks(t *testing.T) {
	c, _ := newClient(t)
	type in struct {
		Level  level   `dspy:"level,enum=low|mid|high"`
		Levels []level `dspy:"levels,enum=low|mid|high"`
	}
	p, err := dspgo.NewTyped[in, typedIn](t.Context(), c, dspgo.ProgramSpec{})
	require.NoError(t, err)
	_, err = p.Execute(t.Context(), in{Level: "huge"})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, `input level: "huge" is not one of Literal['low', 'mid', 'high']`)
	_, err = p.Execute(t.Context(), in{Level: "low", Levels: []level{"mid", "tiny"}})
	assert.ErrorContains(t, err, `input levels[1]: "tiny" is not one of Literal['low', 'mid', 'high']`)
}

// failingText fails to marshal.
type failingText struct{}

func (failingText) MarshalText() ([]byte, error) { return nil, errors.New("no text today") }

func TestTypedReportsAMarshalTextFailure(t *testing.T) {
	c, _ := newClient(t)
	type in struct{ Bad []failingText }
	p, err := dspgo.NewTyped[in, typedIn](t.Context(), c, dspgo.ProgramSpec{})
	require.NoError(t, err)
	_, err = p.Execute(t.Context(), in{Bad: []failingText{{}}})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "input bad, field dspgo_test.in.Bad ([]dspgo_test.failingText): MarshalText: no text today")
}

// cannedRunner creates programs on a real client but answers every
// execution with its outputs, as a backend would after conversion.
type cannedRunner struct {
	dspgo.Runner
	outputs map[string]any
}

func (r cannedRunner) Execute(context.Context, string, map[string]any) (map[string]any, error) {
	return r.outputs, nil
}

func TestTypedOutputThatDoesNotFit(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	type out struct {
		Small  int8              `dspy:"small"`
		Count  uint              `dspy:"count"`
		Ratio  float32           `dspy:"ratio"`
		When   time.Time         `dspy:"when"`
		Grid   [][]uint16        `dspy:"grid"`
		ByCode map[int8]string   `dspy:"by_code"`
		Named  map[string]*int16 `dspy:"named"`
	}
	fits := map[string]any{
		"small": int64(-128), "count": int64(7), "ratio": 0.25, "when": "2026-03-04T05:06:07Z",
		"grid": [][]int64{{0, 65535}}, "by_code": map[int64]string{-3: "x"}, "named": map[string]any{"a": int64(1), "b": nil},
	}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for key, val := range fits {
			m[key] = val
		}
		m[k] = v
		return m
	}
	p, err := dspgo.NewTyped[typedIn, out](ctx, cannedRunner{Runner: c, outputs: fits}, dspgo.ProgramSpec{})
	require.NoError(t, err)
	got, err := p.Execute(ctx, typedIn{})
	require.NoError(t, err)
	one := int16(1)
	assert.Equal(t, out{Small: -128, Count: 7, Ratio: 0.25, When: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
		Grid: [][]uint16{{0, 65535}}, ByCode: map[int8]string{-3: "x"}, Named: map[string]*int16{"a": &one, "b": nil}}, got)

	for _, tc := range []struct {
		output string
		value  any
		want   string
	}{
		{"small", int64(128), "output small, field dspgo_test.out.Small (int8): 128 overflows int8"},
		{"count", int64(-1), "output count, field dspgo_test.out.Count (uint): -1 overflows uint"},
		{"ratio", 1e300, "output ratio, field dspgo_test.out.Ratio (float32): 1e+300 overflows float32"},
		{"when", "next Tuesday", `output when, field dspgo_test.out.When (time.Time): UnmarshalText: parsing time "next Tuesday"`},
		{"grid", [][]int64{{1}, {2, 65536}}, "output grid[1][1], field dspgo_test.out.Grid ([][]uint16): 65536 overflows uint16"},
		{"by_code", map[int64]string{300: "x"}, "output by_code[300] (the key), field dspgo_test.out.ByCode (map[int8]string): 300 overflows int8"},
		{"named", map[string]any{"big": int64(1 << 20)}, `output named["big"], field dspgo_test.out.Named (map[string]*int16): 1048576 overflows int16`},
	} {
		t.Run(tc.output, func(t *testing.T) {
			p, err := dspgo.NewTyped[typedIn, out](ctx, cannedRunner{Runner: c, outputs: with(tc.output, tc.value)}, dspgo.ProgramSpec{})
			require.NoError(t, err)
			_, err = p.Execute(ctx, typedIn{})
			assert.ErrorIs(t, err, dspgo.ErrOutputType)
			assert.Equal(t, adapter.CodeInternal, adapter.CodeOf(err))
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// TestTypedConstraints: ge=, le=, … in a dspy tag are the field's
// constraints, in the tag's order, each value as Python prints it; a bad
// one is refused with the tag named.
func TestTypedConstraints(t *testing.T) {
	c, _ := newClient(t)
	type out struct {
		Score float64  `dspy:"score,le=1,ge=0.0,desc=How sure, from 0 to 1"`
		Tags  []string `dspy:"tags,max_length=3"`
		F     float64  `dspy:"f,allow_inf_nan=false"`
	}
	p, err := dspgo.NewTyped[struct{ Q string }, out](t.Context(), c, dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Equal(t, []dspgo.Field{
		{Name: "score", Type: "float", Description: "How sure, from 0 to 1", Constraints: []dspgo.Constraint{{Name: "le", Value: "1"}, {Name: "ge", Value: "0.0"}}},
		{Name: "tags", Type: "list[str]", Constraints: []dspgo.Constraint{{Name: "max_length", Value: "3"}}},
		{Name: "f", Type: "float", Constraints: []dspgo.Constraint{{Name: "allow_inf_nan", Value: "False"}}},
	}, p.Program().Spec.Signature.Outputs)

	_, err = dspgo.NewTyped[struct{ Q string }, struct {
		N int `dspy:"n,ge=zero"`
	}](t.Context(), c, dspgo.ProgramSpec{})
	assert.ErrorContains(t, err, `output field "n": constraint "ge": expected a number, got string "zero"`)
	_, err = dspgo.NewTyped[struct{ Q string }, struct {
		N float64 `dspy:"n,allow_inf_nan=maybe"`
	}](t.Context(), c, dspgo.ProgramSpec{})
	assert.ErrorContains(t, err, "allow_inf_nan=maybe is not a bool")
}
