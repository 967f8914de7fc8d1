package lmtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixture is a request captured from DSPy 3.4.1 or dspgo's native engine by
// testdata/capture.py, with the outputs the client parsed from the reply.
type fixture struct {
	Name    string                     `json:"name"`
	Source  string                     `json:"source"`
	Body    json.RawMessage            `json:"body"`
	Outputs map[string]json.RawMessage `json:"outputs"`
}

func loadFixtures(t *testing.T) []fixture {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	var out []fixture
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		var f fixture
		require.NoError(t, json.Unmarshal(data, &f), p)
		out = append(out, f)
	}
	return out
}

// personSchema is the Person model of the fixtures.
const personSchema = `{"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}`

// expectedValue is what the value rule gives a field of a fixture.
func expectedValue(t *testing.T, f Field) any {
	t.Helper()
	if f.Type == "Person" || strings.Contains(f.Type, "#/$defs/Person") {
		v, err := ValueFromSchema(f.Name, []byte(personSchema))
		require.NoError(t, err)
		return v
	}
	if strings.HasPrefix(f.Type, "{") {
		v, err := ValueFromSchema(f.Name, []byte(f.Type))
		require.NoError(t, err)
		return v
	}
	return mustValue(t, f.Name, f.Type)
}

// parseChat reads a ChatAdapter reply as DSPy does: the text of each
// section, as it is for str and Literal fields, as JSON otherwise.
func parseChat(t *testing.T, content string, fields []Field) map[string]any {
	t.Helper()
	require.True(t, strings.HasSuffix(content, "[[ ## completed ## ]]\n"), content)
	texts := map[string]string{}
	locs := sectionHeader.FindAllStringSubmatchIndex(content, -1)
	for i, loc := range locs {
		end := len(content)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		texts[content[loc[2]:loc[3]]] = strings.TrimSpace(content[loc[1]:end])
	}
	out := map[string]any{}
	for _, f := range fields {
		text, ok := texts[f.Name]
		require.True(t, ok, "no section for %s in %q", f.Name, content)
		if f.Type == "str" || strings.HasPrefix(f.Type, "Literal[") {
			out[f.Name] = text
			continue
		}
		var v any
		require.NoError(t, json.Unmarshal([]byte(text), &v), "field %s: %q", f.Name, text)
		out[f.Name] = v
	}
	return out
}

// TestFixtures answers every captured DSPy and dspgo request, checks the
// reply's format and values against the value rule, and against the
// outputs the real client parsed at capture time.
func TestFixtures(t *testing.T) {
	wantFormat := map[string]Format{
		"dspy_chat": FormatChat, "dspy_cot": FormatChat, "dspy_json": FormatJSON,
		"dspy_json_object": FormatJSON, "dspy_json_schema": FormatJSON,
		"native_chat": FormatChat, "native_react_extract": FormatChat,
		"native_react_0": FormatChat, "native_react_1": FormatChat,
	}
	weatherArgs := map[string]any{"city": mustValue(t, "city", "str"), "days": mustValue(t, "days", "int")}
	for _, fx := range loadFixtures(t) {
		t.Run(fx.Name, func(t *testing.T) {
			var body struct {
				Messages       []chatMessage   `json:"messages"`
				ResponseFormat json.RawMessage `json:"response_format"`
			}
			require.NoError(t, json.Unmarshal(fx.Body, &body))
			var messages []Message
			for _, m := range body.Messages {
				messages = append(messages, Message{Role: m.Role, Content: m.text()})
			}
			reply := Respond(messages, body.ResponseFormat)
			if want, ok := wantFormat[fx.Name]; ok {
				assert.Equal(t, want, reply.Format)
			}

			var parsed map[string]any
			switch reply.Format {
			case FormatChat:
				parsed = parseChat(t, reply.Content, reply.Fields)
			case FormatJSON:
				require.NoError(t, json.Unmarshal([]byte(reply.Content), &parsed), reply.Content)
				assert.Len(t, parsed, len(reply.Fields))
			default:
				t.Fatalf("format %q", reply.Format)
			}

			require.NotEmpty(t, reply.Fields)
			for _, f := range reply.Fields {
				want := expectedValue(t, f)
				switch {
				case f.Name == "next_tool_name" && strings.HasSuffix(fx.Name, "_0"):
					want = "weather"
				case f.Name == "next_tool_name":
					want = Finish
				case f.Name == "next_tool_args" && strings.HasSuffix(fx.Name, "_0"):
					want = weatherArgs
				case f.Name == "next_tool_args":
					want = map[string]any{}
				}
				assert.Equal(t, jsonText(t, want), jsonText(t, parsed[f.Name]), "field %s (%s)", f.Name, f.Type)
				assert.Equal(t, jsonText(t, want), jsonText(t, reply.Values[f.Name]), "Reply.Values[%s]", f.Name)
				if got, ok := fx.Outputs[f.Name]; ok {
					assert.JSONEq(t, string(got), jsonText(t, want), "%s parsed %s differently", fx.Source, f.Name)
				}
			}
		})
	}
}

