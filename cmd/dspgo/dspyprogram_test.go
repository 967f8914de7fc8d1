package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunDSPyProgram: dspgo run --program takes a program DSPy saved,
// typed by --signature, or by its default instructions without one.
func TestRunDSPyProgram(t *testing.T) {
	testdata := filepath.Join("..", "..", "internal", "dspystate", "testdata")
	cot := filepath.Join(testdata, "chain_of_thought.json")
	r := cli(t, "", nil, "run", "--adapter", "mock", "--program", cot,
		"--signature", "question, context: list[str] -> answer, confidence: float", "--input", "question=Who?", "--input", `context=["Ann"]`)
	require.Equal(t, 0, r.status, r.stderr)
	assert.Contains(t, r.stdout, `"reasoning"`, "a ChainOfThought")
	assert.Contains(t, r.stdout, `"confidence":0.`, "typed by --signature")

	r = cli(t, "", nil, "run", "--adapter", "mock", "--program", filepath.Join(testdata, "predict_default.json"), "--input", "question=?", "--input", "context=x")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Contains(t, r.stdout, `"answer"`)

	r = cli(t, "", nil, "run", "--adapter", "mock", "--program", filepath.Join(testdata, "predict.json"), "--input", "question=?")
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, "does not say which of its 4 fields are inputs")
	assert.Contains(t, r.stderr, "give --signature")

	r = cli(t, "", nil, "run", "--adapter", "mock", "--program", cot, "--kind", "predict", "--input", "question=?")
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, "--kind and --instructions do not apply to a DSPy program")
}
