package dspgo_test

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
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/testutil"
)

// rag is the signature of the saved-program tests.
const rag = "question, context: list[str] -> answer, confidence: float"

// TestLoadAndExportDSPyProgram loads the programs DSPy saved in
// internal/dspystate/testdata, creates them, and exports them back.
func TestLoadAndExportDSPyProgram(t *testing.T) {
	search := dspgo.WithTool("search", "Searches the web.",
		json.RawMessage(`{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer","default":3}}}`),
		func(context.Context, json.RawMessage) (any, error) { return "found", nil })
	c, _ := newClient(t, search)
	for _, file := range []string{"predict.json", "chain_of_thought.json", "react.json", "react_optimized.json"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("internal", "dspystate", "testdata", file))
			require.NoError(t, err)
			spec, err := dspgo.LoadDSPyProgram(bytes.NewReader(data), rag)
			require.NoError(t, err)
			assert.Equal(t, "Answer the question from the context.", spec.Instructions)
			assert.Equal(t, "the question to answer", spec.Signature.Inputs[0].Description)
			require.Len(t, spec.Demos, 2)
			p, err := c.CreateProgram(t.Context(), spec)
			require.NoError(t, err)

			var exported bytes.Buffer
			require.NoError(t, p.ExportDSPy(&exported))
			again, err := dspgo.LoadDSPyProgram(&exported, rag)
			require.NoError(t, err)
			assert.Equal(t, spec, again)
		})
	}
	_, err := dspgo.LoadDSPyProgram(strings.NewReader("{}"), "question ->")
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "a bad signature")
}

// dspyStep is a step of testdata/dspy_roundtrip.py: "save" the module
// with the spec's demos to path, or "load" it from path and save it there.
type dspyStep struct {
	Mode string `json:"mode"`
	Path string `json:"path"`
}

// dspyJob runs testdata/dspy_roundtrip.py with the dspy test environment's
// interpreter and returns the module's state after each step.
func dspyJob(t *testing.T, spec command.Spec, tools []command.ToolSpec, steps ...dspyStep) []string {
	t.Helper()
	job, err := json.Marshal(map[string]any{"spec": spec, "tools": tools, "steps": steps})
	require.NoError(t, err)
	cmd := exec.Command(testutil.DSPyPython(t), filepath.Join(testutil.RepoRoot(), "testdata", "dspy_roundtrip.py"), string(job))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+testutil.PythonDir(), "PYTHONDONTWRITEBYTECODE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	states := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, states, len(steps))
	return states
}

