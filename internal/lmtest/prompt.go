package lmtest

import (
	"regexp"
	"strconv"
	"strings"
)

// Format is the shape of a request's prompt, and so of the reply to it.
type Format string

// The formats the server recognises (see the package documentation).
const (
	// FormatChat is DSPy's ChatAdapter and dspgo's native prompt: the reply
	// has a [[ ## field ## ]] section per output field, then
	// [[ ## completed ## ]].
	FormatChat Format = "chat"
	// FormatJSON is DSPy's JSONAdapter (a response_format, or a system
	// message saying the outputs are a JSON object): the reply is one JSON
	// object holding every output field.
	FormatJSON Format = "json"
	// FormatXML is DSPy's XMLAdapter (the last user message asks for the
	// outputs wrapped in XML tags): the reply has an element per output
	// field.
	FormatXML Format = "xml"
	// FormatText is any other prompt: the reply is PlainText.
	FormatText Format = "text"
)

// PlainText is the reply to a prompt that asks for no output field.
const PlainText = "This is a test reply from lmtest."

// GarbageText is the reply content of the garbage directive: no field
// section and no JSON object, so no adapter can parse it.
const GarbageText = "I am sorry, I cannot answer in the requested format."

// Finish is the tool name that ends a DSPy ReAct loop.
const Finish = "finish"

// Message is one chat message as the server read it: its role and its text
// (the text parts of a list content joined by newlines).
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Field is an output field a request asked for: its name and its type as the
// prompt spells it (the JSON schema's text when only a schema gives it).
type Field struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Reply is the server's answer to a conversation, as Respond computes it.
type Reply struct {
	// Format is the prompt's format.
	Format Format
	// Fields are the output fields asked for, in order (none for
	// FormatText).
	Fields []Field
	// Values are the fields' values by name.
	Values map[string]any
	// Tool is the tool a ReAct step calls (Finish when it finishes); empty
	// for other prompts.
	Tool string
	// Args are the arguments of Tool (empty for Finish); nil for other
	// prompts.
	Args map[string]any
	// Content is the assistant message's content.
	Content string
}

// outField is a Field with its parsed type.
type outField struct {
	Field
	typ *fieldType
}

const (
	outputFieldsMarker = "Your output fields are:"
	jsonOutputsMarker  = "Outputs will be a JSON object with the following fields."
	// jsonRequestMarker starts the last user message's request of
	// JSONAdapter and of the adapters built on it (BAMLAdapter, whose
	// system message writes the outputs as sections).
	jsonRequestMarker = "Respond with a JSON object in the following order of fields: "
	// xmlRequestMarker starts the last user message's request of
	// XMLAdapter.
	xmlRequestMarker = "Respond with the corresponding output fields wrapped in XML tags "
)

// fieldListEnds are the lines that end the list of output fields.
var fieldListEnds = []string{
	"All interactions will be structured",
	"In adhering to this structure",
	"Your objective is:",
}

// schemaNotes are the phrases after which a field's JSON schema follows
// in DSPy's prompts, which both engines write.
var schemaNotes = []string{
	"# note: the value you produce must adhere to the JSON schema: ",
}

// Respond computes the server's reply to a conversation and its
// response_format (raw JSON; empty when the request has none): the prompt's
// format is detected, its output fields read, and each filled by the value
// rule of the package documentation.
func Respond(messages []Message, responseFormat []byte) Reply {
	var system, lastUser string
	for _, m := range messages {
		switch m.Role {
		case "system", "developer":
			system += m.Content + "\n"
		case "user":
			lastUser = m.Content
		}
	}
	fields := parseFieldList(system)
	rfType, rfSchema := parseResponseFormat(responseFormat)
	format := FormatChat
	switch {
	case rfType == "json_schema" || rfType == "json_object" || strings.Contains(system, jsonOutputsMarker) ||
		strings.Contains(lastUser, jsonRequestMarker):
		format = FormatJSON
		fields = mergeSchemaFields(fields, rfSchema)
	case strings.Contains(lastUser, xmlRequestMarker):
		format = FormatXML
	case len(fields) == 0:
		return Reply{Format: FormatText, Content: PlainText}
	}

	reply := Reply{Format: format, Values: map[string]any{}}
	for _, f := range fields {
		reply.Fields = append(reply.Fields, f.Field)
		reply.Values[f.Name] = valueOf(f.Name, f.typ)
	}
	if tools, ok := reactTools(fields); ok {
		tool, args := chooseStep(tools, hasDSPyStep(lastUser), func(name string) *fieldType {
			return dspyToolArgs(system, name)
		})
		reply.Tool, reply.Args = tool, args
		reply.Values["next_tool_name"] = tool
		reply.Values["next_tool_args"] = args
	}
	switch format {
	case FormatJSON:
		reply.Content = jsonContent(fields, reply.Values)
	case FormatXML:
		reply.Content = xmlContent(fields, reply.Values)
	default:
		reply.Content = chatContent(fields, reply.Values)
	}
	return reply
}

