package dspystate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/python"
)

// The files of testdata were written by DSPy (testdata/generate.py) from
// the signature QA: "question, context: list[str] -> answer, confidence:
// float", with descriptions on question and answer.
const qaSignature = "question, context: list[str] -> answer, confidence: float"

// searchTool is the tool of testdata/react.json, as a dspgo tool.
var searchTool = command.ToolSpec{Name: "search", Description: "Searches the web.",
	Schema: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer","default":3}}}`)}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return data
}

func signature(t *testing.T, s string) *command.Signature {
	t.Helper()
	sig, err := program.ParseSignature(s)
	require.NoError(t, err)
	return &sig
}

// qaSpec is the spec DSPy's files hold, normalized, of kind and with
// demos (the reasoning of the first when given).
func qaSpec(t *testing.T, kind, reasoning string) command.Spec {
	t.Helper()
	sig := *signature(t, qaSignature)
	sig.Inputs[0].Description = "the question to answer"
	sig.Outputs[0].Description = "a short answer"
	c, err := program.Compile(command.Spec{Signature: sig, Instructions: "Answer the question from the context.", Kind: kind,
		Demos: []command.Demo{
			{Inputs: map[string]any{"question": "Who wrote it?", "context": []string{"Ann wrote it.", "Bob read it."}},
				Outputs: map[string]any{"answer": "Ann", "confidence": 1.0}, Reasoning: reasoning},
			{Inputs: map[string]any{"question": "When?", "context": []string{}}, Outputs: map[string]any{"answer": "In 1999", "confidence": 0.25}},
		}})
	require.NoError(t, err)
	return c.Spec
}

// TestLoadWhatDSPySaved: each file DSPy wrote loads, with its signature,
// as the spec it was made from; and Export writes it back as DSPy wrote
// it, but for what a spec does not keep (the metadata's Python and
// cloudpickle versions, a demo's "augmented" flag, a ReAct step
// predictor's demos, which never reach its prompt).
func TestLoadWhatDSPySaved(t *testing.T) {
	for _, c := range []struct {
		file, kind, reasoning string
		tools                 []command.ToolSpec
	}{
		{"predict.json", command.KindPredict, "", nil},
		{"chain_of_thought.json", command.KindChainOfThought, "The context says Ann wrote it.", nil},
		{"react.json", command.KindReact, "", []command.ToolSpec{searchTool}},
	} {
		t.Run(c.kind, func(t *testing.T) {
			data := readFile(t, c.file)
			spec, err := Load(data, signature(t, qaSignature))
			require.NoError(t, err)
			want := qaSpec(t, c.kind, c.reasoning)
			assert.Equal(t, want, spec)

			exported, err := Export(spec, c.tools)
			require.NoError(t, err)
			assert.Equal(t, comparable(t, data), comparable(t, exported))

			again, err := Load(exported, signature(t, qaSignature))
			require.NoError(t, err)
			assert.Equal(t, spec, again, "an exported program loads back to its spec")
		})
	}
}

// TestLoadOptimizedReact: a ReAct whose step predictor's instructions an
// optimizer rewrote, with the demos BootstrapFewShot sets on its steps and
// its extraction (testdata/react_optimized.json), loads with them as
// StepInstructions, StepDemos (but LabeledFewShot's, which never reach a
// prompt) and Demos with their trajectory and reasoning; Export writes
// them back.
func TestLoadOptimizedReact(t *testing.T) {
	data := readFile(t, "react_optimized.json")
	spec, err := Load(data, signature(t, qaSignature))
	require.NoError(t, err)
	want := qaSpec(t, command.KindReact, "The search names Ann.")
	trajectory := "[[ ## thought_0 ## ]]\nSearch first.\n\n[[ ## tool_name_0 ## ]]\nsearch\n\n" +
		"[[ ## tool_args_0 ## ]]\n{\"query\": \"author\", \"limit\": 1}\n\n[[ ## observation_0 ## ]]\nAnn wrote it."
	empty := ""
	want.Demos[0].Trajectory = &trajectory
	want.StepInstructions = "You are a careful research agent. Search for the question's key terms first, then finish\n" +
		"as soon as the context answers it."
	want.StepDemos = mustCompile(t, command.Spec{Signature: want.Signature, Kind: command.KindReact, StepDemos: []command.Demo{
		{Inputs: map[string]any{"question": "Who wrote it?", "context": []string{"Ann wrote it."}}, Trajectory: &empty,
			Outputs: map[string]any{"next_thought": "Search first.", "next_tool_name": "search", "next_tool_args": map[string]any{"query": "author", "limit": 1}}},
		{Inputs: map[string]any{"question": "Who wrote it?", "context": []string{"Ann wrote it."}}, Trajectory: &trajectory,
			Outputs: map[string]any{"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": map[string]any{}}},
	}}).Spec.StepDemos
	assert.Equal(t, want, spec)
	c, err := program.Compile(spec)
	require.NoError(t, err)
	assert.NotEqual(t, c.Hash, mustCompile(t, qaSpec(t, command.KindReact, "")).Hash, "the step instructions are hashed")

	exported, err := Export(spec, []command.ToolSpec{searchTool})
	require.NoError(t, err)
	assert.Equal(t, comparable(t, data), comparable(t, exported))
	again, err := Load(exported, signature(t, qaSignature))
	require.NoError(t, err)
	assert.Equal(t, spec, again, "an exported program loads back to its spec")

	plain, err := Load(readFile(t, "react.json"), signature(t, qaSignature))
	require.NoError(t, err)
	assert.Empty(t, plain.StepInstructions, "ReAct's own step instructions are written again for the run's tools")
}

