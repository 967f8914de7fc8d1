package lmtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxTypeDepth bounds the nesting of a type string or a JSON schema.
const maxTypeDepth = 32

// kind is the kind of a parsed field type.
type kind int

const (
	kindStr kind = iota
	kindInt
	kindFloat
	kindBool
	kindNone
	kindAny
	kindList
	kindTuple
	kindDict
	kindLiteral
	kindObject
	// kindDate is a datetime.date, written YYYY-MM-DD.
	kindDate
	// kindDateTime is a datetime.datetime, written YYYY-MM-DDTHH:MM:SSZ.
	kindDateTime
)

// fieldType is a parsed field type, from a type string ("list[int]",
// "Optional[str]", "Literal['a', 'b']") or from a JSON schema.
type fieldType struct {
	kind kind
	// elem is a list's element, a dict's value or a variadic tuple's element.
	elem *fieldType
	// key is a dict's key type.
	key *fieldType
	// items are a fixed tuple's members.
	items []*fieldType
	// choices are a Literal's values (string, int64, float64, bool or nil).
	choices []any
	// props are an object's properties, in declared order.
	props []property
	// unknown marks a type name this package does not know (treated as str
	// unless a JSON schema for the field says more).
	unknown bool
}

// hasUnknown reports whether t names a type this package does not know,
// at any depth (list[Entity]).
func (t *fieldType) hasUnknown() bool {
	if t == nil {
		return false
	}
	if t.unknown || t.elem.hasUnknown() || t.key.hasUnknown() {
		return true
	}
	for _, m := range t.items {
		if m.hasUnknown() {
			return true
		}
	}
	for _, p := range t.props {
		if p.typ.hasUnknown() {
			return true
		}
	}
	return false
}

type property struct {
	name string
	typ  *fieldType
}

var (
	strType = &fieldType{kind: kindStr}
	anyType = &fieldType{kind: kindAny}
)

// firstNonNone is the member a union resolves to: its first member that is
// not None, or None when all are.
func firstNonNone(members []*fieldType) *fieldType {
	for _, m := range members {
		if m.kind != kindNone {
			return m
		}
	}
	return &fieldType{kind: kindNone}
}

// --- type strings ------------------------------------------------------------------

