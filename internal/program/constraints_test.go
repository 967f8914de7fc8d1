package program_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/testutil"
)

// TestConstraintVectors: every signature of
// protocol/testdata/constraints.json normalizes as it says or fails with
// its message, as in the Python worker. The numbers are read as the
// worker and the mock read them (json.Number: 0 is an int, 0.0 a float).
func TestConstraintVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "protocol", "testdata", "constraints.json"))
	require.NoError(t, err)
	var v struct {
		Specs []specCase `json:"specs"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&v))
	require.Greater(t, len(v.Specs), 10)
	for _, c := range v.Specs {
		c.check(t, c.Name, true)
	}
}

// TestConstraintsFromGo: a Go integer is an int and a Go float a float,
// as Python prints them, whatever their value.
func TestConstraintsFromGo(t *testing.T) {
	c, err := program.Compile(command.Spec{Signature: command.Signature{
		Inputs: []command.Field{{Name: "q"}},
		Outputs: []command.Field{{Name: "score", Type: "float", Constraints: []command.Constraint{
			{Name: "ge", Value: 0}, {Name: "le", Value: 1.0}, {Name: "multiple_of", Value: uint8(2)}, {Name: "gt", Value: json.Number("-0.5")}}},
			{Name: "tags", Type: "list[str]", Constraints: []command.Constraint{{Name: "max_length", Value: float32(3)}}}},
	}})
	require.NoError(t, err)
	assert.Equal(t, []command.Constraint{{Name: "ge", Value: "0"}, {Name: "le", Value: "1.0"}, {Name: "multiple_of", Value: "2"}, {Name: "gt", Value: "-0.5"}},
		c.Spec.Signature.Outputs[0].Constraints)
	assert.Equal(t, []command.Constraint{{Name: "max_length", Value: "3"}}, c.Spec.Signature.Outputs[1].Constraints)
	plain, err := program.Compile(command.Spec{Signature: command.Signature{Inputs: []command.Field{{Name: "q"}}, Outputs: []command.Field{{Name: "score", Type: "float"}}}})
	require.NoError(t, err)
	assert.NotEqual(t, plain.Hash, c.Hash, "constraints are part of the hash")
	none, err := program.Compile(command.Spec{Signature: command.Signature{Inputs: []command.Field{{Name: "q"}}, Outputs: []command.Field{{Name: "score", Type: "float", Constraints: []command.Constraint{}}}}})
	require.NoError(t, err)
	assert.Equal(t, plain.Hash, none.Hash, "no constraints: the hash of a spec from before constraints")
}
