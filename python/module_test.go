package python_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/lmtest"
	"github.com/dspgo/dspgo/internal/testutil"
)

// draftModule is a handler module, as a data scientist's project holds
// one: a custom dspy.Module of two steps, registered for dspgo.
const draftModule = `import dspy
from dspgo_worker import dspy_module


@dspy_module("draft")
class Draft(dspy.Module):
    def __init__(self):
        super().__init__()
        self.draft = dspy.ChainOfThought("question -> draft")
        self.answer = dspy.Predict("question, draft -> answer, confidence: float")

    def forward(self, question):
        draft = self.draft(question=question).draft
        return self.answer(question=question, draft=draft)
`

// saveDraft is the notebook's side: it optimizes the module by hand (an
// instruction and a demo for the answering step) and saves it as DSPy
// does, printing the file.
const saveDraft = `import json, sys, dspy
from draft_module import Draft
m = Draft()
m.answer.signature = m.answer.signature.with_instructions("Answer in one word, from the draft.")
m.answer.demos = [dspy.Example(question="Who wrote it?", draft="Ann did.", answer="Ann", confidence=0.9)]
m.save(sys.argv[1])
`

// loadDraft loads a state file into a new module with DSPy's own load,
// and prints the answering step's instructions.
const loadDraft = `import sys
from draft_module import Draft
m = Draft()
m.load(sys.argv[1])
print(m.answer.signature.instructions)
`

// TestCustomModuleOnWorkers: a custom dspy.Module registered by a
// python.handlers module runs as a KindModule program on a port worker and
// on a pool, with the state DSPy saved loaded into it: each step calls the
// LM (the answering one with the saved instructions and demo), the outputs
// come back typed, and ExportDSPy gives back a file DSPy loads.
func TestCustomModuleOnWorkers(t *testing.T) {
	py := testutil.DSPyPython(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "draft_module.py"), []byte(draftModule), 0o644))
	saved := filepath.Join(dir, "draft.json")
	runPython(t, py, dir, saveDraft, saved)
	state, err := os.ReadFile(saved)
	require.NoError(t, err)

	srv := lmtest.New(t, lmtest.Options{})
	worker := func(t *testing.T) port.Options {
		o := dspyWorker(t)
		o.Handlers = []string{"draft_module"}
		o.Env = append(o.Env, "PYTHONPATH="+testutil.PythonDir()+":"+dir)
		return o
	}
	for name, open := range backendsOf(worker) {
		t.Run(name, func(t *testing.T) {
			c := dspgo.NewClient(open(t))
			require.NoError(t, c.ConfigureLM(t.Context(), dspgo.LMConfig{Provider: dspgo.ProviderOpenAI, Engine: "dspy", Model: "test-model",
				BaseURL: srv.URL(), APIKeyEnv: keyEnv}))
			p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Kind: dspgo.KindModule, Module: "draft",
				Signature: dspgo.MustParseSignature("question -> answer, confidence: float"), State: state})
			require.NoError(t, err)
			srv.Reset()
			res, err := c.ExecuteDetailed(t.Context(), p.ID, map[string]any{"question": "What is Go?"})
			require.NoError(t, err)
			assert.IsType(t, "", res.Outputs["answer"])
			assert.IsType(t, 0.0, res.Outputs["confidence"])
			assert.Positive(t, res.Usage.Prompt)

			reqs := srv.Requests()
			require.Len(t, reqs, 2, "the draft step, then the answer step")
			assert.Equal(t, []string{"reasoning", "draft"}, fieldNames(reqs[0]))
			assert.Equal(t, []string{"answer", "confidence"}, fieldNames(reqs[1]))
			answer := promptOf(reqs[1])
			assert.Contains(t, answer, "Answer in one word, from the draft.", "the saved instructions")
			assert.Contains(t, answer, "Who wrote it?", "the saved demo")

			_, err = c.CreateProgram(t.Context(), dspgo.ProgramSpec{Kind: dspgo.KindModule, Module: "summarize",
				Signature: dspgo.MustParseSignature("question -> answer")})
			assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
			assert.ErrorContains(t, err, `no module "summarize" is registered on this worker (registered: "draft")`)

			var exported bytes.Buffer
			require.NoError(t, p.ExportDSPy(&exported))
			file := filepath.Join(t.TempDir(), "exported.json")
			require.NoError(t, os.WriteFile(file, exported.Bytes(), 0o644))
			assert.Equal(t, "Answer in one word, from the draft.\n", runPython(t, py, dir, loadDraft, file))
		})
	}
}

