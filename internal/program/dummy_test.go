package program_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden dummy-LM vectors")

// dummyCase is one vector of protocol/testdata/dummy_lm.json: the Python
// worker's dummy provider must give the same spec_hash and outputs.
type dummyCase struct {
	Name     string          `json:"name"`
	Spec     command.Spec    `json:"spec"`
	Inputs   json.RawMessage `json:"inputs"`
	SpecHash string          `json:"spec_hash"`
	Outputs  json.RawMessage `json:"outputs"`
}

func dummyCases(t *testing.T) []dummyCase {
	sig := func(s string) command.Signature {
		out, err := program.ParseSignature(s)
		require.NoError(t, err)
		return out
	}
	return []dummyCase{
		{Name: "qa", Spec: command.Spec{Signature: sig("question -> answer")}, Inputs: json.RawMessage(`{"question":"What is Go?"}`)},
		{Name: "qa_other_input", Spec: command.Spec{Signature: sig("question -> answer")}, Inputs: json.RawMessage(`{"question":"What is Python?"}`)},
		{Name: "rag", Spec: command.Spec{Signature: sig("question, context: list[str] -> answer, confidence: float"), Instructions: "Answer from the context."},
			Inputs: json.RawMessage(`{"question":"Who?","context":["a","b"]}`)},
		{Name: "chain_of_thought", Spec: command.Spec{Signature: sig("question -> answer"), Kind: command.KindChainOfThought}, Inputs: json.RawMessage(`{"question":"What is Go?"}`)},
		{Name: "every_type", Spec: command.Spec{Signature: sig("x -> s: str, i: int, f: float, b: bool, l: list[int], d: dict[str, float], lit: Literal['red', 'green', 'blue'], nested: list[dict[str, list[str]]]")},
			Inputs: json.RawMessage(`{"x":"seed"}`)},
		{Name: "typed_inputs", Spec: command.Spec{Signature: sig("n: int, f: float, ok: bool, m: dict[str, int] -> out")},
			Inputs: json.RawMessage(`{"n":3,"f":2.0,"ok":false,"m":{"b":2,"a":1}}`)},
		{Name: "float_input_forms", Spec: command.Spec{Signature: sig("f: float, g: float -> out")},
			Inputs: json.RawMessage(`{"f":921460748335552300,"g":1.5e-7}`)},
		{Name: "unicode", Spec: command.Spec{Signature: sig("text -> summary"), Instructions: "Résumé — 要約 🎉"},
			Inputs: json.RawMessage(`{"text":"héllo \"wörld\"\n\u0001 世界 🎉"}`)},
		{Name: "optional_union_any_tuple", Spec: command.Spec{Signature: sig("x: Any, o: Optional[int], u: int | str, t: Tuple[int, str] -> " +
			"a: Any, b: Optional[int], c: list[str] | None, d: Union[int, str, bool], e: tuple[int, str, Literal['x', 'y']], " +
			"f: tuple[float, ...], g: list[Optional[Union[float, bool]]], h: Optional[Any]")},
			Inputs: json.RawMessage(`{"x":{"k":[1,2.5,null,"s"]},"o":null,"u":"7","t":[1.0,"a"]}`)},
		{Name: "optional_union_any_tuple_other_inputs", Spec: command.Spec{Signature: sig("x: Any, o: Optional[int], u: int | str, t: Tuple[int, str] -> " +
			"a: Any, b: Optional[int], c: list[str] | None, d: Union[int, str, bool], e: tuple[int, str, Literal['x', 'y']], " +
			"f: tuple[float, ...], g: list[Optional[Union[float, bool]]], h: Optional[Any]")},
			Inputs: json.RawMessage(`{"x":null,"o":3,"u":7,"t":[2,"b"]}`)},
		{Name: "optional_input_left_out", Spec: command.Spec{Signature: sig("question, hint: Optional[str] -> answer, n: int")},
			Inputs: json.RawMessage(`{"question":"What is Go?"}`)},
		{Name: "optional_input_null", Spec: command.Spec{Signature: sig("question, hint: Optional[str] -> answer, n: int")},
			Inputs: json.RawMessage(`{"question":"What is Go?","hint":null}`)},
		{Name: "dict_keys", Spec: command.Spec{Signature: sig("di: dict[int, list[str]], dl: dict[Literal['a', 'b'], int] -> " +
			"g: dict[int, str], h: dict[Literal['p', 'q'], list[int]], k: dict[str, Optional[int]]")},
			Inputs: json.RawMessage(`{"di":{"10":["a"],"9":[],"-1":["b"],"+2":[]},"dl":{"b":2}}`)},
		{Name: "dates", Spec: command.Spec{Signature: sig("day: datetime.date, at: datetime.datetime -> due: datetime.date, " +
			"seen: list[datetime.datetime], next: Optional[datetime.date], by_name: dict[str, datetime.datetime]")},
			Inputs: json.RawMessage(`{"day":"2026-12-07","at":"2026-12-07 11:05:00.5+00:00"}`)},
		{Name: "descriptions", Spec: command.Spec{Signature: command.Signature{
			Inputs:  []command.Field{{Name: "q", Type: "str", Description: "the question"}},
			Outputs: []command.Field{{Name: "a", Type: "list[ str ]", Description: "answers"}}}},
			Inputs: json.RawMessage(`{"q":"?"}`)},
		{Name: "models", Spec: command.Spec{Signature: command.Signature{
			Inputs:  []command.Field{{Name: "doc", Type: "Document"}},
			Outputs: []command.Field{{Name: "best", Type: "Person"}, {Name: "people", Type: "list[Person]"}, {Name: "maybe", Type: "Optional[Place]"}},
			Models: []command.Model{
				{Name: "Person", Description: "A person named in the text.", Fields: []command.Field{{Name: "name"},
					{Name: "age", Type: "int", Description: "in years"}, {Name: "born", Type: "Optional[datetime.date]"}, {Name: "home", Type: "Place"}}},
				{Name: "Place", Fields: []command.Field{{Name: "city"}, {Name: "tags", Type: "dict[str, Literal['a', 'b']]"}}},
				{Name: "Document", Fields: []command.Field{{Name: "text"}, {Name: "source", Type: "Optional[Place]"}}},
			}}},
			Inputs: json.RawMessage(`{"doc":{"text":"Ann lives in Oslo.","ignored":1}}`)},
		{Name: "literals", Spec: command.Spec{Signature: sig(`flag: Literal[True, False], pick: Literal['a', None] -> yes: Literal[True, False], ` +
			`quote: Literal["it's", 'a\\b', 'tab\t'], maybe: Literal['a', None], ratio: Literal[1.5, 2.5e-7], ` +
			`mixed: Literal['x', 1, 1.5, True, None], many: list[Literal[True, None, 0.5]], keyed: dict[Literal["it's", 'a"b'], Literal[False, 2.5]]`)},
			Inputs: json.RawMessage(`{"flag":true,"pick":null}`)},
	}
}

