package program_test

import (
	"bytes"
	"encoding/json"
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

// demoCase is one vector of protocol/testdata/demos.json: compiling spec
// (decoded as a worker decodes it) gives spec_hash, or fails with
// invalid_argument and exactly error. The Python worker checks the same
// vectors.
type demoCase struct {
	Name     string          `json:"name"`
	Spec     json.RawMessage `json:"spec"`
	SpecHash string          `json:"spec_hash,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// demoSpec is a spec's JSON text with the given kind and demos (a JSON
// array's text) over "question, context: list[str] -> answer, confidence:
// float".
func demoSpec(kind, demos string) json.RawMessage {
	s := `{"signature":{"inputs":[{"name":"question","type":"str","description":""},{"name":"context","type":"list[str]","description":""}],` +
		`"outputs":[{"name":"answer","type":"str","description":""},{"name":"confidence","type":"float","description":""}]},` +
		`"instructions":"Answer from the context.","kind":"` + kind + `"`
	if demos != "" {
		s += `,"demos":` + demos
	}
	return json.RawMessage(s + "}")
}

// stepDemoOK is a react program's step demo: a loop's first step.
const stepDemoOK = `{"inputs":{"question":"Who?","context":["Ann wrote it."]},"trajectory":"",` +
	`"outputs":{"next_thought":"Search first.","next_tool_name":"search","next_tool_args":{"query":"author","limit":1.0}}}`

const demoOK = `{"inputs":{"question":"Who?","context":["Ann wrote it."]},"outputs":{"answer":"Ann","confidence":0.9}}`

func demoCases() []demoCase {
	typed := json.RawMessage(`{"signature":{"inputs":[{"name":"n","type":"int","description":""},{"name":"m","type":"dict[int, Optional[float]]","description":""},` +
		`{"name":"t","type":"tuple[int, str]","description":""},{"name":"x","type":"Any","description":""}],` +
		`"outputs":[{"name":"ok","type":"bool","description":""},{"name":"u","type":"Union[int, str]","description":""},{"name":"lit","type":"Literal['a', 'b']","description":""}]},` +
		`"instructions":"","kind":"predict","demos":[` +
		`{"inputs":{"n":3.0,"m":{"007":1,"-2":null},"t":[1,"x"],"x":{"k":[1,2.5,null]}},"outputs":{"ok":true,"u":"7","lit":"b"}},` +
		`{"inputs":{"n":-1,"m":{},"t":[0,""],"x":null},"outputs":{"ok":false,"u":7,"lit":"a"},"reasoning":null}]}`)
	return []demoCase{
		{Name: "no_demos", Spec: demoSpec("predict", "")},
		{Name: "empty_demos_hash_as_none", Spec: demoSpec("predict", "[]")},
		{Name: "null_demos_hash_as_none", Spec: demoSpec("predict", "null")},
		{Name: "predict", Spec: demoSpec("predict", "["+demoOK+"]")},
		{Name: "predict_two", Spec: demoSpec("predict", "["+demoOK+`,{"inputs":{"question":"When?","context":[]},"outputs":{"answer":"1999","confidence":1}}]`)},
		{Name: "predict_float_written_as_int", Spec: demoSpec("predict", "["+demoOK+`,{"inputs":{"question":"When?","context":[]},"outputs":{"answer":"1999","confidence":1.0}}]`)},
		{Name: "chain_of_thought_with_reasoning", Spec: demoSpec("chain_of_thought",
			`[{"inputs":{"question":"Who?","context":["Ann wrote it."]},"outputs":{"answer":"Ann","confidence":0.9},"reasoning":"The context names Ann."}]`)},
		{Name: "chain_of_thought_without_reasoning", Spec: demoSpec("chain_of_thought", "["+demoOK+"]")},
		{Name: "chain_of_thought_empty_reasoning_is_none", Spec: demoSpec("chain_of_thought",
			`[{"inputs":{"question":"Who?","context":["Ann wrote it."]},"outputs":{"answer":"Ann","confidence":0.9},"reasoning":""}]`)},
		{Name: "react", Spec: demoSpec("react", "["+demoOK+"]")},
		{Name: "typed_values", Spec: typed},
		// A demo that leaves a field out or holds a null is one DSPy
		// shows as incomplete (bootstrapped demos often are).
		{Name: "incomplete_input_left_out", Spec: demoSpec("predict", "["+demoOK+`,{"inputs":{"question":"Why?"},"outputs":{"answer":"x","confidence":0.5}}]`)},
		{Name: "optional_input_left_out", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"question","type":"str","description":""},{"name":"hint","type":"Optional[str]","description":""}],` +
			`"outputs":[{"name":"answer","type":"str","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"question":"Who?"},"outputs":{"answer":"Ann"}},{"inputs":{"question":"Who?","hint":null},"outputs":{"answer":"Ann"}}]}`)},
		{Name: "optional_output_left_out", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"question","type":"str","description":""}],` +
			`"outputs":[{"name":"answer","type":"Optional[str]","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"question":"Who?"},"outputs":{}}]}`)},
		{Name: "no_inputs", Spec: demoSpec("predict", `[{"outputs":{"answer":"x","confidence":0.5}}]`)},
		{Name: "incomplete_output_left_out", Spec: demoSpec("predict", `[{"inputs":{"question":"Why?","context":[]},"outputs":{"answer":"x"}}]`)},
		{Name: "incomplete_reasoning_its_only_output", Spec: demoSpec("chain_of_thought", `[{"inputs":{"question":"Why?"},"outputs":{},"reasoning":"r"}]`)},
		{Name: "incomplete_no_output_nor_reasoning", Spec: demoSpec("chain_of_thought", `[{"inputs":{"question":"Why?"},"outputs":{},"reasoning":""}]`)},
		{Name: "incomplete_nulls", Spec: demoSpec("predict", `[{"inputs":{"question":null,"context":null},"outputs":{"answer":null,"confidence":0.5}}]`)},
		{Name: "input_of_wrong_type", Spec: demoSpec("predict", `[{"inputs":{"question":"Why?","context":"all of it"},"outputs":{"answer":"x","confidence":0.5}}]`),
			Error: `demo 0: input context: expected list[str], got string "all of it"`},
		{Name: "element_of_wrong_type", Spec: demoSpec("predict", `[{"inputs":{"question":"Why?","context":["a",2]},"outputs":{"answer":"x","confidence":0.5}}]`),
			Error: `demo 0: input context[1]: expected str, got number 2`},
		{Name: "output_of_wrong_type", Spec: demoSpec("predict", `[{"inputs":{"question":"Why?","context":[]},"outputs":{"answer":"x","confidence":"high"}}]`),
			Error: `demo 0: output confidence: expected float, got string "high"`},
		// A str field takes what DSPy shows in one: a list of strings (a
		// numbered list), a number, a bool, an object.
		{Name: "str_fields_take_what_dspy_shows", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"context","type":"","description":""},{"name":"question","type":"str","description":""}],` +
			`"outputs":[{"name":"answer","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"context":["Ann wrote it.","Bo read it."],"question":42},"outputs":{"answer":{"who":"Ann","n":1.5}}},{"inputs":{"context":[],"question":true},"outputs":{"answer":"Ann"}}]}`)},
		{Name: "str_field_list_of_non_strings", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"context","type":"","description":""}],` +
			`"outputs":[{"name":"answer","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"context":["a",2]},"outputs":{"answer":"x"}}]}`),
			Error: `demo 0: input context[1]: expected str, got number 2`},
		{Name: "unknown_inputs_first_sorted_named", Spec: demoSpec("predict", `[{"inputs":{"question":"Why?","context":[],"zeta":1,"alpha":2},"outputs":{"answer":"x","confidence":0.5}}]`),
			Error: `demo 0: input "alpha" is not in the signature (the signature's inputs are "question", "context")`},
		{Name: "output_given_as_input", Spec: demoSpec("predict", `[{"inputs":{"question":"Why?","context":[],"answer":"x"},"outputs":{"answer":"x","confidence":0.5}}]`),
			Error: `demo 0: input "answer" is not in the signature (the signature's inputs are "question", "context")`},
		{Name: "reasoning_as_an_output", Spec: demoSpec("chain_of_thought", `[{"inputs":{"question":"Why?","context":[]},"outputs":{"answer":"x","confidence":0.5,"reasoning":"r"}}]`),
			Error: `demo 0: output "reasoning" is not in the signature (the signature's outputs are "answer", "confidence")`},
		{Name: "reasoning_on_predict", Spec: demoSpec("predict", `[{"inputs":{"question":"Why?","context":[]},"outputs":{"answer":"x","confidence":0.5},"reasoning":"r"}]`),
			Error: `demo 0: reasoning is only for chain_of_thought and react programs (this one is predict)`},
		{Name: "trajectory_on_chain_of_thought", Spec: demoSpec("chain_of_thought", `[{"inputs":{"question":"Why?","context":[]},"outputs":{"answer":"x","confidence":0.5},"trajectory":""}]`),
			Error: `demo 0: trajectory is only for react programs (this one is chain_of_thought)`},
		{Name: "literal_value", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"q","type":"","description":""}],"outputs":[{"name":"lit","type":"Literal['a', 'b']","description":""}]},` +
			`"instructions":"","kind":"","demos":[{"inputs":{"q":"?"},"outputs":{"lit":"c"}}]}`),
			Error: `demo 0: output lit: "c" is not one of Literal['a', 'b']`},
		{Name: "int_keys_that_repeat", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"m","type":"dict[int, str]","description":""}],"outputs":[{"name":"a","type":"","description":""}]},` +
			`"instructions":"","kind":"","demos":[{"inputs":{"m":{"1":"x","01":"y"}},"outputs":{"a":"z"}}]}`),
			Error: `demo 0: input m: keys "01" and "1" are the same int 1`},
		// A conversation: one dspy.History input, in demos too.
		{Name: "history", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"question","type":"","description":""},{"name":"history","type":"dspy.History","description":""}],` +
			`"outputs":[{"name":"answer","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"question":"And Bob?","history":{"messages":[{"question":"Who wrote it?","answer":"Ann"}]}},"outputs":{"answer":"Bob"}}]}`)},
		{Name: "history_as_output", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"question","type":"","description":""}],` +
			`"outputs":[{"name":"history","type":"dspy.History","description":""}]},"instructions":"","kind":"predict"}`),
			Error: `output field "history": dspy.History is an input type (the conversation so far)`},
		{Name: "two_histories", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"a","type":"dspy.History","description":""},{"name":"b","type":"dspy.History","description":""}],` +
			`"outputs":[{"name":"answer","type":"","description":""}]},"instructions":"","kind":"predict"}`),
			Error: `input fields "a" and "b" are both dspy.History: a signature has one conversation`},
		{Name: "history_demo_of_wrong_shape", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"history","type":"dspy.History","description":""}],` +
			`"outputs":[{"name":"answer","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"history":{"messages":["hi"]}},"outputs":{"answer":"x"}}]}`),
			Error: `demo 0: input history.messages[0]: expected dict[str, Any], got string "hi"`},
		// An image demo: its string, {"url": …} and DSPy's text of it are
		// the same demo, of the same hash.
		{Name: "image_demo", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"photo","type":"dspy.Image","description":""}],` +
			`"outputs":[{"name":"answer","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"photo":"https://example.com/cat.png"},"outputs":{"answer":"a cat"}}]}`)},
		{Name: "image_demo_as_an_object", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"photo","type":"dspy.Image","description":""}],` +
			`"outputs":[{"name":"answer","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"photo":{"url":"https://example.com/cat.png"}},"outputs":{"answer":"a cat"}}]}`)},
		{Name: "image_demo_as_dspy_writes_it", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"photo","type":"dspy.Image","description":""}],` +
			`"outputs":[{"name":"answer","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"photo":"<<CUSTOM-TYPE-START-IDENTIFIER>>[{\"type\": \"image_url\", \"image_url\": {\"url\": \"https://example.com/cat.png\"}}]<<CUSTOM-TYPE-END-IDENTIFIER>>"},"outputs":{"answer":"a cat"}}]}`)},
		{Name: "image_demo_of_a_path", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"photo","type":"dspy.Image","description":""}],` +
			`"outputs":[{"name":"answer","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"photo":"cat.png"},"outputs":{"answer":"a cat"}}]}`),
			Error: `demo 0: input photo: an image is a data: URI or an http, https or gs URL (a local file's path is not read: give its data: URI)`},
		{Name: "image_as_output", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"question","type":"","description":""}],` +
			`"outputs":[{"name":"drawing","type":"list[dspy.Image]","description":""}]},"instructions":"","kind":"predict"}`),
			Error: `output field "drawing": dspy.Image is an input type (an image for the model to see)`},
		// A file demo: as an object and as DSPy's text of it, the same demo.
		{Name: "file_demo", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"doc","type":"dspy.File","description":""}],` +
			`"outputs":[{"name":"summary","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"doc":{"file_data":"data:application/pdf;base64,JVBERi0=","filename":"a.pdf"}},"outputs":{"summary":"a report"}}]}`)},
		{Name: "file_demo_as_dspy_writes_it", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"doc","type":"dspy.File","description":""}],` +
			`"outputs":[{"name":"summary","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"doc":"<<CUSTOM-TYPE-START-IDENTIFIER>>[{\"type\": \"file\", \"file\": {\"file_data\": \"data:application/pdf;base64,JVBERi0=\", \"filename\": \"a.pdf\"}}]<<CUSTOM-TYPE-END-IDENTIFIER>>"},"outputs":{"summary":"a report"}}]}`)},
		{Name: "file_demo_by_id", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"doc","type":"dspy.File","description":""}],` +
			`"outputs":[{"name":"summary","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"doc":{"file_id":"file-abc"}},"outputs":{"summary":"a report"}}]}`),
			Error: `demo 0: input doc: a file_id names a file stored with the model's provider under the worker's key, which a caller could name to read another's: send file_data, the file's data: URI`},
		// A sound demo: as a data URI, an object and DSPy's text of it, the
		// same demo.
		{Name: "audio_demo", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"clip","type":"dspy.Audio","description":""}],` +
			`"outputs":[{"name":"transcript","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"clip":"data:audio/x-wav;base64,UklGRg=="},"outputs":{"transcript":"hello"}}]}`)},
		{Name: "audio_demo_as_an_object", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"clip","type":"dspy.Audio","description":""}],` +
			`"outputs":[{"name":"transcript","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"clip":{"data":"UklGRg==","audio_format":"wav"}},"outputs":{"transcript":"hello"}}]}`)},
		{Name: "audio_demo_as_dspy_writes_it", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"clip","type":"dspy.Audio","description":""}],` +
			`"outputs":[{"name":"transcript","type":"","description":""}]},"instructions":"","kind":"predict",` +
			`"demos":[{"inputs":{"clip":"<<CUSTOM-TYPE-START-IDENTIFIER>>[{\"type\": \"input_audio\", \"input_audio\": {\"data\": \"UklGRg==\", \"format\": \"wav\"}}]<<CUSTOM-TYPE-END-IDENTIFIER>>"},"outputs":{"transcript":"hello"}}]}`)},
		// Module programs: the module's name and state are hashed, the
		// state in canonical form (1.0 is 1, keys sorted).
		{Name: "module", Spec: moduleSpec(`"module":"rag"`)},
		{Name: "module_with_state", Spec: moduleSpec(`"module":"rag","state":{"draft.predict":{"demos":[{"q":"Who?","a":1.0}],"lm":null},"answer":{"signature":{"instructions":"Answer."}},"metadata":{"dependency_versions":{"dspy":"3.4.1"}}}`)},
		{Name: "module_with_state_as_written_elsewhere", Spec: moduleSpec(`"module":"rag","state":{"metadata":{"dependency_versions":{"dspy":"3.4.1"}},"answer":{"signature":{"instructions":"Answer."}},"draft.predict":{"lm":null,"demos":[{"a":1,"q":"Who?"}]}}`)},
		{Name: "module_null_state_is_none", Spec: moduleSpec(`"module":"rag","state":null`)},
		{Name: "module_empty_state", Spec: moduleSpec(`"module":"rag","state":{}`)},
		{Name: "module_without_its_name", Spec: moduleSpec(`"state":{}`),
			Error: `a module program needs its module: the name a worker's handler module registered it under`},
		{Name: "module_name_not_a_name", Spec: moduleSpec(`"module":"my rag"`),
			Error: `module name "my rag" may hold only letters, digits, '_', '-' and '.' (at most 128)`},
		{Name: "module_state_not_an_object", Spec: moduleSpec(`"module":"rag","state":["draft"]`),
			Error: `state must be a JSON object (what DSPy's module.save writes), got array`},
		{Name: "module_with_demos", Spec: moduleSpec(`"module":"rag","demos":[` + demoOK + `]`),
			Error: `a module program has no demos: its predictors' demos are in its state`},
		{Name: "module_name_on_predict", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"q","type":"","description":""}],"outputs":[{"name":"a","type":"","description":""}]},` +
			`"instructions":"","kind":"predict","module":"rag"}`),
			Error: `module is for kind "module" only (this spec's kind is "predict")`},
		{Name: "state_on_chain_of_thought", Spec: json.RawMessage(`{"signature":{"inputs":[{"name":"q","type":"","description":""}],"outputs":[{"name":"a","type":"","description":""}]},` +
			`"instructions":"","kind":"chain_of_thought","state":{}}`),
			Error: `state is for kind "module" only (this spec's kind is "chain_of_thought")`},
		// A react program's step instructions (an optimizer's): hashed
		// when set, the key left out when empty, so that a react spec
		// without them keeps its hash.
		{Name: "react_step_instructions", Spec: withMembers(demoSpec("react", "["+demoOK+"]"), `"step_instructions":"Pick the best tool."`)},
		{Name: "react_empty_step_instructions_are_none", Spec: withMembers(demoSpec("react", "["+demoOK+"]"), `"step_instructions":""`)},
		{Name: "react_null_step_instructions_are_none", Spec: withMembers(demoSpec("react", "["+demoOK+"]"), `"step_instructions":null`)},
		// A react program's demos may hold its extraction's trajectory
		// and reasoning; its step demos are a step's.
		{Name: "react_with_trajectory_and_reasoning", Spec: demoSpec("react", `[{"inputs":{"question":"Who?","context":["Ann wrote it."]},`+
			`"outputs":{"answer":"Ann","confidence":0.9},"trajectory":"[[ ## thought_0 ## ]]\nDone.","reasoning":"The context names Ann."}]`)},
		{Name: "react_with_reasoning", Spec: demoSpec("react", `[{"inputs":{"question":"Who?","context":["Ann wrote it."]},`+
			`"outputs":{"answer":"Ann","confidence":0.9},"reasoning":"The context names Ann."}]`)},
		{Name: "react_null_trajectory_is_none", Spec: demoSpec("react", `[{"inputs":{"question":"Who?","context":["Ann wrote it."]},`+
			`"outputs":{"answer":"Ann","confidence":0.9},"trajectory":null,"reasoning":"The context names Ann."}]`)},
		{Name: "react_empty_trajectory", Spec: demoSpec("react", `[{"inputs":{"question":"Who?","context":["Ann wrote it."]},`+
			`"outputs":{"answer":"Ann","confidence":0.9},"trajectory":"","reasoning":"The context names Ann."}]`)},
		{Name: "react_step_demos", Spec: withMembers(demoSpec("react", "["+demoOK+"]"), `"step_demos":[`+stepDemoOK+`,`+
			`{"inputs":{"question":"When?"},"outputs":{"next_thought":"Done.","next_tool_name":"finish","next_tool_args":{}},"trajectory":"[[ ## thought_0 ## ]]\nSearch."}]`)},
		{Name: "react_empty_step_demos_hash_as_none", Spec: withMembers(demoSpec("react", "["+demoOK+"]"), `"step_demos":[]`)},
		{Name: "react_null_step_demos_hash_as_none", Spec: withMembers(demoSpec("react", "["+demoOK+"]"), `"step_demos":null`)},
		{Name: "step_demos_on_predict", Spec: withMembers(demoSpec("predict", ""), `"step_demos":[`+stepDemoOK+`]`),
			Error: `step_demos are for kind "react" only (this spec's kind is "predict")`},
		{Name: "step_demo_with_reasoning", Spec: withMembers(demoSpec("react", ""), `"step_demos":[`+stepDemoOK[:len(stepDemoOK)-1]+`,"reasoning":"r"}]`),
			Error: `step demo 0: a step has no reasoning (it gives "next_thought", "next_tool_name", "next_tool_args")`},
		{Name: "step_demo_with_a_program_output", Spec: withMembers(demoSpec("react", ""), `"step_demos":[{"inputs":{"question":"Who?"},"outputs":{"answer":"Ann"}}]`),
			Error: `step demo 0: output "answer" is not in the signature (the signature's outputs are "next_thought", "next_tool_name", "next_tool_args")`},
		{Name: "step_demo_tool_args_not_an_object", Spec: withMembers(demoSpec("react", ""), `"step_demos":[{"inputs":{"question":"Who?"},"outputs":{"next_tool_args":["q"]}}]`),
			Error: `step demo 0: output next_tool_args: expected dict[str, Any], got array`},
		{Name: "step_instructions_on_chain_of_thought", Spec: withMembers(demoSpec("chain_of_thought", ""), `"step_instructions":"Pick the best tool."`),
			Error: `step_instructions are for kind "react" only (this spec's kind is "chain_of_thought")`},
	}
}

