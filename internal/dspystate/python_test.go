package dspystate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/command"
)

// pythonRules is testdata/python_rules.json, computed by Python and DSPy
// (testdata/generate.py).
type pythonRules struct {
	InferPrefix       map[string]string `json:"infer_prefix"`
	Cleandoc          [][2]string       `json:"cleandoc"`
	Repr              [][2]string       `json:"repr"`
	ReactInstructions []struct {
		Instructions *string `json:"instructions"`
		Tools        []struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Schema      json.RawMessage `json:"schema"`
		} `json:"tools"`
		Want string `json:"want"`
	} `json:"react_instructions"`
}

// TestPythonRules: the Go forms of DSPy's infer_prefix, inspect.cleandoc,
// repr and dspy.ReAct's step instructions give what Python gave.
func TestPythonRules(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "python_rules.json"))
	require.NoError(t, err)
	var rules pythonRules
	require.NoError(t, json.Unmarshal(data, &rules))
	require.NotEmpty(t, rules.InferPrefix)
	for name, want := range rules.InferPrefix {
		assert.Equal(t, want, InferPrefix(name), name)
		if got, ok := prefixName(want + ":"); ok {
			assert.Equal(t, want, InferPrefix(got), "a name read back from a prefix has that prefix")
		}
	}
	require.NotEmpty(t, rules.Cleandoc)
	for _, c := range rules.Cleandoc {
		assert.Equal(t, c[1], Cleandoc(c[0]), "%q", c[0])
	}
	require.NotEmpty(t, rules.Repr)
	for _, c := range rules.Repr {
		got, err := PyReprJSON([]byte(c[0]))
		require.NoError(t, err, c[0])
		assert.Equal(t, c[1], got, c[0])
	}
	require.NotEmpty(t, rules.ReactInstructions)
	for i, c := range rules.ReactInstructions {
		instructions := DefaultInstructions([]string{"question", "context"}, []string{"answer", "confidence"})
		if c.Instructions != nil {
			instructions = Cleandoc(*c.Instructions)
		}
		var tools []command.ToolSpec
		for _, tool := range c.Tools {
			tools = append(tools, command.ToolSpec{Name: tool.Name, Description: tool.Description, Schema: tool.Schema})
		}
		got, err := reactInstructions(instructions, []string{"question", "context"}, []string{"answer", "confidence"}, tools)
		require.NoError(t, err)
		assert.Equal(t, c.Want, got, "case %d", i)
		assert.True(t, isReactInstructions(c.Want, instructions, []string{"question", "context"}, []string{"answer", "confidence"}),
			"case %d: ReAct's own text, for any tools, is not kept as step instructions", i)
		assert.False(t, isReactInstructions(c.Want, "Other instructions.", []string{"question", "context"}, []string{"answer", "confidence"}),
			"case %d: ReAct's text of other instructions is kept", i)
	}
}

func TestPrefixNames(t *testing.T) {
	for prefix, want := range map[string]string{"Question:": "question", "Context List:": "context_list", "Next Tool Args:": "next_tool_args"} {
		got, ok := prefixName(prefix)
		assert.True(t, ok, prefix)
		assert.Equal(t, want, got)
	}
	for _, prefix := range []string{"HTML Parser:", "Question", "Answer (short):", ":"} {
		_, ok := prefixName(prefix)
		assert.False(t, ok, "%q names no snake_case field", prefix)
	}
}

// TestUnicodeFieldNames: a program DSPy 3.4.1 saved of fields named in
// other letters than ASCII's ("frage, größe: int -> réponse, 答え:
// list[str]") loads without its signature (the names from DSPy's default
// descriptions, "${größe}"), and exports to the prefixes DSPy gave.
func TestUnicodeFieldNames(t *testing.T) {
	saved := `{"traces":[],"train":[],"demos":[{"frage":"a","größe":1,"réponse":"b","答え":["c"]}],"signature":{"instructions":"Given the fields ` + "`" + `frage` + "`" + `, ` + "`" + `größe` + "`" + `, produce the fields ` + "`" + `réponse` + "`" + `, ` + "`" + `答え` + "`" + `.","fields":[{"prefix":"Frage:","description":"${frage}"},{"prefix":"Größe:","description":"${größe}"},{"prefix":"Réponse:","description":"${réponse}"},{"prefix":"答え:","description":"${答え}"}]},"lm":null,"metadata":{"dependency_versions":{"python":"3.11","dspy":"3.4.1","cloudpickle":"3.1"}}}`
	spec, err := Load([]byte(saved), nil)
	require.NoError(t, err)
	assert.Equal(t, "frage, größe -> réponse, 答え", spec.Signature.String())
	require.Len(t, spec.Demos, 1)
	assert.Equal(t, "b", spec.Demos[0].Outputs["réponse"])
	exported, err := Export(spec, nil)
	require.NoError(t, err)
	for _, prefix := range []string{`"Frage:"`, `"Größe:"`, `"Réponse:"`, `"答え:"`} {
		assert.Contains(t, string(exported), prefix)
	}
}
