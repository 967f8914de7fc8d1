package lmtest

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// jsonText is v's JSON, for comparing values of any Go shape.
func jsonText(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return string(data)
}

func mustValue(t *testing.T, field, typ string) any {
	t.Helper()
	v, err := Value(field, typ)
	require.NoError(t, err, "Value(%q, %q)", field, typ)
	return v
}

// TestValuePinned pins the rule's results (Python tests may hard-code them).
func TestValuePinned(t *testing.T) {
	tests := []struct {
		field, typ string
		want       string // JSON
	}{
		{"answer", "str", `"answer 90df 0371"`},
		{"n", "int", `74`},
		{"score", "float", `1.65`},
		{"ok", "bool", `false`},
		{"tags", "list[str]", `["tags[0] 41da d2bc","tags[1] 0537 d2ba"]`},
		{"counts", "dict[str, int]", `{"key0":94,"key1":73}`},
		{"choice", "Literal['red', 'green']", `"red"`},
		{"maybe", "Optional[int]", `72`},
		{"pair", "tuple[int, str]", `[38,"pair[1] c880 db4a"]`},
		{"anything", "Any", `"anything 17d7 9d8e"`},
		{"nothing", "None", `null`},
		{"", "str", fmt.Sprintf(`"value %04x %04x"`, NameHash("")&0xffff, (NameHash("")>>16)&0xffff)},
	}
	for _, tt := range tests {
		t.Run(tt.field+" "+tt.typ, func(t *testing.T) {
			assert.JSONEq(t, tt.want, jsonText(t, mustValue(t, tt.field, tt.typ)))
		})
	}
}

// TestValueRule checks each clause of the rule as the package doc states it.
func TestValueRule(t *testing.T) {
	h := NameHash("x")
	assert.Equal(t, fmt.Sprintf("x %04x %04x", h&0xffff, (h>>16)&0xffff), mustValue(t, "x", "str"))
	assert.Equal(t, int(1+h%100), mustValue(t, "x", "int"))
	assert.Equal(t, h%2 == 0, mustValue(t, "x", "bool"))
	assert.Equal(t, []any{mustValue(t, "x[0]", "int"), mustValue(t, "x[1]", "int")}, mustValue(t, "x", "list[int]"))
	assert.Equal(t, map[string]any{"key0": mustValue(t, "x[0]", "float"), "key1": mustValue(t, "x[1]", "float")},
		mustValue(t, "x", "dict[str, float]"))
	intKeys := map[string]any{
		strconv.Itoa(mustValue(t, "x[0]", "int").(int)): mustValue(t, "x[0]", "str"),
		strconv.Itoa(mustValue(t, "x[1]", "int").(int)): mustValue(t, "x[1]", "str"),
	}
	assert.Equal(t, intKeys, mustValue(t, "x", "dict[int, str]"))
	assert.Equal(t, map[string]any{"a": mustValue(t, "x[0]", "str")},
		mustValue(t, "x", "dict[Literal['a'], str]"), "a repeated key is left out")
	assert.Equal(t, []any{mustValue(t, "x[0]", "int"), mustValue(t, "x[1]", "bool"), mustValue(t, "x[2]", "str")},
		mustValue(t, "x", "tuple[int, bool, str]"))
}

// TestValueSpellings: every spelling of a type gives the same value.
func TestValueSpellings(t *testing.T) {
	groups := [][]string{
		{"str", "string", "  str  ", "", "Person", "some.module.Model", "builtins.str"},
		{"int", "Optional[int]", "int | None", "None | int", "Union[int, NoneType]", "typing.Optional[int]", "Union[int, str, None]", "Annotated[int, 'meta']"},
		{"list[str]", "List[str]", "typing.List[str]", "Sequence[str]", "set[str]", "tuple[str, ...]", "tuple[str, Ellipsis]", "list[Optional[str]]", "List[Union[str, NoneType]]"},
		{"dict[str, int]", "Dict[str, int]", "typing.Dict[str, int]", "Mapping[str, int]", "dict[str, Optional[int]]"},
		{"Literal['a', 'b']", "Literal[\"a\", 'b']", "typing.Literal['a']", "Optional[Literal['a', 'b']]", "Literal['a'] | None"},
		{"list[dict[str, list[float]]]", "List[Dict[str, List[float]]]", "list[dict[str, list[Union[float, NoneType]]]]"},
	}
	for _, group := range groups {
		t.Run(group[0], func(t *testing.T) {
			want := jsonText(t, mustValue(t, "field", group[0]))
			for _, typ := range group[1:] {
				assert.Equal(t, want, jsonText(t, mustValue(t, "field", typ)), "type %q", typ)
			}
		})
	}
}

