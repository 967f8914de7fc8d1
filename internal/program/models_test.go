package program_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// modelVectors is protocol/testdata/models.json, which the Python
// worker's tests check too.
type modelVectors struct {
	Specs   []specCase      `json:"specs"`
	Models  []command.Model `json:"models"`
	Convert []convertCase   `json:"convert"`
}

func loadModelVectors(t *testing.T) modelVectors {
	t.Helper()
	v := loadVectors[modelVectors](t, "models.json")
	require.NotEmpty(t, v.Specs)
	require.NotEmpty(t, v.Convert)
	return v
}

// TestModelVectors: every signature of protocol/testdata/models.json
// normalizes as it says or fails with its message, with
// CodeInvalidArgument, and every value of a model type converts to its
// result or fails with its message: the same as in the Python worker.
func TestModelVectors(t *testing.T) {
	v := loadModelVectors(t)
	for _, c := range v.Specs {
		c.check(t, c.Name, true)
	}
	models, err := program.CompileModels(v.Models)
	require.NoError(t, err)
	for _, c := range v.Convert {
		checkConversion(t, models.ParseType, c)
	}
}

// TestModelLimitsKeepValuesSmall: the shapes an adversary sends compile
// (or are refused) in linear time, and the dummy LM's values of the
// largest models allowed stay small: a diamond at the size limit, a chain
// of lists at the depth limit, a model of 40,000 fields.
func TestModelLimitsKeepValuesSmall(t *testing.T) {
	field := func(name, typ string) command.Field { return command.Field{Name: name, Type: typ} }
	var diamond, chain []command.Model
	for i := range 11 {
		next := fmt.Sprintf("D%d", i+1)
		diamond = append(diamond, command.Model{Name: fmt.Sprintf("D%d", i), Fields: []command.Field{field("a", next), field("b", next)}})
	}
	diamond = append(diamond, command.Model{Name: "D11", Fields: []command.Field{field("x", "")}})
	for i := range 15 {
		chain = append(chain, command.Model{Name: fmt.Sprintf("L%d", i), Fields: []command.Field{field("next", fmt.Sprintf("list[L%d]", i+1))}})
	}
	chain = append(chain, command.Model{Name: "L15", Fields: []command.Field{field("x", "")}})
	wide := command.Model{Name: "Wide"}
	for i := range 40000 {
		wide.Fields = append(wide.Fields, field(fmt.Sprintf("f%d", i), ""))
	}
	for _, tc := range []struct {
		name   string
		out    string
		models []command.Model
		fields int
	}{
		{"a diamond", "D0", diamond, 6142},
		{"a chain of lists", "list[L0]", chain, 16},
	} {
		c, err := program.Compile(command.Spec{Signature: command.Signature{
			Inputs: []command.Field{field("q", "")}, Outputs: []command.Field{field("a", tc.out)}, Models: tc.models}})
		require.NoError(t, err, tc.name)
		out, err := c.DummyOutputs(map[string]any{"q": "?"})
		require.NoError(t, err, tc.name)
		data, err := json.Marshal(out)
		require.NoError(t, err)
		assert.Equal(t, tc.fields, strings.Count(string(data), `":`)-1, "%s: one value of each field of each model", tc.name)
	}

	sig := command.Signature{Inputs: []command.Field{field("q", "")}, Outputs: []command.Field{field("a", "Wide")}, Models: []command.Model{wide}}
	_, err := program.Compile(command.Spec{Signature: sig})
	assert.ErrorContains(t, err, `model "Wide": a value of it holds more than 10000 fields of models`)

	// 400 models, each naming every later one: refused for its depth.
	var dense []command.Model
	for i := range 400 {
		m := command.Model{Name: fmt.Sprintf("N%d", i), Fields: []command.Field{field("x", "")}}
		for j := i + 1; j < 400; j++ {
			m.Fields = append(m.Fields, field(fmt.Sprintf("n%d", j), fmt.Sprintf("Optional[N%d]", j)))
		}
		dense = append(dense, m)
	}
	sig = command.Signature{Inputs: []command.Field{field("q", "")}, Outputs: []command.Field{field("a", "N0")}, Models: dense}
	_, err = program.Compile(command.Spec{Signature: sig})
	assert.ErrorContains(t, err, `model "N0" nests more than 32 levels`)
}