// parseTypeString parses a field type as DSPy (get_annotation_name) or dspgo
// spells it. Unknown names are str, marked unknown; only malformed strings
// (unbalanced brackets, unterminated quotes) are errors. An empty string is str.
func parseTypeString(s string) (*fieldType, error) {
	p := &typeParser{s: s}
	p.space()
	if p.done() {
		return strType, nil
	}
	t, err := p.union(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if !p.done() {
		return nil, fmt.Errorf("unexpected %q at position %d of type %q", p.s[p.i:], p.i, s)
	}
	return t, nil
}

type typeParser struct {
	s string
	i int
}

func (p *typeParser) done() bool { return p.i >= len(p.s) }

func (p *typeParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

func (p *typeParser) space() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *typeParser) expect(c byte) error {
	p.space()
	if p.peek() != c {
		return fmt.Errorf("expected %q at position %d of type %q", c, p.i, p.s)
	}
	p.i++
	return nil
}

func (p *typeParser) union(depth int) (*fieldType, error) {
	if depth > maxTypeDepth {
		return nil, fmt.Errorf("type %q nests more than %d levels", p.s, maxTypeDepth)
	}
	first, err := p.primary(depth)
	if err != nil {
		return nil, err
	}
	members := []*fieldType{first}
	for {
		p.space()
		if p.peek() != '|' {
			break
		}
		p.i++
		m, err := p.primary(depth)
		if err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	if len(members) == 1 {
		return first, nil
	}
	return firstNonNone(members), nil
}

// ellipsis stands for "..." (or "Ellipsis") in tuple[T, ...].
var ellipsis = &fieldType{kind: kindAny}

func (p *typeParser) primary(depth int) (*fieldType, error) {
	p.space()
	switch c := p.peek(); {
	case c == '.' && strings.HasPrefix(p.s[p.i:], "..."):
		p.i += 3
		return ellipsis, nil
	case c == '[':
		// A bracketed list of types, as in Callable[[int], str]: any.
		p.i++
		if _, err := p.args(depth + 1); err != nil {
			return nil, err
		}
		return anyType, p.expect(']')
	case c == '\'' || c == '"' || c == '-' || (c >= '0' && c <= '9'):
		// A value where a type was expected (a stray literal): any.
		if _, err := p.literalValue(); err != nil {
			return nil, err
		}
		return anyType, nil
	}
	name := p.name()
	switch name {
	case "":
		return nil, fmt.Errorf("expected a type at position %d of type %q", p.i, p.s)
	case "Ellipsis": // DSPy writes tuple[int, ...] as "tuple[int, Ellipsis]"
		return ellipsis, nil
	}
	base := name
	if dot := strings.LastIndexByte(base, '.'); dot >= 0 {
		base = base[dot+1:]
	}
	p.space()
	if base == "Literal" {
		if p.peek() != '[' {
			return &fieldType{kind: kindLiteral}, nil
		}
		p.i++
		choices, err := p.literalValues()
		if err != nil {
			return nil, err
		}
		return &fieldType{kind: kindLiteral, choices: choices}, p.expect(']')
	}
	var args []*fieldType
	if p.peek() == '[' {
		p.i++
		var err error
		if args, err = p.args(depth + 1); err != nil {
			return nil, err
		}
		if err := p.expect(']'); err != nil {
			return nil, err
		}
	}
	return namedType(base, args), nil
}

// args parses the comma-separated types inside brackets (possibly none).
func (p *typeParser) args(depth int) ([]*fieldType, error) {
	var out []*fieldType
	p.space()
	if p.peek() == ']' {
		return out, nil
	}
	if p.peek() == '(' && strings.HasPrefix(p.s[p.i:], "()") { // tuple[()]
		p.i += 2
		return out, nil
	}
	for {
		t, err := p.union(depth)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
		p.space()
		if p.peek() != ',' {
			return out, nil
		}
		p.i++
	}
}

func (p *typeParser) name() string {
	start := p.i
	for !p.done() {
		r, size := utf8.DecodeRuneInString(p.s[p.i:])
		if r != '.' && r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			break
		}
		if r == '.' && strings.HasPrefix(p.s[p.i:], "...") {
			break
		}
		p.i += size
	}
	return p.s[start:p.i]
}

func (p *typeParser) literalValues() ([]any, error) {
	var out []any
	for {
		p.space()
		if p.peek() == ']' {
			return out, nil
		}
		v, err := p.literalValue()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.space()
		if p.peek() != ',' {
			return out, nil
		}
		p.i++
	}
}

// literalValue reads one Literal member: a quoted string, a number, True,
// False, None, or a bare name (an enum member), which is kept as its text.
func (p *typeParser) literalValue() (any, error) {
	p.space()
	lp := &pyParser{s: p.s, i: p.i}
	switch c := p.peek(); {
	case c == '\'' || c == '"':
		s, err := lp.str()
		p.i = lp.i
		return s, err
	case c == '-' || (c >= '0' && c <= '9'):
		n, err := lp.number()
		p.i = lp.i
		return n, err
	}
	name := p.name()
	switch name {
	case "":
		return nil, fmt.Errorf("expected a Literal value at position %d of type %q", p.i, p.s)
	case "True":
		return true, nil
	case "False":
		return false, nil
	case "None":
		return nil, nil
	}
	return name, nil
}

// namedType maps a type name (its last dotted segment) and its arguments to a
// type. Names it does not know are str, marked unknown.
func namedType(name string, args []*fieldType) *fieldType {
	arg := func(i int, def *fieldType) *fieldType {
		if i < len(args) && args[i] != ellipsis {
			return args[i]
		}
		return def
	}
	switch name {
	case "str", "string", "String", "Text", "bytes":
		return strType
	case "int", "integer", "Integer":
		return &fieldType{kind: kindInt}
	case "float", "number", "Number", "Decimal":
		return &fieldType{kind: kindFloat}
	case "bool", "boolean", "Boolean":
		return &fieldType{kind: kindBool}
	case "date":
		return &fieldType{kind: kindDate}
	case "datetime":
		return &fieldType{kind: kindDateTime}
	case "None", "NoneType":
		return &fieldType{kind: kindNone}
	case "Any", "object":
		return anyType
	case "list", "List", "Sequence", "MutableSequence", "Iterable", "Collection",
		"set", "Set", "AbstractSet", "MutableSet", "frozenset", "FrozenSet", "deque", "Deque", "array":
		return &fieldType{kind: kindList, elem: arg(0, anyType)}
	case "tuple", "Tuple":
		if len(args) == 2 && args[1] == ellipsis {
			return &fieldType{kind: kindList, elem: arg(0, anyType)}
		}
		if args == nil {
			return &fieldType{kind: kindList, elem: anyType}
		}
		return &fieldType{kind: kindTuple, items: args}
	case "dict", "Dict", "Mapping", "MutableMapping", "OrderedDict", "defaultdict", "DefaultDict":
		return &fieldType{kind: kindDict, key: arg(0, strType), elem: arg(1, anyType)}
	case "Optional", "Union":
		if len(args) == 0 {
			return anyType
		}
		return firstNonNone(args)
	case "Annotated", "Required", "NotRequired", "ReadOnly", "Final", "ClassVar":
		return arg(0, anyType)
	}
	return &fieldType{kind: kindStr, unknown: true}
}

// --- ordered JSON --------------------------------------------------------------------

// ordObj is a JSON object (or a Python dict) that keeps its keys' order.
type ordObj struct {
	keys []string
	vals map[string]any
}

func (o *ordObj) get(key string) (any, bool) {
	if o == nil {
		return nil, false
	}
	v, ok := o.vals[key]
	return v, ok
}

func (o *ordObj) set(key string, v any) {
	if _, ok := o.vals[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.vals[key] = v
}

func newOrdObj() *ordObj { return &ordObj{vals: map[string]any{}} }

// decodeOrdered decodes one JSON value from the start of data: objects as
// *ordObj, arrays as []any, numbers as int64 or float64. It returns how many
// bytes the value took.
func decodeOrdered(data []byte) (any, int, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, 0, err
	}
	return v, int(dec.InputOffset()), nil
}

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > 2*maxTypeDepth {
		return nil, errors.New("JSON nests too deep")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := newOrdObj()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", kt)
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				o.set(key, v)
			}
			_, err := dec.Token() // '}'
			return o, err
		case '[':
			out := []any{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
			_, err := dec.Token() // ']'
			return out, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		return numberValue(string(t)), nil
	default:
		return t, nil
	}
}