func mustCompile(t *testing.T, spec command.Spec) *program.Compiled {
	t.Helper()
	c, err := program.Compile(spec)
	require.NoError(t, err)
	return c
}

// comparable decodes a saved program for comparison: numbers as written
// (1.0 is not 1), without what a spec does not keep.
func comparable(t *testing.T, data []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v map[string]any
	require.NoError(t, dec.Decode(&v))
	delete(v, "metadata")
	for key, p := range v {
		state, ok := p.(map[string]any)
		if !ok {
			continue
		}
		demos, _ := state["demos"].([]any)
		if key == "react" { // a step's demos without a step's output never reach a prompt
			kept := []any{}
			for _, d := range demos {
				if _, ok := d.(map[string]any)["next_thought"]; ok {
					kept = append(kept, d)
				}
			}
			state["demos"], demos = kept, kept
		}
		for _, d := range demos {
			delete(d.(map[string]any), "augmented")
		}
	}
	if demos, ok := v["demos"].([]any); ok { // a Predict's state is the file itself
		for _, d := range demos {
			delete(d.(map[string]any), "augmented")
		}
	}
	return v
}

// TestLoadWithoutSignature: without a signature the names come from the
// file and every type is str; the demos then need one to type them.
func TestLoadWithoutSignature(t *testing.T) {
	spec, err := Load(readFile(t, "predict_default.json"), nil)
	require.NoError(t, err)
	assert.Equal(t, command.Spec{Kind: command.KindPredict, Signature: command.Signature{
		Inputs:  []command.Field{{Name: "question", Type: "str"}, {Name: "context", Type: "str"}},
		Outputs: []command.Field{{Name: "answer", Type: "str"}},
	}}, spec, "DSPy's default instructions name the inputs and outputs; no instructions")

	typed, err := Load(readFile(t, "predict_default.json"), signature(t, "question, context: list[str] -> answer"))
	require.NoError(t, err)
	assert.Equal(t, "list[str]", typed.Signature.Inputs[1].Type)

	for _, file := range []string{"chain_of_thought.json", "react.json"} {
		// Every field is str, which takes the demos' lists of passages as
		// DSPy's untyped fields do (a numbered list to the LM).
		spec, err := Load(readFile(t, file), nil)
		require.NoError(t, err, file)
		assert.Equal(t, []string{"Ann wrote it.", "Bob read it."}, spec.Demos[0].Inputs["context"], file)
	}
	bad := strings.Replace(string(readFile(t, "chain_of_thought.json")), `"Bob read it."`, `2`, 1)
	_, err = Load([]byte(bad), nil)
	assert.ErrorContains(t, err, `demo 0: input context[1]: expected str, got number 2 (the file records no types, so every field is str: give the signature to type them)`)

	// Names from the descriptions "${name}", the demos' keys and the prefixes.
	spec, err = Load([]byte(`{"predict": {"traces": [], "train": [], "lm": null,
	  "demos": [{"question": "q", "ctx_list": "c", "answer": "a", "augmented": true}],
	  "signature": {"instructions": "Answer.", "fields": [
	    {"prefix": "Question:", "description": "the question"},
	    {"prefix": "Ctx List:", "description": "the context"},
	    {"prefix": "Reasoning: Let's think", "description": "${reasoning}"},
	    {"prefix": "The Answer:", "description": "${answer}"}]}}}`), nil)
	require.NoError(t, err)
	assert.Equal(t, command.Spec{Kind: command.KindChainOfThought, Instructions: "Answer.",
		Signature: command.Signature{
			Inputs:  []command.Field{{Name: "question", Type: "str", Description: "the question"}, {Name: "ctx_list", Type: "str", Description: "the context"}},
			Outputs: []command.Field{{Name: "answer", Type: "str"}}},
		Demos: []command.Demo{{Inputs: map[string]any{"question": "q", "ctx_list": "c"}, Outputs: map[string]any{"answer": "a"}}},
	}, spec)

	_, err = Load([]byte(`{"predict": {"traces": [], "train": [], "lm": null, "demos": [],
	  "signature": {"instructions": "Answer.", "fields": [
	    {"prefix": "HTML Page:", "description": "the page"},
	    {"prefix": "Reasoning:", "description": "${reasoning}"},
	    {"prefix": "Answer:", "description": "${answer}"}]}}}`), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `dspy program: ChainOfThought.predict: the name of field 0 (prefix "HTML Page:") is not in the file: give the signature`)
}

