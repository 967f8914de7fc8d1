package program_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/testutil"
)

// modelVectors is protocol/testdata/models.json, which the Python
// worker's tests check too.
type modelVectors struct {
	Specs []struct {
		Name       string             `json:"name"`
		Signature  command.Signature  `json:"signature"`
		Normalized *command.Signature `json:"normalized"`
		Error      string             `json:"error"`
	} `json:"specs"`
	Models  []command.Model `json:"models"`
	Convert []convertCase   `json:"convert"`
}

func loadModelVectors(t *testing.T) modelVectors {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "protocol", "testdata", "models.json"))
	require.NoError(t, err)
	var v modelVectors
	require.NoError(t, json.Unmarshal(data, &v))
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
		compiled, err := program.Compile(command.Spec{Signature: c.Signature})
		if c.Error != "" {
			var aerr *adapter.Error
			if assert.True(t, errors.As(err, &aerr), "%s: %v", c.Name, err) {
				assert.Equal(t, adapter.CodeInvalidArgument, aerr.Code, c.Name)
				assert.Equal(t, c.Error, aerr.Message, c.Name)
			}
			continue
		}
		require.NoError(t, err, c.Name)
		assert.Equal(t, *c.Normalized, compiled.Spec.Signature, c.Name)
		again, err := program.Compile(compiled.Spec)
		require.NoError(t, err, c.Name)
		assert.Equal(t, compiled.Hash, again.Hash, "%s: the normalized spec hashes the same", c.Name)
	}
	models, err := program.CompileModels(v.Models)
	require.NoError(t, err)
	for _, c := range v.Convert {
		checkConversion(t, models.ParseType, c)
	}
}