// numberValue is a number's text as int64 when it is an integer that fits,
// else float64.
func numberValue(s string) any {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// --- Python literals --------------------------------------------------------------

// parsePythonLiteral reads one Python literal (dict, list, tuple, set, str,
// number, True, False, None) from the start of s, as DSPy prints a tool's
// arguments ("{'city': {'type': 'string'}}"). Dicts become *ordObj with
// their keys as text.
func parsePythonLiteral(s string) (any, error) {
	p := &pyParser{s: s}
	return p.value(0)
}

type pyParser struct {
	s string
	i int
}

func (p *pyParser) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *pyParser) errorf(format string, args ...any) error {
	return fmt.Errorf("python literal at %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *pyParser) value(depth int) (any, error) {
	if depth > 2*maxTypeDepth {
		return nil, p.errorf("nests too deep")
	}
	p.space()
	if p.i >= len(p.s) {
		return nil, p.errorf("unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.dict(depth)
	case c == '[':
		return p.seq(depth, ']')
	case c == '(':
		return p.seq(depth, ')')
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	}
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] == '_' || unicode.IsLetter(rune(p.s[p.i])) || unicode.IsDigit(rune(p.s[p.i]))) {
		p.i++
	}
	switch word := p.s[start:p.i]; word {
	case "True":
		return true, nil
	case "False":
		return false, nil
	case "None":
		return nil, nil
	case "":
		return nil, p.errorf("unexpected %q", p.s[p.i])
	default:
		return word, nil
	}
}