// withMembers is a spec's JSON text with members added.
func withMembers(spec json.RawMessage, members string) json.RawMessage {
	s := string(spec)
	return json.RawMessage(s[:len(s)-1] + "," + members + "}")
}

// moduleSpec is a module spec's JSON text over "question, context:
// list[str] -> answer, confidence: float" with the given members.
func moduleSpec(members string) json.RawMessage {
	s := string(demoSpec("module", ""))
	return json.RawMessage(s[:len(s)-1] + "," + members + "}")
}

// compileJSON compiles a spec's JSON as the mock decodes it.
func compileJSON(t *testing.T, raw json.RawMessage) (*program.Compiled, error) {
	t.Helper()
	var spec command.Spec
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	require.NoError(t, dec.Decode(&spec))
	return program.Compile(spec)
}

// TestDemoVectors: every case of protocol/testdata/demos.json compiles to
// its hash or fails with its message; -update rewrites the file.
func TestDemoVectors(t *testing.T) {
	path := filepath.Join(testutil.RepoRoot(), "protocol", "testdata", "demos.json")
	cases := demoCases()
	for i := range cases {
		c, err := compileJSON(t, cases[i].Spec)
		if cases[i].Error != "" {
			require.Error(t, err, cases[i].Name)
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), cases[i].Name)
			var ae *adapter.Error
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, cases[i].Error, ae.Message, cases[i].Name)
			continue
		}
		require.NoError(t, err, cases[i].Name)
		cases[i].SpecHash = c.Hash
	}
	byName := map[string]string{}
	for _, c := range cases {
		byName[c.Name] = c.SpecHash
	}
	assert.Equal(t, byName["no_demos"], byName["empty_demos_hash_as_none"], "no demos: the hash of a spec from before demos")
	assert.Equal(t, byName["no_demos"], byName["null_demos_hash_as_none"])
	assert.NotEqual(t, byName["no_demos"], byName["predict"], "demos are part of the hash")
	assert.NotEqual(t, byName["predict"], byName["predict_two"])
	assert.Equal(t, byName["predict_two"], byName["predict_float_written_as_int"], "values are hashed converted: 1 and 1.0 are the float 1")
	assert.NotEqual(t, byName["chain_of_thought_with_reasoning"], byName["chain_of_thought_without_reasoning"])
	assert.Equal(t, byName["chain_of_thought_without_reasoning"], byName["chain_of_thought_empty_reasoning_is_none"])
	assert.NotEqual(t, byName["no_demos"], byName["module"], "the kind and the module are hashed")
	assert.NotEqual(t, byName["module"], byName["module_with_state"], "the state is hashed")
	assert.Equal(t, byName["module_with_state"], byName["module_with_state_as_written_elsewhere"], "the state is hashed in canonical form")
	assert.Equal(t, byName["module"], byName["module_null_state_is_none"])
	assert.NotEqual(t, byName["module"], byName["module_empty_state"])
	assert.NotEqual(t, byName["react"], byName["react_step_instructions"], "step instructions are hashed")
	assert.Equal(t, byName["react"], byName["react_empty_step_instructions_are_none"], "none: the hash of a react spec from before them")
	assert.Equal(t, byName["react"], byName["react_null_step_instructions_are_none"])
	assert.NotEqual(t, byName["react_with_reasoning"], byName["react_with_trajectory_and_reasoning"], "a demo's trajectory is hashed")
	assert.Equal(t, byName["react_with_reasoning"], byName["react_null_trajectory_is_none"])
	assert.NotEqual(t, byName["react_with_reasoning"], byName["react_empty_trajectory"], "an empty trajectory is one: a first step's")
	assert.NotEqual(t, byName["react"], byName["react_step_demos"], "step demos are hashed")
	assert.Equal(t, byName["react"], byName["react_empty_step_demos_hash_as_none"])
	assert.Equal(t, byName["react"], byName["react_null_step_demos_hash_as_none"])

	got, err := json.MarshalIndent(map[string]any{
		"about": "Golden vectors of program demos (docs/protocol.md, \"Demos\") and of module programs (\"Module programs\"). Compiling each spec gives spec_hash, or fails with invalid_argument and exactly error, in Go (internal/program, the mock) and in the Python worker alike. Regenerate with: go test ./internal/program -run TestDemoVectors -update",
		"cases": cases,
	}, "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update to create it")
	assert.Equal(t, string(want), string(got), "the demo rules changed: that breaks the contract with the Python worker")
}