// xmlContent is the reply in DSPy's XMLAdapter format: "<name>\n", the
// value as chatContent writes it ("&" and "<" escaped), "\n</name>", for
// each field in order, a blank line between. A list, dict or model value
// is JSON inside its element, which XMLAdapter reads only for some types
// (it asks for nested elements).
func xmlContent(fields []outField, values map[string]any) string {
	parts := make([]string, len(fields))
	escape := strings.NewReplacer("&", "&amp;", "<", "&lt;")
	for i, f := range fields {
		parts[i] = "<" + f.Name + ">\n" + escape.Replace(valueText(values[f.Name], f.typ)) + "\n</" + f.Name + ">"
	}
	return strings.Join(parts, "\n\n")
}

// chatContent is the reply in DSPy's ChatAdapter format.
func chatContent(fields []outField, values map[string]any) string {
	var b strings.Builder
	for _, f := range fields {
		b.WriteString("[[ ## " + f.Name + " ## ]]\n")
		b.WriteString(valueText(values[f.Name], f.typ))
		b.WriteString("\n\n")
	}
	b.WriteString("[[ ## completed ## ]]\n")
	return b.String()
}

// jsonContent is one JSON object holding the fields in order, indented.
func jsonContent(fields []outField, values map[string]any) string {
	if len(fields) == 0 {
		return "{}"
	}
	var b strings.Builder
	b.WriteString("{\n")
	for i, f := range fields {
		b.WriteString("  " + marshal(f.Name) + ": " + marshal(values[f.Name]))
		if i < len(fields)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("}")
	return b.String()
}

// parseFieldList reads the numbered lines after "Your output fields are:"
// ("1. `answer` (int): description"). A field whose type holds a name this
// package does not know (`Entity`, `list[Entity]`) takes its type from the
// JSON schema the prompt gives for it, if any.
func parseFieldList(system string) []outField {
	i := strings.Index(system, outputFieldsMarker)
	if i < 0 {
		return nil
	}
	var fields []outField
	for _, line := range strings.Split(system[i+len(outputFieldsMarker):], "\n") {
		trimmed := strings.TrimSpace(line)
		if hasAnyPrefix(trimmed, fieldListEnds) {
			break
		}
		name, typ, ok := parseFieldLine(line, len(fields)+1)
		if !ok {
			continue
		}
		t, err := parseTypeString(typ)
		if err != nil {
			t = strType
		}
		fields = append(fields, outField{Field: Field{Name: name, Type: typ}, typ: t})
	}
	if len(fields) == 0 {
		return nil
	}
	notes := schemaNotesIn(system)
	for i, f := range fields {
		if !f.typ.hasUnknown() {
			continue
		}
		if schema, ok := notes[f.Name]; ok {
			root, _ := schema.(*ordObj)
			fields[i].typ = schemaType(schema, root, 0)
		}
	}
	return fields
}

// parseFieldLine reads "N. `name` (type)" with an optional ": description".
func parseFieldLine(line string, n int) (name, typ string, ok bool) {
	rest, ok := strings.CutPrefix(line, strconv.Itoa(n)+". `")
	if !ok {
		return "", "", false
	}
	name, rest, ok = strings.Cut(rest, "`")
	if !ok || name == "" {
		return "", "", false
	}
	rest, ok = strings.CutPrefix(rest, " (")
	if !ok {
		return "", "", false
	}
	end := closingParen(rest)
	if end < 0 {
		return "", "", false
	}
	return name, rest[:end], true
}

// closingParen is the index of the ')' that closes an already opened '(',
// skipping nested brackets and quoted strings; -1 when there is none.
func closingParen(s string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		case c == ')':
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return -1
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// schemaNotesIn finds "{name}   # note: the value you produce must adhere to
// the JSON schema: {...}" in a prompt, also inside the JSON object by which
// DSPy's JSONAdapter describes its outputs; the schemas by field name.
func schemaNotesIn(system string) map[string]any {
	notes := map[string]any{}
	collectSchemaNotes(system, notes)
	if i := strings.Index(system, jsonOutputsMarker); i >= 0 {
		rest := strings.TrimLeft(system[i+len(jsonOutputsMarker):], " \n")
		if v, _, err := decodeOrdered([]byte(rest)); err == nil {
			if o, ok := v.(*ordObj); ok {
				for _, k := range o.keys {
					if s, ok := o.vals[k].(string); ok {
						collectSchemaNotes(s, notes)
					}
				}
			}
		}
	}
	return notes
}

func collectSchemaNotes(text string, notes map[string]any) {
	for _, note := range schemaNotes {
		for start := 0; ; {
			i := strings.Index(text[start:], note)
			if i < 0 {
				break
			}
			i += start
			start = i + len(note)
			before := strings.TrimRight(text[:i], " \t")
			if !strings.HasSuffix(before, "}") {
				continue
			}
			open := strings.LastIndexByte(before, '{')
			if open < 0 {
				continue
			}
			name := before[open+1 : len(before)-1]
			if v, _, err := decodeOrdered([]byte(text[start:])); err == nil {
				notes[name] = v
			}
		}
	}
}

// parseResponseFormat returns a response_format's type and, for json_schema,
// its schema.
func parseResponseFormat(raw []byte) (string, any) {
	if len(strings.TrimSpace(string(raw))) == 0 {
		return "", nil
	}
	v, _, err := decodeOrdered(raw)
	if err != nil {
		return "", nil
	}
	o, ok := v.(*ordObj)
	if !ok {
		return "", nil
	}
	typ, _ := o.vals["type"].(string)
	if js, ok := o.vals["json_schema"].(*ordObj); ok {
		schema, _ := js.get("schema")
		return typ, schema
	}
	return typ, nil
}

// mergeSchemaFields returns the fields of a response_format's JSON schema,
// in its order, each with the prompt's type when the prompt lists the field
// and the schema's otherwise; the prompt's fields when there is no schema.
func mergeSchemaFields(fields []outField, schema any) []outField {
	o, ok := schema.(*ordObj)
	if !ok {
		return fields
	}
	props, ok := o.vals["properties"].(*ordObj)
	if !ok {
		return fields
	}
	byName := map[string]outField{}
	for _, f := range fields {
		byName[f.Name] = f
	}
	merged := make([]outField, 0, len(props.keys))
	for _, k := range props.keys {
		if f, ok := byName[k]; ok {
			merged = append(merged, f)
			continue
		}
		merged = append(merged, outField{
			Field: Field{Name: k, Type: marshalOrdered(props.vals[k])},
			typ:   schemaType(props.vals[k], o, 0),
		})
	}
	return merged
}

// marshalOrdered writes a decoded value back as JSON, keeping key order.
func marshalOrdered(v any) string {
	switch t := v.(type) {
	case *ordObj:
		parts := make([]string, len(t.keys))
		for i, k := range t.keys {
			parts[i] = marshal(k) + ":" + marshalOrdered(t.vals[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = marshalOrdered(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return marshal(v)
}

// --- ReAct ---------------------------------------------------------------------------

// reactTools returns the tool names of a DSPy ReAct step (the choices of
// next_tool_name), when the fields are those of one.
func reactTools(fields []outField) ([]string, bool) {
	var tools []string
	var hasName, hasArgs bool
	for _, f := range fields {
		switch f.Name {
		case "next_tool_name":
			if f.typ.kind != kindLiteral {
				return nil, false
			}
			hasName = true
			for _, c := range f.typ.choices {
				if s, ok := c.(string); ok {
					tools = append(tools, s)
				}
			}
		case "next_tool_args":
			hasArgs = true
		}
	}
	return tools, hasName && hasArgs
}

// dspyStep matches a tool call in the trajectory of a DSPy ReAct prompt.
var dspyStep = regexp.MustCompile(`\[\[ ## (?:tool_name|observation)_\d+ ## \]\]`)

func hasDSPyStep(user string) bool { return dspyStep.MatchString(user) }

// chooseStep is the ReAct policy: before any tool call, the first tool that
// is not finish, with arguments by the value rule; after one, finish.
func chooseStep(tools []string, called bool, argsType func(string) *fieldType) (string, map[string]any) {
	if !called {
		for _, t := range tools {
			if t != Finish {
				args, _ := valueOf("", argsType(t)).(map[string]any)
				if args == nil {
					args = map[string]any{}
				}
				return t, args
			}
		}
	}
	for _, t := range tools {
		if t == Finish {
			return Finish, map[string]any{}
		}
	}
	if len(tools) > 0 {
		return tools[len(tools)-1], map[string]any{}
	}
	return Finish, map[string]any{}
}

// dspyToolArgs reads a tool's arguments from DSPy's ReAct instructions:
// "(1) weather, whose description is <desc>...</desc>. It takes arguments
// {'city': {'type': 'string'}}." An object type with one property per
// argument; an empty object when the tool is not described.
func dspyToolArgs(system, tool string) *fieldType {
	re := regexp.MustCompile(`\(\d+\) ` + regexp.QuoteMeta(tool) + `(?:, whose description is <desc>|\. It takes arguments )`)
	empty := &fieldType{kind: kindObject}
	loc := re.FindStringIndex(system)
	if loc == nil {
		return empty
	}
	line := system[loc[0]:]
	if end := strings.IndexByte(line, '\n'); end >= 0 {
		line = line[:end]
	}
	const takes = ". It takes arguments "
	i := strings.Index(line, takes)
	if desc := strings.LastIndex(line, "</desc>"+takes); desc >= 0 {
		i = desc + len("</desc>")
	}
	if i < 0 {
		return empty
	}
	args, err := parsePythonLiteral(line[i+len(takes):])
	if err != nil {
		return empty
	}
	return argsObject(args)
}

// argsObject is the object type of a tool's arguments, given as a map from
// argument name to JSON schema.
func argsObject(args any) *fieldType {
	t := &fieldType{kind: kindObject}
	o, ok := args.(*ordObj)
	if !ok {
		return t
	}
	for _, k := range o.keys {
		t.props = append(t.props, property{name: k, typ: schemaType(o.vals[k], o, 0)})
	}
	return t
}
