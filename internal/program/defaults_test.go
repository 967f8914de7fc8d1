package program_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/testutil"
)

// defaultVectors is protocol/testdata/defaults.json, which the Python
// worker's tests check too (its replies only there: Go never reads an
// LM's reply).
type defaultVectors struct {
	Specs []specCase `json:"specs"`
	Runs  []struct {
		Name      string            `json:"name"`
		Signature command.Signature `json:"signature"`
		Inputs    map[string]any    `json:"inputs"`
		Result    json.RawMessage   `json:"result"`
		Error     string            `json:"error"`
	} `json:"runs"`
}

// loadDefaultVectors reads defaults.json twice: numbers as float64 (as
// encoding/json decodes a spec file) and as json.Number (as the mock
// decodes requests).
func loadDefaultVectors(t *testing.T) map[string]defaultVectors {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "protocol", "testdata", "defaults.json"))
	require.NoError(t, err)
	var plain, numbers defaultVectors
	require.NoError(t, json.Unmarshal(data, &plain))
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&numbers))
	require.NotEmpty(t, plain.Specs)
	require.NotEmpty(t, plain.Runs)
	return map[string]defaultVectors{"float64": plain, "json.Number": numbers}
}

// TestDefaultVectors: every signature of protocol/testdata/defaults.json
// normalizes as it says (its defaults converted) or fails with its
// message, with CodeInvalidArgument, and the inputs of every run convert
// to its result (defaults filled in) or fail with its message: the same
// as in the Python worker.
func TestDefaultVectors(t *testing.T) {
	for decoding, v := range loadDefaultVectors(t) {
		for _, c := range v.Specs {
			// Messages as Python's with json.Number; a float64 is named as a Go value.
			c.check(t, decoding+": "+c.Name, decoding == "json.Number")
		}
		for _, c := range v.Runs {
			name := decoding + ": " + c.Name
			compiled, err := program.Compile(command.Spec{Signature: c.Signature})
			require.NoError(t, err, name)
			got, err := compiled.Inputs(c.Inputs)
			if c.Error != "" {
				assertInvalid(t, err, c.Error, name)
				continue
			}
			require.NoError(t, err, name)
			want, err := program.CanonicalJSON(c.Result)
			require.NoError(t, err)
			assert.Equal(t, string(want), mustCanonical(t, got), name)
		}
	}
}

// TestDefaultsAreCopies: a default an input or a model's field takes is
// a value of its own, so a caller (or an adapter) that changes it does
// not change the next execution's.
func TestDefaultsAreCopies(t *testing.T) {
	compiled, err := program.Compile(command.Spec{Signature: command.Signature{
		Inputs: []command.Field{
			{Name: "tags", Type: "list[str]", Default: []string{"a"}},
			{Name: "doc", Type: "Doc", Default: map[string]any{}},
		},
		Outputs: []command.Field{{Name: "a"}},
		Models:  []command.Model{{Name: "Doc", Fields: []command.Field{{Name: "meta", Type: "dict[str, int]", Default: map[string]any{"n": 1}}}}},
	}})
	require.NoError(t, err)
	first, err := compiled.Inputs(map[string]any{})
	require.NoError(t, err)
	first["tags"].([]string)[0] = "changed"
	first["doc"].(map[string]any)["meta"].(map[string]int64)["n"] = 2
	second, err := compiled.Inputs(map[string]any{})
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, second["tags"])
	assert.Equal(t, map[string]any{"meta": map[string]int64{"n": 1}}, second["doc"])
	assert.Equal(t, []string{"a"}, compiled.Spec.Signature.Inputs[0].Default, "the spec's default is unchanged")

	// Nor does changing the spec's defaults (a Program's Spec is the
	// compiled spec) change what an execution takes.
	compiled.Spec.Signature.Inputs[0].Default.([]string)[0] = "changed"
	compiled.Spec.Signature.Models[0].Fields[0].Default.(map[string]int64)["n"] = 3
	third, err := compiled.Inputs(map[string]any{})
	require.NoError(t, err)
	assert.Equal(t, second, third)
}

// TestDefaultsOfNilValues: a nil slice, map or pointer as a Default is
// none, as its JSON (null) is to the worker; an empty one is a default.
func TestDefaultsOfNilValues(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		def  any
		none bool
	}{
		{"list[str]", []string(nil), true},
		{"dict[str, int]", map[string]int(nil), true},
		{"Optional[int]", (*int)(nil), true},
		{"Any", json.RawMessage("null"), true},
		{"list[str]", []string{}, false},
		{"dict[str, int]", map[string]int{}, false},
	} {
		what := fmt.Sprintf("%s %#v", tc.typ, tc.def)
		compiled, err := program.Compile(command.Spec{Signature: command.Signature{
			Inputs: []command.Field{{Name: "x", Type: tc.typ, Default: tc.def}}, Outputs: []command.Field{{Name: "a"}}}})
		require.NoError(t, err, what)
		assert.Equal(t, tc.none, compiled.Spec.Signature.Inputs[0].Default == nil, what)
		data, err := json.Marshal(compiled.Spec)
		require.NoError(t, err)
		assert.Equal(t, tc.none, !strings.Contains(string(data), `"default"`), "%s: %s", what, data)
	}
	// A model's field's nil default is none too, whichever model comes
	// first: B's y is null in A's default.
	for _, def := range []any{[]int(nil), map[string]any(nil), json.RawMessage("null")} {
		a := command.Model{Name: "A", Fields: []command.Field{{Name: "b", Type: "B", Default: map[string]any{}}}}
		b := command.Model{Name: "B", Fields: []command.Field{{Name: "y", Type: "Optional[list[int]]", Default: def}}}
		for _, models := range [][]command.Model{{a, b}, {b, a}} {
			compiled, err := program.Compile(command.Spec{Signature: command.Signature{
				Inputs: []command.Field{{Name: "p", Type: "A"}}, Outputs: []command.Field{{Name: "x"}}, Models: models}})
			require.NoError(t, err, "%#v", def)
			got, err := compiled.Inputs(map[string]any{"p": map[string]any{}})
			require.NoError(t, err)
			assert.Equal(t, map[string]any{"p": map[string]any{"b": map[string]any{"y": nil}}}, got, "%#v, %s first", def, models[0].Name)
		}
	}
}