func TestLoadErrors(t *testing.T) {
	predict := string(readFile(t, "predict.json"))
	cot := string(readFile(t, "chain_of_thought.json"))
	react := string(readFile(t, "react.json"))
	cases := []struct {
		name, data, sig, want string
	}{
		{"not json", "not json", qaSignature, "the file is not a JSON object, as DSPy's module.save writes to a .json path (.pkl files and save_program=True directories are not read)"},
		{"null", "null", qaSignature, "the file is not a JSON object"},
		{"empty", `{"metadata":{}}`, qaSignature, "the file holds no predictor"},
		{"another module", `{"generate.predict":{},"retrieve":{}}`, qaSignature,
			"the file holds the state of the predictors generate.predict, retrieve; dspgo loads a dspy.Predict, dspy.ChainOfThought or dspy.ReAct saved on its own: run a custom module as a \"module\" program, the file as its state"},
		{"unknown key", strings.Replace(predict, `"lm": null`, `"lm": null, "config": {}`, 1), qaSignature, `Predict: json: unknown field "config"`},
		{"decision fields", strings.Replace(predict, `"lm": null`, `"lm": null, "fields": {"answer": {"threshold": 0.5}}`, 1), qaSignature,
			`Predict: decision field configurations ("fields") are not supported`},
		{"legacy", strings.Replace(cot, `"lm": null`, `"lm": null, "extended_signature": {}`, 1), qaSignature, `ChainOfThought.predict: an extended_signature (DSPy 2.5's format) is not supported`},
		{"too few fields in the signature", predict, "question -> answer, confidence: float", "Predict has 4 fields; the signature gives 1 input and 2 outputs"},
		{"cot counts reasoning", cot, "question, context: list[str] -> answer, confidence: float, extra", "ChainOfThought.predict has 5 fields; the signature gives 2 inputs, reasoning and 3 outputs"},
		{"another name", predict, "question, ctx: list[str] -> answer, confidence: float",
			`Predict: field 1 is "context" in the file (its description is "${context}"), but the signature names it "ctx"`},
		{"predict needs a signature", predict, "", "Predict: the file does not say which of its 4 fields are inputs (its instructions are not DSPy's default ones, which name them): give the signature"},
		{"a demo of the wrong type", strings.Replace(predict, `"confidence": 0.25`, `"confidence": "high"`, 1), qaSignature,
			`Predict: demo 1: output confidence: expected float, got string "high"`},
		{"reasoning not a string", strings.Replace(cot, `"reasoning": "The context says Ann wrote it."`, `"reasoning": 3`, 1), qaSignature,
			"ChainOfThought.predict: demo 0: reasoning is not a string"},
		{"react extract demo's trajectory not a string", strings.Replace(react, `"answer": "Ann",`, `"answer": "Ann", "trajectory": ["x"],`, 2), qaSignature,
			"ReAct.extract.predict: demo 0: trajectory is not a string"},
		{"react step demo's trajectory not a string", strings.Replace(react, `"answer": "Ann",`, `"answer": "Ann", "next_thought": "search", "trajectory": 1,`, 1), qaSignature,
			"ReAct.react: demo 0: trajectory is not a string"},
		{"react step demo's tool arguments not an object", strings.Replace(react, `"answer": "Ann",`, `"answer": "Ann", "next_tool_args": "q",`, 1), qaSignature,
			`ReAct.react: step demo 0: output next_tool_args: expected dict[str, Any], got string "q"`},
		{"react step predictor with a field more", strings.Replace(react, `"prefix": "Trajectory:",`, `"prefix": "Extra:", "description": "x"}, {"prefix": "Trajectory:",`, 1),
			qaSignature, "ReAct.react has 7 fields; for the signature's 2 inputs, dspy.ReAct's step predictor has 6 (the inputs, trajectory and next_thought, next_tool_name, next_tool_args)"},
		{"react step predictor with a field more, without a signature", strings.Replace(react, `"prefix": "Trajectory:",`, `"prefix": "Extra:", "description": "x"}, {"prefix": "Trajectory:",`, 1),
			"", `ReAct.extract.predict: field 3 is "reasoning" in the file (its description is "${reasoning}"), but DSPy's module has "trajectory"`},
		{"react step predictor's fields", strings.Replace(react, `"prefix": "Next Thought:",`+"\n          "+`"description": "${next_thought}"`, `"prefix": "Next Thought:",`+"\n          "+`"description": "${thought}"`, 1),
			qaSignature, `ReAct.react: field 3 is "thought" in the file (its description is "${thought}"), but DSPy's module has "next_thought"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var sig *command.Signature
			if c.sig != "" {
				sig = signature(t, c.sig)
			}
			_, err := Load([]byte(c.data), sig)
			require.Error(t, err)
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
			assert.Contains(t, err.Error(), "dspy program: "+c.want)
		})
	}
}

// TestExport: what Export writes for each kind, from a spec without
// instructions or descriptions.
func TestExport(t *testing.T) {
	sig := *signature(t, "question, n: int -> answer, score: float")
	c, err := program.Compile(command.Spec{Signature: sig, Kind: command.KindChainOfThought, Demos: []command.Demo{
		{Inputs: map[string]any{"question": "<a & b>", "n": 2}, Outputs: map[string]any{"answer": "x", "score": 1}},
	}})
	require.NoError(t, err)
	got, err := Export(c.Spec, nil)
	require.NoError(t, err)
	assert.Equal(t, `{
  "predict": {
    "traces": [],
    "train": [],
    "demos": [
      {
        "question": "<a & b>",
        "n": 2,
        "answer": "x",
        "score": 1.0
      }
    ],
    "signature": {
      "instructions": "Given the fields `+"`question`, `n`, produce the fields `answer`, `score`"+`.",
      "fields": [
        {
          "prefix": "Question:",
          "description": "${question}"
        },
        {
          "prefix": "N:",
          "description": "${n}"
        },
        {
          "prefix": "Reasoning:",
          "description": "${reasoning}"
        },
        {
          "prefix": "Answer:",
          "description": "${answer}"
        },
        {
          "prefix": "Score:",
          "description": "${score}"
        }
      ]
    },
    "lm": null
  },
  "metadata": {
    "dependency_versions": {
      "dspy": "3.4.1"
    }
  }
}
`, string(got))
	back, err := Load(got, signature(t, "question, n: int -> answer, score: float"))
	require.NoError(t, err)
	assert.Equal(t, c.Spec, back)

	c.Spec.Demos = nil
	got, err = Export(c.Spec, nil)
	require.NoError(t, err)
	back, err = Load(got, nil)
	require.NoError(t, err, "names and sides from the default instructions")
	assert.Equal(t, command.Signature{Inputs: []command.Field{{Name: "question", Type: "str"}, {Name: "n", Type: "str"}},
		Outputs: []command.Field{{Name: "answer", Type: "str"}, {Name: "score", Type: "str"}}}, back.Signature)
}

func TestExportValues(t *testing.T) {
	sig := *signature(t, "m: dict[int, float], t: tuple[int, str], x: Any, o: Optional[float] -> a")
	c, err := program.Compile(command.Spec{Signature: sig, Demos: []command.Demo{{
		Inputs:  map[string]any{"m": map[string]any{"10": 1, "9": 2.5, "-1": 0}, "t": []any{1, "s"}, "x": map[string]any{"b": 1.0, "a": 1.5}, "o": nil},
		Outputs: map[string]any{"a": "z"},
	}}})
	require.NoError(t, err)
	_, demos := exportDemos(t, c.Spec)
	var compact bytes.Buffer
	require.NoError(t, json.Compact(&compact, demos[0]))
	assert.Equal(t, `{"m":{"-1":0.0,"10":1.0,"9":2.5},"t":[1,"s"],"x":{"a":1.5,"b":1},"o":null,"a":"z"}`, compact.String(),
		"floats as Python writes them, so that DSPy reads floats; Any keeps an integral number an int")
}

// TestExportOptionalInputLeftOut: a demo that leaves an Optional input out
// is exported without it (DSPy's demos hold the fields a call was given)
// and loads back as itself.
func TestExportOptionalInputLeftOut(t *testing.T) {
	sig := *signature(t, "question, hint: Optional[str] -> answer")
	c, err := program.Compile(command.Spec{Signature: sig, Demos: []command.Demo{
		{Inputs: map[string]any{"question": "Who?"}, Outputs: map[string]any{"answer": "Ann"}},
		{Inputs: map[string]any{"question": "Who?", "hint": nil}, Outputs: map[string]any{"answer": "Ann"}},
	}})
	require.NoError(t, err)
	got, demos := exportDemos(t, c.Spec)
	require.Len(t, demos, 2)
	assert.JSONEq(t, `{"question":"Who?","answer":"Ann"}`, string(demos[0]))
	assert.JSONEq(t, `{"question":"Who?","hint":null,"answer":"Ann"}`, string(demos[1]))
	back, err := Load(got, signature(t, "question, hint: Optional[str] -> answer"))
	require.NoError(t, err)
	assert.Equal(t, c.Spec, back)
}

// TestIncompleteDemos: the demos an optimizer leaves (a trainset
// example without a field the program adds, a null, DSPy's dspy_uuid and
// dspy_split keys) load, and export as they were, without the fields
// they lack.
func TestIncompleteDemos(t *testing.T) {
	file := []byte(`{"demos": [
		{"dspy_uuid": "u1", "dspy_split": "train", "question": "Who read it?", "answer": "Bo"},
		{"augmented": true, "question": "Who?", "context": null, "answer": "Ann", "confidence": 0.5}],
		"signature": {"instructions": "Answer.", "fields": [
			{"prefix": "Question:", "description": "${question}"}, {"prefix": "Context:", "description": "${context}"},
			{"prefix": "Answer:", "description": "${answer}"}, {"prefix": "Confidence:", "description": "${confidence}"}]},
		"lm": null, "traces": [], "train": []}`)
	spec, err := Load(file, signature(t, qaSignature))
	require.NoError(t, err)
	assert.Equal(t, []command.Demo{
		{Inputs: map[string]any{"question": "Who read it?"}, Outputs: map[string]any{"answer": "Bo"}},
		{Inputs: map[string]any{"question": "Who?", "context": nil}, Outputs: map[string]any{"answer": "Ann", "confidence": 0.5}},
	}, spec.Demos)
	_, demos := exportDemos(t, spec)
	require.Len(t, demos, 2)
	assert.JSONEq(t, `{"question":"Who read it?","answer":"Bo"}`, string(demos[0]))
	assert.JSONEq(t, `{"question":"Who?","context":null,"answer":"Ann","confidence":0.5}`, string(demos[1]))
}

// exportDemos exports a predict spec and returns the file and its demos.
func exportDemos(t *testing.T, spec command.Spec) ([]byte, []json.RawMessage) {
	t.Helper()
	got, err := Export(spec, nil)
	require.NoError(t, err)
	var file struct {
		Demos []json.RawMessage `json:"demos"`
	}
	require.NoError(t, json.Unmarshal(got, &file))
	return got, file.Demos
}

// TestDSPyVersionIsTheTestedOne: the format is that of the DSPy the tests
// run (python/requirements-dspy.lock).
func TestDSPyVersionIsTheTestedOne(t *testing.T) {
	assert.Equal(t, python.TestedDSPyVersion(), DSPyVersion)
}