// TestValueSchemaMatchesTypeString: a JSON schema and a type string for the
// same type give the same value.
func TestValueSchemaMatchesTypeString(t *testing.T) {
	tests := []struct{ typ, schema string }{
		{"str", `{"type": "string"}`},
		{"int", `{"type": "integer", "title": "N"}`},
		{"float", `{"type": "number"}`},
		{"bool", `{"type": "boolean"}`},
		{"Optional[int]", `{"anyOf": [{"type": "null"}, {"type": "integer"}]}`},
		{"Optional[int]", `{"type": ["integer", "null"]}`},
		{"list[int]", `{"type": "array", "items": {"type": "integer"}}`},
		{"tuple[int, str]", `{"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]}`},
		{"dict[str, float]", `{"type": "object", "additionalProperties": {"type": "number"}}`},
		{"Literal['red', 'green']", `{"enum": ["red", "green"], "type": "string"}`},
		{"Literal['red']", `{"const": "red"}`},
		{"Any", `{}`},
		{"list[Any]", `{"type": "array"}`},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" "+tt.schema, func(t *testing.T) {
			got, err := ValueFromSchema("f", []byte(tt.schema))
			require.NoError(t, err)
			assert.Equal(t, jsonText(t, mustValue(t, "f", tt.typ)), jsonText(t, got))
		})
	}
}

func TestValueFromSchemaObjects(t *testing.T) {
	schema := `{"$defs": {"Person": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}},
		"type": "object", "properties": {"who": {"$ref": "#/$defs/Person"}, "n": {"type": "integer"}}}`
	got, err := ValueFromSchema("", []byte(schema))
	require.NoError(t, err)
	want := map[string]any{
		"who": map[string]any{"name": mustValue(t, "who.name", "str"), "age": mustValue(t, "who.age", "int")},
		"n":   mustValue(t, "n", "int"),
	}
	assert.Equal(t, want, got)

	_, err = ValueFromSchema("x", []byte(`{"type": `))
	assert.Error(t, err)
}

// TestValueFloats: floats have at most two decimals, are never integral and
// survive a text round trip exactly.
func TestValueFloats(t *testing.T) {
	for i := range 2000 {
		name := fmt.Sprintf("f%d", i)
		v := mustValue(t, name, "float").(float64)
		text := strconv.FormatFloat(v, 'g', -1, 64)
		back, err := strconv.ParseFloat(text, 64)
		require.NoError(t, err)
		require.Equal(t, v, back)
		require.NotEqual(t, math.Trunc(v), v, "%s is integral", text)
		_, decimals, ok := strings.Cut(text, ".")
		require.True(t, ok, text)
		require.LessOrEqual(t, len(decimals), 2, text)
		require.True(t, v > 0 && v < 100, text)
	}
}

func TestValueLiteralMembers(t *testing.T) {
	assert.Equal(t, 1, mustValue(t, "x", "Literal[1, 2]"))
	assert.Equal(t, true, mustValue(t, "x", "Literal[True]"))
	assert.Equal(t, -2.5, mustValue(t, "x", "Literal[-2.5, 'a']"))
	assert.Equal(t, "it's", mustValue(t, "x", `Literal["it's", 'b']`))
	assert.Equal(t, "a\nb", mustValue(t, "x", `Literal['a\nb']`))
	assert.Equal(t, "Color.RED", mustValue(t, "x", "Literal[Color.RED]"))
}

func TestValueMalformed(t *testing.T) {
	for _, typ := range []string{"list[int", "Literal['a", "dict[str, int]]", "list[]]", "|"} {
		_, err := Value("x", typ)
		assert.Error(t, err, "type %q", typ)
	}
}

func TestPythonLiteral(t *testing.T) {
	v, err := parsePythonLiteral(`{'city': {'type': 'string', 'title': "it's"}, 'n': {'default': None, 'x': [1, -2.5e1, True, (1,)]}}. trailing`)
	require.NoError(t, err)
	assert.Equal(t, `{"city":{"type":"string","title":"it's"},"n":{"default":null,"x":[1,-25,true,[1]]}}`, marshalOrdered(v))
	_, err = parsePythonLiteral(`{'a': `)
	assert.Error(t, err)
}

func TestCountTokensAndPieces(t *testing.T) {
	assert.Equal(t, 0, CountTokens(" \n "))
	assert.Equal(t, 8, CountTokens("[[ ## answer ## ]]\nanswer 1a2b 3c4d"))
	pieces := Pieces("[[ ## answer ## ]]\nanswer  1a2b\n\n[[ ## completed ## ]]\n")
	assert.Equal(t, []string{"[[", " ##", " answer", " ##", " ]]", "\nanswer", "  1a2b", "\n\n[[", " ##", " completed", " ##", " ]]", "\n"}, pieces)
	assert.Equal(t, []string{""}, Pieces(""))
	assert.Equal(t, []string{" a", " b"}, Pieces(" a b"))
}