// runPython runs script with the interpreter py, dir on its path, and
// args; it returns what the script printed.
func runPython(t *testing.T, py, dir, script string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), py, append([]string{"-c", script}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+testutil.PythonDir()+":"+dir, "DSPY_CACHEDIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	return string(out)
}

func fieldNames(r lmtest.Request) []string {
	var names []string
	for _, f := range r.Fields {
		names = append(names, f.Name)
	}
	return names
}

func promptOf(r lmtest.Request) string {
	var parts []string
	for _, m := range r.Messages {
		parts = append(parts, m.Content)
	}
	return strings.Join(parts, "\n")
}

// extractModule is an extraction module as DSPy users write one: a
// class-based signature whose outputs are pydantic models.
const extractModule = `import dspy, pydantic
from dspgo_worker import dspy_module


class Entity(pydantic.BaseModel):
    name: str
    kind: str


class Extract(dspy.Signature):
    """Extract the entities of the text."""

    text: str = dspy.InputField()
    entities: list[Entity] = dspy.OutputField()
    main: Entity = dspy.OutputField()


@dspy_module("extract")
class Extractor(dspy.Module):
    def __init__(self):
        super().__init__()
        self.extract = dspy.Predict(Extract)

    def forward(self, text):
        return self.extract(text=text)
`

// TestPydanticOutputsOfAModule: a module whose outputs are pydantic models
// is read by NewTyped into Go values: a list of them as maps, one into a
// json.RawMessage unmarshalled into the Go struct of the same fields.
func TestPydanticOutputsOfAModule(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "extract_module.py"), []byte(extractModule), 0o644))
	o := dspyWorker(t)
	o.Handlers = []string{"extract_module"}
	o.Env = append(o.Env, "PYTHONPATH="+testutil.PythonDir()+":"+dir)
	a, err := port.New(t.Context(), o)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close(context.Background())) })
	srv := lmtest.New(t, lmtest.Options{})
	c := dspgo.NewClient(a)
	require.NoError(t, c.ConfigureLM(t.Context(), dspgo.LMConfig{Provider: dspgo.ProviderOpenAI, Engine: "dspy", Model: "test-model",
		BaseURL: srv.URL(), APIKeyEnv: keyEnv}))

	type in struct{ Text string }
	type out struct {
		Entities []map[string]any
		Main     json.RawMessage
	}
	p, err := dspgo.NewTyped[in, out](t.Context(), c, dspgo.ProgramSpec{Kind: dspgo.KindModule, Module: "extract"})
	require.NoError(t, err)
	assert.Equal(t, "text -> entities: list[dict[str, Any]], main: Any", p.Program().Spec.Signature.String())
	got, err := p.Execute(t.Context(), in{Text: "Ann is in Oslo."})
	require.NoError(t, err)
	require.NotEmpty(t, got.Entities, "the LM server answers a list of entities")
	for _, e := range got.Entities {
		assert.IsType(t, "", e["name"])
		assert.IsType(t, "", e["kind"])
	}
	var main struct{ Name, Kind string }
	require.NoError(t, json.Unmarshal(got.Main, &main))
	assert.NotEmpty(t, main.Name)
	assert.NotEmpty(t, main.Kind)
	require.Len(t, srv.Requests(), 1)
}
