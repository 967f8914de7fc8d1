package main

import (
	"os"
	"path/filepath"
	"strings"
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

// TestRunModule: dspgo run --module runs the custom module a handler
// module registered, with --program as its saved state; on the dummy LM it
// answers as a predict of --signature. A module the workers lack fails
// the row's backend call (exit 1) naming the registered ones; --module
// without --signature, or with --kind, is bad usage.
func TestRunModule(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "team_modules.py"),
		[]byte("from dspgo_worker import dspy_module\n\ndspy_module(\"triage\", object)\n"), 0o600))
	state := filepath.Join(dir, "triage.json")
	require.NoError(t, os.WriteFile(state, []byte(`{"classify.predict": {"demos": []}, "metadata": {}}`), 0o600))
	env := []string{"PYTHONPATH=" + dir, "DSPGO_PYTHON__PASS_ENV=PATH,PYTHONPATH", "DSPGO_PYTHON__HANDLERS=team_modules", "PATH=" + os.Getenv("PATH")}

	r := cli(t, "", env, "run", "--adapter", "port", "--module", "triage", "--program", state, "--signature", "ticket -> team: Literal['billing', 'other']",
		"--input", "ticket=I was charged twice")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Regexp(t, `^\{"row":1,"outputs":\{"team":"(billing|other)"\}\}\n$`, r.stdout)

	r = cli(t, "", env, "run", "--adapter", "port", "--module", "summarize", "--signature", "text -> summary", "--input", "text=x")
	assert.Equal(t, 1, r.status)
	assert.Contains(t, r.stderr, `no module "summarize" is registered on this worker (registered: "triage")`)

	// A custom module's file given without --module says to add it.
	r = cli(t, "", env, "run", "--adapter", "mock", "--program", state, "--signature", "ticket -> team", "--input", "ticket=x")
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, "the file holds the state of the predictors classify.predict")
	assert.Contains(t, r.stderr, "add --module NAME")

	for _, args := range [][]string{
		{"--module", "triage", "--input", "ticket=x"},
		{"--module", "triage", "--signature", "ticket -> team", "--kind", "predict", "--input", "ticket=x"},
	} {
		r = cli(t, "", env, append([]string{"run", "--adapter", "mock"}, args...)...)
		assert.Equal(t, 2, r.status, "%v: %s", args, r.stderr)
	}
}

// TestRunProgramOfNoInputs: a signature of no inputs ("-> joke") runs one
// row of none without --input; --inputs still gives rows.
func TestRunProgramOfNoInputs(t *testing.T) {
	r := cli(t, "", nil, "run", "--adapter", "mock", "--signature", "-> joke")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Regexp(t, `^\{"row":1,"outputs":\{"joke":"joke [0-9a-f]{8} [0-9a-f]{8}"\}\}\n$`, r.stdout)
	one := r.stdout

	r = cli(t, "{}\n{}\n", nil, "run", "--adapter", "mock", "--signature", "-> joke", "--inputs", "-")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Equal(t, 2, strings.Count(r.stdout, "\n"))
	assert.True(t, strings.HasPrefix(r.stdout, one))

	r = cli(t, "", nil, "run", "--adapter", "mock", "--signature", "-> joke", "--input", "topic=cats")
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, `input "topic" is not in the signature`)
}

// TestRunProgramOfOptionalInputs: a program whose inputs may all be left
// out runs one row of none without --input and without rows on stdin;
// rows on stdin are read; a required input still needs one.
func TestRunProgramOfOptionalInputs(t *testing.T) {
	sig := "topic: Optional[str] -> joke"
	r := cli(t, "", nil, "run", "--adapter", "mock", "--signature", sig)
	require.Equal(t, 0, r.status, r.stderr)
	assert.Regexp(t, `^\{"row":1,"outputs":\{"joke":"joke [0-9a-f]{8} [0-9a-f]{8}"\}\}\n$`, r.stdout)
	one := r.stdout

	r = cli(t, "{}\n{\"topic\":\"cats\"}\n", nil, "run", "--adapter", "mock", "--signature", sig, "--inputs", "-")
	require.Equal(t, 0, r.status, r.stderr)
	lines := strings.SplitAfter(r.stdout, "\n")
	assert.Equal(t, one, lines[0], "the row of none, as without rows")
	assert.NotEqual(t, strings.TrimPrefix(one, `{"row":1,`), strings.TrimPrefix(lines[1], `{"row":2,`))

	r = cli(t, "", nil, "run", "--adapter", "mock", "--signature", sig, "--inputs", "-")
	assert.Equal(t, 2, r.status, "rows asked for and none given")
	assert.Contains(t, r.stderr, "no input rows")
	r = cli(t, "", nil, "run", "--adapter", "mock", "--signature", "q, "+sig)
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, "no input rows")
}