func TestDummyOutputsGolden(t *testing.T) {
	path := filepath.Join(testutil.RepoRoot(), "protocol", "testdata", "dummy_lm.json")
	cases := dummyCases(t)
	for i := range cases {
		c, err := program.Compile(cases[i].Spec)
		require.NoError(t, err)
		var raw map[string]any
		dec := json.NewDecoder(bytes.NewReader(cases[i].Inputs))
		dec.UseNumber()
		require.NoError(t, dec.Decode(&raw))
		inputs, err := c.Inputs(raw)
		require.NoError(t, err)
		outputs, err := c.DummyOutputs(inputs)
		require.NoError(t, err)
		again, err := c.DummyOutputs(inputs)
		require.NoError(t, err)
		assert.Equal(t, outputs, again, "deterministic")
		_, err = c.Outputs(outputs)
		require.NoError(t, err, "dummy outputs convert to their declared types")

		cases[i].SpecHash = c.Hash
		cases[i].Outputs, err = json.Marshal(outputs)
		require.NoError(t, err)
	}
	assert.NotEqual(t, string(cases[0].Outputs), string(cases[1].Outputs), "different inputs, different outputs")

	got, err := json.MarshalIndent(map[string]any{
		"about": "Golden vectors of the dummy language model (docs/protocol.md). For each case, compiling spec gives spec_hash and executing it on inputs gives outputs, in Go (internal/program) and in the Python worker alike. Regenerate with: go test ./internal/program -run TestDummyOutputsGolden -update",
		"cases": cases,
	}, "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update to create it")
	assert.Equal(t, string(want), string(got), "the dummy LM changed: that breaks the contract with the Python worker")
}