// TestDemosAreNormalized: a compiled spec's demos hold converted values
// (the Go types Execute returns), and the caller's maps are not changed.
func TestDemosAreNormalized(t *testing.T) {
	sig, err := program.ParseSignature("n: int, m: dict[int, float] -> out: list[float]")
	require.NoError(t, err)
	in := map[string]any{"n": 3.0, "m": map[string]any{"7": 1}}
	c, err := program.Compile(command.Spec{Signature: sig, Demos: []command.Demo{{Inputs: in, Outputs: map[string]any{"out": []int{1, 2}}}}})
	require.NoError(t, err)
	require.Len(t, c.Spec.Demos, 1)
	d := c.Spec.Demos[0]
	assert.Equal(t, map[string]any{"n": int64(3), "m": map[int64]float64{7: 1}}, d.Inputs)
	assert.Equal(t, map[string]any{"out": []float64{1, 2}}, d.Outputs)
	assert.Equal(t, 3.0, in["n"], "the caller's map is left alone")

	wire, err := json.Marshal(c.Spec)
	require.NoError(t, err)
	again, err := compileJSON(t, wire)
	require.NoError(t, err)
	assert.Equal(t, c.Hash, again.Hash, "the spec as sent on the wire compiles to the same hash")

	none, err := program.Compile(command.Spec{Signature: sig})
	require.NoError(t, err)
	assert.Nil(t, none.Spec.Demos)
	wire, err = json.Marshal(none.Spec)
	require.NoError(t, err)
	assert.NotContains(t, string(wire), "demos", "no demos: the key is left out on the wire")
}