// TestSameValuesAcrossFormats: DSPy's ChatAdapter, its JSONAdapter (with and
// without response_format) and dspgo's native prompt give each field the
// same value.
func TestSameValuesAcrossFormats(t *testing.T) {
	values := map[string]map[string]string{} // field and type → fixture → JSON
	for _, fx := range loadFixtures(t) {
		var body struct {
			Messages       []chatMessage   `json:"messages"`
			ResponseFormat json.RawMessage `json:"response_format"`
		}
		require.NoError(t, json.Unmarshal(fx.Body, &body))
		var messages []Message
		for _, m := range body.Messages {
			messages = append(messages, Message{Role: m.Role, Content: m.text()})
		}
		reply := Respond(messages, body.ResponseFormat)
		for _, f := range reply.Fields {
			key := f.Name + " " + f.Type
			if f.Name == "person" {
				key = "person" // typed "Person" by the prompt, by its schema in response_format
			}
			if values[key] == nil {
				values[key] = map[string]string{}
			}
			values[key][fx.Name] = jsonText(t, reply.Values[f.Name])
		}
	}
	for _, key := range []string{"answer str", "n int", "score float", "tags list[str]", "choice Literal['red', 'green']", "person"} {
		require.GreaterOrEqual(t, len(values[key]), 4, key)
		var first string
		for fx, v := range values[key] {
			if first == "" {
				first = v
			}
			assert.Equal(t, first, v, "field %s in %s", key, fx)
		}
	}
}

func chatPrompt(fieldLines, structure string) []Message {
	return []Message{
		{Role: "system", Content: "Your input fields are:\n1. `q` (str):\nYour output fields are:\n" + fieldLines +
			"\nAll interactions will be structured in the following way, with the appropriate values filled in.\n\n" + structure +
			"\n\n[[ ## completed ## ]]\nIn adhering to this structure, your objective is: \n        Answer."},
		{Role: "user", Content: "[[ ## q ## ]]\nhello"},
	}
}

func TestRespondEdgeCases(t *testing.T) {
	t.Run("types with parentheses, multi-line descriptions, unknown types with a schema note", func(t *testing.T) {
		msgs := chatPrompt(
			"1. `label` (Literal['a (x)', 'b)']): pick one\n    Type description of it: 2. `fake` (int)\n"+
				"2. `model` (Thing): a thing\nConstraints: none\n3. `plain` (Mystery):",
			"[[ ## model ## ]]\n{model}        # note: the value you produce must adhere to the JSON schema: "+
				`{"type": "object", "properties": {"k": {"type": "integer"}}}`)
		reply := Respond(msgs, nil)
		require.Equal(t, FormatChat, reply.Format)
		assert.Equal(t, []Field{{"label", "Literal['a (x)', 'b)']"}, {"model", "Thing"}, {"plain", "Mystery"}}, reply.Fields)
		assert.Equal(t, "a (x)", reply.Values["label"])
		assert.Equal(t, map[string]any{"k": mustValue(t, "model.k", "int")}, reply.Values["model"])
		assert.Equal(t, mustValue(t, "plain", "str"), reply.Values["plain"])
		assert.Contains(t, reply.Content, "[[ ## model ## ]]\n{\"k\":")
		assert.Contains(t, reply.Content, "[[ ## label ## ]]\na (x)\n\n")
	})
	t.Run("a model inside a known type takes the schema note's type", func(t *testing.T) {
		msgs := chatPrompt("1. `entities` (list[Entity]):\n2. `tags` (list[str]):",
			"[[ ## entities ## ]]\n{entities}        # note: the value you produce must adhere to the JSON schema: "+
				`{"type": "array", "$defs": {"Entity": {"type": "object", "properties": {"name": {"type": "string"}}}}, "items": {"$ref": "#/$defs/Entity"}}`)
		reply := Respond(msgs, nil)
		entities, ok := reply.Values["entities"].([]any)
		require.True(t, ok, "entities: %#v", reply.Values["entities"])
		require.NotEmpty(t, entities)
		for i, e := range entities {
			assert.Equal(t, map[string]any{"name": mustValue(t, fmt.Sprintf("entities[%d].name", i), "str")}, e)
		}
		assert.Equal(t, mustValue(t, "tags", "list[str]"), reply.Values["tags"])
	})
	t.Run("Any is written as JSON in a chat reply", func(t *testing.T) {
		reply := Respond(chatPrompt("1. `x` (Any):", ""), nil)
		assert.Equal(t, "[[ ## x ## ]]\n"+marshal(mustValue(t, "x", "Any"))+"\n\n[[ ## completed ## ]]\n", reply.Content)
	})
	t.Run("json_schema without a field list", func(t *testing.T) {
		rf := `{"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "array", "items": {"type": "number"}}}}}}`
		reply := Respond([]Message{{Role: "user", Content: "hi"}}, []byte(rf))
		require.Equal(t, FormatJSON, reply.Format)
		assert.Equal(t, []string{"b", "a"}, []string{reply.Fields[0].Name, reply.Fields[1].Name})
		assert.Equal(t, `{"type":"integer"}`, reply.Fields[0].Type)
		assert.Equal(t, "{\n  \"b\": "+marshal(mustValue(t, "b", "int"))+",\n  \"a\": "+marshal(mustValue(t, "a", "list[float]"))+"\n}", reply.Content)
	})
	t.Run("json_object without fields", func(t *testing.T) {
		reply := Respond([]Message{{Role: "user", Content: "hi"}}, []byte(`{"type": "json_object"}`))
		assert.Equal(t, Reply{Format: FormatJSON, Values: map[string]any{}, Content: "{}"}, reply)
	})
	t.Run("plain prompt", func(t *testing.T) {
		reply := Respond([]Message{{Role: "user", Content: "Say hi"}}, []byte(`{"type": "text"}`))
		assert.Equal(t, Reply{Format: FormatText, Content: PlainText}, reply)
	})
	t.Run("DSPy ReAct without tools but finish", func(t *testing.T) {
		reply := Respond(chatPrompt("1. `next_thought` (str):\n2. `next_tool_name` (Literal['finish']):\n3. `next_tool_args` (dict[str, Any]):", ""), nil)
		assert.Equal(t, Finish, reply.Tool)
		assert.Equal(t, map[string]any{}, reply.Args)
		assert.Contains(t, reply.Content, "[[ ## next_tool_name ## ]]\nfinish\n\n[[ ## next_tool_args ## ]]\n{}\n\n")
	})
}