// TestDSPyProgramRoundTrip, with the real DSPy, for each kind: DSPy's
// save, loaded by dspgo and exported again, loads in DSPy to the same
// state as the saved module's; and dspgo's export, loaded and saved by
// DSPy, loads in dspgo to the same spec.
func TestDSPyProgramRoundTrip(t *testing.T) {
	testutil.DSPyPython(t)
	tool := command.ToolSpec{Name: "lookup", Description: "Looks a topic up.\nIn the wiki.",
		Schema: json.RawMessage(`{"type":"object","properties":{"topic":{"type":"string"},"depth":{"type":"integer","default":1}}}`)}
	c, _ := newClient(t, dspgo.WithTool(tool.Name, tool.Description, tool.Schema, func(context.Context, json.RawMessage) (any, error) { return nil, nil }))
	sig := dspgo.MustParseSignature("question, context: list[str], k: dict[str, Optional[float]] -> answer, confidence: float, tags: list[str]")
	sig.Inputs[0].Description = "the question to answer"
	sig.Outputs[0].Description = "a short answer"
	sigText := sig.String()
	demos := []dspgo.Demo{
		{Inputs: map[string]any{"question": "Who wrote it?", "context": []string{"Ann wrote it."}, "k": map[string]any{"b": 0.5, "a": nil}},
			Outputs: map[string]any{"answer": "Ann", "confidence": 1, "tags": []string{"who"}}, Reasoning: "The context names Ann."},
		{Inputs: map[string]any{"question": "When? \"Soon\" <&>", "context": []string{}, "k": map[string]any{}},
			Outputs: map[string]any{"answer": "In 1999 — 日本", "confidence": 0.25, "tags": []string{}}},
	}
	for _, kind := range []string{dspgo.KindPredict, dspgo.KindChainOfThought, dspgo.KindReact} {
		for _, instructions := range []string{"", "Answer the question from the context.\nBe brief."} {
			t.Run(kind+map[bool]string{true: "/default_instructions", false: "/instructions"}[instructions == ""], func(t *testing.T) {
				t.Parallel() // each job starts Python and imports dspy
				ds := demos
				if kind != dspgo.KindChainOfThought {
					ds = []dspgo.Demo{demos[0], demos[1]}
					ds[0].Reasoning = ""
				}
				p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: sig, Instructions: instructions, Kind: kind, Demos: ds})
				require.NoError(t, err)
				var tools []command.ToolSpec
				if kind == dspgo.KindReact {
					tools = []command.ToolSpec{tool}
				}
				dspyRoundTrip(t, c, p, tools, sigText)
			})
		}
	}
	t.Run("react/optimized", func(t *testing.T) {
		t.Parallel()
		trajectory, empty := "[[ ## thought_0 ## ]]\nLook it up.\n\n[[ ## tool_name_0 ## ]]\nlookup", ""
		extraction := demos[0]
		extraction.Trajectory = &trajectory
		steps := []dspgo.Demo{
			{Inputs: demos[0].Inputs, Trajectory: &empty,
				Outputs: map[string]any{"next_thought": "Look it up.", "next_tool_name": "lookup", "next_tool_args": map[string]any{"topic": "it", "depth": 2.5}}},
			{Inputs: map[string]any{"question": "When?"}, Trajectory: &trajectory,
				Outputs: map[string]any{"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": map[string]any{}}},
			{Inputs: demos[1].Inputs, Outputs: map[string]any{"next_thought": "No trajectory."}},
		}
		p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: sig, Instructions: "Answer the question.", Kind: dspgo.KindReact,
			Demos: []dspgo.Demo{extraction, demos[1]}, StepInstructions: "Look the topic up once, then finish.\nCite the wiki.", StepDemos: steps})
		require.NoError(t, err)
		dspyRoundTrip(t, c, p, []command.ToolSpec{tool}, sigText)
	})
}

// TestLoadDSPyProgramModelsNeedASignature: the file holds no types, so
// models without the signature that names them are an error.
func TestLoadDSPyProgramModelsNeedASignature(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("internal", "dspystate", "testdata", "predict.json"))
	require.NoError(t, err)
	_, err = dspgo.LoadDSPyProgram(bytes.NewReader(data), "", dspgo.Model{Name: "Person", Fields: []dspgo.Field{{Name: "name"}}})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "models need the signature whose types name them")
}

// TestDSPyProgramRoundTripModels: the round trip of a program whose types
// name pydantic models, its demos holding their values.
func TestDSPyProgramRoundTripModels(t *testing.T) {
	testutil.DSPyPython(t)
	c, _ := newClient(t)
	models := []dspgo.Model{
		{Name: "Person", Description: "A person the text names.", Fields: []dspgo.Field{{Name: "name"},
			{Name: "age", Type: "Optional[int]", Description: "in years"}, {Name: "home", Type: "Optional[Place]"}}},
		{Name: "Place", Fields: []dspgo.Field{{Name: "city"}}},
	}
	const sigText = "text, hint: Optional[Person] -> people: list[Person], best: Person"
	sig, err := dspgo.ParseSignature("text, hint -> people, best")
	require.NoError(t, err)
	sig.Inputs[1].Type, sig.Outputs[0].Type, sig.Outputs[1].Type, sig.Models = "Optional[Person]", "list[Person]", "Person", models
	ann := map[string]any{"name": "Ann", "age": 41, "home": map[string]any{"city": "Oslo"}}
	demos := []dspgo.Demo{
		{Inputs: map[string]any{"text": "Ann, 41, lives in Oslo.", "hint": map[string]any{"name": "Ann"}},
			Outputs: map[string]any{"people": []any{ann}, "best": ann}, Reasoning: "The text names Ann."},
		{Inputs: map[string]any{"text": "Nobody."},
			Outputs: map[string]any{"people": []any{}, "best": map[string]any{"name": "?", "age": nil}}},
	}
	for _, kind := range []string{dspgo.KindPredict, dspgo.KindChainOfThought} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel() // each job starts Python and imports dspy
			ds := demos
			if kind != dspgo.KindChainOfThought {
				ds = []dspgo.Demo{demos[0], demos[1]}
				ds[0].Reasoning = ""
			}
			p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: sig, Kind: kind, Demos: ds})
			require.NoError(t, err)
			dspyRoundTrip(t, c, p, nil, sigText, models...)
		})
	}
}