func (p *pyParser) dict(depth int) (any, error) {
	p.i++ // '{'
	o := newOrdObj()
	var set []any
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			if set != nil {
				return set, nil
			}
			return o, nil
		}
		k, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ':' {
			p.i++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			o.set(literalText(k), v)
		} else {
			set = append(set, k) // a set literal {1, 2}
		}
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == '}' {
			continue
		}
		return nil, p.errorf("expected ',' or '}'")
	}
}

func (p *pyParser) seq(depth int, end byte) (any, error) {
	p.i++
	out := []any{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == end {
			p.i++
			return out, nil
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == end {
			continue
		}
		return nil, p.errorf("expected ',' or %q", end)
	}
}

func (p *pyParser) number() (any, error) {
	start := p.i
	if p.i < len(p.s) && (p.s[p.i] == '-' || p.s[p.i] == '+') {
		p.i++
	}
	for p.i < len(p.s) && strings.IndexByte("0123456789._eE+-xXabcdefABCDEF", p.s[p.i]) >= 0 {
		if (p.s[p.i] == '+' || p.s[p.i] == '-') && !strings.ContainsAny(p.s[p.i-1:p.i], "eE") {
			break
		}
		p.i++
	}
	text := strings.ReplaceAll(p.s[start:p.i], "_", "")
	if n, err := strconv.ParseInt(text, 0, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return nil, p.errorf("bad number %q", text)
	}
	return f, nil
}

// str reads a quoted Python string with its escapes (string prefixes such as
// r or b are not supported; DSPy does not print them).
func (p *pyParser) str() (string, error) {
	q := p.s[p.i]
	triple := strings.HasPrefix(p.s[p.i:], strings.Repeat(string(q), 3))
	if triple {
		p.i += 3
	} else {
		p.i++
	}
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case triple && strings.HasPrefix(p.s[p.i:], strings.Repeat(string(q), 3)):
			p.i += 3
			return b.String(), nil
		case !triple && c == q:
			p.i++
			return b.String(), nil
		case c == '\\' && p.i+1 < len(p.s):
			if err := p.escape(&b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *pyParser) escape(b *strings.Builder) error {
	c := p.s[p.i+1]
	p.i += 2
	simple := map[byte]string{'n': "\n", 't': "\t", 'r': "\r", '\\': "\\", '\'': "'", '"': "\"", '0': "\x00", 'a': "\a", 'b': "\b", 'f': "\f", 'v': "\v", '\n': ""}
	if s, ok := simple[c]; ok {
		b.WriteString(s)
		return nil
	}
	width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
	if width == 0 || p.i+width > len(p.s) {
		b.WriteByte('\\')
		b.WriteByte(c)
		return nil
	}
	n, err := strconv.ParseUint(p.s[p.i:p.i+width], 16, 32)
	if err != nil {
		return p.errorf("bad escape \\%c%s", c, p.s[p.i:p.i+width])
	}
	p.i += width
	b.WriteRune(rune(n))
	return nil
}

// literalText is the text of a dict key or Literal member: a string itself,
// anything else its JSON.
func literalText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}

// --- JSON schemas -----------------------------------------------------------------

// schemaType maps a JSON schema (decoded by decodeOrdered or
// parsePythonLiteral) to a type: string, integer, number, boolean, null,
// array (items, or prefixItems for a tuple), object (properties, or
// additionalProperties for a dict), enum and const (a Literal), anyOf and
// oneOf (the first member that is not null), allOf (its first member), $ref
// into $defs or definitions. Anything else is Any.
func schemaType(schema any, root *ordObj, depth int) *fieldType {
	o, ok := schema.(*ordObj)
	if !ok || depth > maxTypeDepth {
		return anyType
	}
	if ref, ok := o.get("$ref"); ok {
		if s, ok := ref.(string); ok {
			if target := resolveRef(root, s); target != nil {
				return schemaType(target, root, depth+1)
			}
		}
		return anyType
	}
	if c, ok := o.get("const"); ok {
		return &fieldType{kind: kindLiteral, choices: []any{c}}
	}
	if e, ok := o.get("enum"); ok {
		if list, ok := e.([]any); ok && len(list) > 0 {
			return &fieldType{kind: kindLiteral, choices: list}
		}
	}
	for _, key := range []string{"anyOf", "oneOf", "allOf"} {
		if v, ok := o.get(key); ok {
			if list, ok := v.([]any); ok && len(list) > 0 {
				members := make([]*fieldType, len(list))
				for i, m := range list {
					members[i] = schemaType(m, root, depth+1)
				}
				return firstNonNone(members)
			}
		}
	}
	typeName := ""
	switch t, _ := o.get("type"); t := t.(type) {
	case string:
		typeName = t
	case []any:
		for _, m := range t {
			if s, ok := m.(string); ok && s != "null" {
				typeName = s
				break
			}
			if s, ok := m.(string); ok && typeName == "" {
				typeName = s
			}
		}
	}
	if typeName == "" {
		if _, ok := o.get("properties"); ok {
			typeName = "object"
		} else if _, ok := o.get("items"); ok {
			typeName = "array"
		}
	}
	switch typeName {
	case "string":
		switch format, _ := o.get("format"); format {
		case "date":
			return &fieldType{kind: kindDate}
		case "date-time":
			return &fieldType{kind: kindDateTime}
		}
		return strType
	case "integer":
		return &fieldType{kind: kindInt}
	case "number":
		return &fieldType{kind: kindFloat}
	case "boolean":
		return &fieldType{kind: kindBool}
	case "null":
		return &fieldType{kind: kindNone}
	case "array":
		if prefix, ok := o.get("prefixItems"); ok {
			if list, ok := prefix.([]any); ok {
				items := make([]*fieldType, len(list))
				for i, m := range list {
					items[i] = schemaType(m, root, depth+1)
				}
				return &fieldType{kind: kindTuple, items: items}
			}
		}
		items, _ := o.get("items")
		return &fieldType{kind: kindList, elem: schemaType(items, root, depth+1)}
	case "object":
		if props, ok := o.get("properties"); ok {
			if po, ok := props.(*ordObj); ok {
				t := &fieldType{kind: kindObject}
				for _, k := range po.keys {
					t.props = append(t.props, property{name: k, typ: schemaType(po.vals[k], root, depth+1)})
				}
				return t
			}
		}
		add, _ := o.get("additionalProperties")
		return &fieldType{kind: kindDict, key: strType, elem: schemaType(add, root, depth+1)}
	}
	return anyType
}

func resolveRef(root *ordObj, ref string) any {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	var cur any = root
	for _, part := range strings.Split(ref[2:], "/") {
		o, ok := cur.(*ordObj)
		if !ok {
			return nil
		}
		part = strings.NewReplacer("~1", "/", "~0", "~").Replace(part)
		if cur, ok = o.get(part); !ok {
			return nil
		}
	}
	return cur
}

// parseSchema decodes a JSON schema and maps it to a type.
func parseSchema(data []byte) (*fieldType, error) {
	v, _, err := decodeOrdered(data)
	if err != nil {
		return nil, fmt.Errorf("JSON schema: %w", err)
	}
	root, _ := v.(*ordObj)
	return schemaType(v, root, 0), nil
}