// dspyRoundTrip checks a program's round trips through DSPy's save and
// load: DSPy's save of the module with its demos loads (signature sigText
// and models) as p's spec, whose export DSPy loads to the same state, and
// DSPy's save of p's export loads as the spec again.
func dspyRoundTrip(t *testing.T, c *dspgo.Client, p *dspgo.Program, tools []command.ToolSpec, sigText string, models ...dspgo.Model) {
	t.Helper()
	kind := p.Spec.Kind
	spec := command.Spec{Signature: p.Spec.Signature, Instructions: p.Spec.Instructions, Kind: p.Spec.Kind, Demos: p.Spec.Demos,
		StepInstructions: p.Spec.StepInstructions, StepDemos: p.Spec.StepDemos}
	dir := t.TempDir()

	// DSPy's save of the module with demos; DSPy's load (and save)
	// of dspgo's export.
	saved, fresh := filepath.Join(dir, "saved.json"), filepath.Join(dir, "fresh.json")
	var b bytes.Buffer
	require.NoError(t, p.ExportDSPy(&b))
	require.NoError(t, os.WriteFile(fresh, b.Bytes(), 0o600))
	states := dspyJob(t, spec, tools, dspyStep{"save", saved}, dspyStep{"load", fresh})
	assert.Equal(t, states[0], states[1], "DSPy loads dspgo's export to the state of the module with the demos")

	// DSPy -> dspgo -> DSPy.
	f, err := os.Open(saved)
	require.NoError(t, err)
	loaded, err := dspgo.LoadDSPyProgram(f, sigText, models...)
	require.NoError(t, f.Close())
	require.NoError(t, err)
	assert.Equal(t, dspgo.ProgramSpec{Signature: p.Spec.Signature, Instructions: p.Spec.Instructions, Kind: kind, Demos: p.Spec.Demos,
		StepInstructions: p.Spec.StepInstructions, StepDemos: p.Spec.StepDemos}, loaded,
		"DSPy's save loads as the spec it was made from")
	q, err := c.CreateProgram(t.Context(), loaded)
	require.NoError(t, err)
	assert.Equal(t, p.Hash, q.Hash)
	exported := filepath.Join(dir, "exported.json")
	b.Reset()
	require.NoError(t, q.ExportDSPy(&b))
	require.NoError(t, os.WriteFile(exported, b.Bytes(), 0o600))
	assert.Equal(t, states[0], dspyJob(t, spec, tools, dspyStep{"load", exported})[0], "DSPy loads the export of what it saved to the state it saved")

	// dspgo -> DSPy -> dspgo: fresh is DSPy's save of dspgo's export.
	f, err = os.Open(fresh)
	require.NoError(t, err)
	back, err := dspgo.LoadDSPyProgram(f, sigText, models...)
	require.NoError(t, f.Close())
	require.NoError(t, err)
	assert.Equal(t, loaded, back, "DSPy's save of dspgo's export loads as the spec")
}

// TestDSPyTestdataIsCurrent: the files of internal/dspystate/testdata are
// what the pinned DSPy writes (but for the metadata's Python version).
func TestDSPyTestdataIsCurrent(t *testing.T) {
	python := testutil.DSPyPython(t)
	dir := t.TempDir()
	src := filepath.Join(testutil.RepoRoot(), "internal", "dspystate", "testdata")
	out, err := exec.Command(python, filepath.Join(src, "generate.py"), dir).CombinedOutput()
	require.NoError(t, err, string(out))
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		got, err := os.ReadFile(file)
		require.NoError(t, err)
		want, err := os.ReadFile(filepath.Join(src, filepath.Base(file)))
		require.NoError(t, err, "run generate.py and commit its files")
		assert.JSONEq(t, withoutPython(t, want), withoutPython(t, got), "%s: run internal/dspystate/testdata/generate.py", filepath.Base(file))
	}
}

// withoutPython drops the Python version from a saved program's metadata.
func withoutPython(t *testing.T, data []byte) string {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(data, &v))
	if m, ok := v["metadata"].(map[string]any); ok {
		if versions, ok := m["dependency_versions"].(map[string]any); ok {
			delete(versions, "python")
		}
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
