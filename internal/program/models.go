package program

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/dspgo/dspgo/command"
)

// ModelType is a pydantic model a signature declares (command.Model),
// resolved: each field's type parsed, other models included.
type ModelType struct {
	// Name is the model's class name, its type's canonical form.
	Name string
	// Description is its docstring; empty means none.
	Description string
	// Fields are its fields in declared order.
	Fields []ModelField
}

// ModelField is one field of a ModelType.
type ModelField struct {
	// Name is the field's name, an identifier.
	Name string
	// Type is the field's parsed type. A field with a Default, or an
	// Optional one, may be left out of a value.
	Type Type
	// Description is the field's description; empty means none.
	Description string
	// Default is the value the field takes when a value leaves it out,
	// converted to Type; nil means none.
	Default any
}

// Models are a signature's models, resolved: the names its field types
// may use beside the built-in ones. A nil *Models has none.
type Models struct {
	byName map[string]*ModelType
	// order is the models' names as declared, for errors.
	order []string
	// size is each model's size (ModelType.size), once computed.
	size map[*ModelType]int
}

// typeNames are the names a model may not take: the type names a
// signature's types are written with.
var typeNames = []string{
	"str", "int", "float", "bool", "Any", "None", "NoneType", "list", "List",
	"dict", "Dict", "tuple", "Tuple", "Optional", "Union", "Literal",
}

// baseModelAttributes are the attributes of pydantic's BaseModel (2.14)
// not starting with "model_", its metaclass's mro and register included,
// which a model's field may not shadow.
var baseModelAttributes = []string{
	"construct", "copy", "dict", "from_orm", "json", "mro", "parse_file", "parse_obj",
	"parse_raw", "register", "schema", "schema_json", "update_forward_refs", "validate",
}

// Limits of a model (docs/protocol.md, "Program specs").
const (
	// maxModelNesting is how many levels a model may nest, types and
	// models counted together: pydantic fails on much deeper ones.
	maxModelNesting = 32
	// maxModelFields is how many fields of models a value may hold,
	// counting one element of each list and dict: a model whose fields
	// hold the next twice over has values of exponential size.
	maxModelFields = 10000
)

// maxFilled is how many values one conversion's models' fields may take
// from their defaults, each counted with all it holds (countValues): a
// model's default may fill in models whose defaults fill in more, and a
// value of few bytes would otherwise grow exponentially.
const maxFilled = 100000

// tooManyFilled is the error of a conversion past maxFilled.
const tooManyFilled = "the defaults filled in hold more than 100000 values"

// countValues counts the JSON values of a converted value: one for each
// null, bool, number, string, array and object, nested ones included.
func countValues(v reflect.Value) int {
	v = indirect(v)
	n := 1
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			n += countValues(v.Index(i))
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			n += countValues(it.Value())
		}
	}
	return n
}

// tooLarge is the end of the error of a value too large.
const tooLarge = "a value of it holds more than 10000 fields of models (counting one element of each list and dict)"

// CompileModels validates a signature's models and resolves them: every
// rule of docs/protocol.md ("Program specs") but whether each is used,
// which needs the signature's fields (normalizeSignature checks it). Errors have
// CodeInvalidArgument.
func CompileModels(models []command.Model) (*Models, error) {
	if len(models) == 0 {
		return nil, nil
	}
	m := &Models{byName: make(map[string]*ModelType, len(models))}
	for _, model := range models {
		if _, seen := m.byName[model.Name]; !seen && isIdentifier(model.Name) && !slices.Contains(typeNames, model.Name) {
			m.byName[model.Name] = &ModelType{Name: model.Name, Description: model.Description}
			m.order = append(m.order, model.Name)
		}
	}
	declared := make(map[string]bool, len(models))
	for _, model := range models {
		if err := CheckModelName(model.Name); err != nil {
			return nil, err
		}
		switch {
		case declared[model.Name]:
			return nil, invalid("model %q is declared twice", model.Name)
		case len(model.Fields) == 0:
			return nil, invalid("model %q has no fields", model.Name)
		}
		declared[model.Name] = true
		fields, err := m.modelFields(model)
		if err != nil {
			return nil, err
		}
		m.byName[model.Name].Fields = fields
	}
	walk := map[*ModelType]walkState{}
	var walked []*ModelType // each after the models its fields name
	for _, name := range m.order {
		if path := cycle(m.byName[name], walk, nil, &walked); path != nil {
			return nil, invalid("model %q contains itself (%s)", path[0], strings.Join(path, " -> "))
		}
	}
	nest, size := map[*ModelType]int{}, map[*ModelType]int{}
	for _, name := range m.order {
		model := m.byName[name]
		if model.nest(nest) > maxModelNesting {
			return nil, invalid("model %q nests more than %d levels (types and models counted together)", name, maxModelNesting)
		}
		if model.size(size) > maxModelFields {
			return nil, invalid("model %q: %s", name, tooLarge)
		}
	}
	m.size = size
	// The defaults, each model's after those of the models its fields
	// name, which its defaults' values may leave fields of: a value
	// converted fills those in from converted defaults only.
	for _, model := range walked {
		for i, f := range model.Fields {
			var err error
			if model.Fields[i].Default, err = convertDefault(f.Type, f.Default, fmt.Sprintf("model %q field %q", model.Name, f.Name), f.Type.Convert); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// CheckModelName returns an error when name cannot be a model's: not an
// identifier, or a type's name ("list", "Optional", …). Errors have
// CodeInvalidArgument.
func CheckModelName(name string) error {
	switch {
	case !isIdentifier(name):
		return invalid("model name %q %s", name, notASCIIIdentifier)
	case slices.Contains(typeNames, name):
		return invalid("model name %q is a type's name", name)
	}
	return nil
}

// modelFields checks and parses a model's fields.
func (m *Models) modelFields(model command.Model) ([]ModelField, error) {
	fields := make([]ModelField, len(model.Fields))
	names := make(map[string]bool, len(model.Fields))
	for i, f := range model.Fields {
		switch {
		case NameProblem(f.Name) != "":
			return nil, invalid("model %q field name %q %s", model.Name, f.Name, NameProblem(f.Name))
		case names[f.Name]:
			return nil, invalid("model %q field name %q is used twice", model.Name, f.Name)
		case strings.HasPrefix(f.Name, "_") || strings.HasPrefix(f.Name, "model_"):
			return nil, invalid("model %q field %q: a model's field name may not start with \"_\" or \"model_\"", model.Name, f.Name)
		case slices.Contains(baseModelAttributes, f.Name):
			return nil, invalid("model %q field %q: pydantic's BaseModel has an attribute of that name", model.Name, f.Name)
		case len(f.Constraints) > 0:
			return nil, invalid("model %q field %q: constraints are not supported on a model's fields (pydantic would validate them; DSPy shows a signature field's)", model.Name, f.Name)
		}
		t, err := m.ParseType(f.Type)
		if err != nil {
			return nil, invalid("model %q field %q: %v", model.Name, f.Name, err)
		}
		if bad := t.Media(); bad != "" || t.Kind == History {
			if bad == "" {
				bad = HistoryType
			}
			return nil, invalid("model %q field %q: %s is not a type of a model's field", model.Name, f.Name, bad)
		}
		names[f.Name] = true
		// The default is converted once every model's fields are known
		// (CompileModels), as it may hold a model declared later.
		fields[i] = ModelField{Name: f.Name, Type: t, Description: f.Description}
		if !isNull(f.Default) {
			fields[i].Default = f.Default
		}
	}
	return fields, nil
}

// walkState is a model's state in the walk that finds a model containing
// itself: under way (its walk is on the stack) or done.
type walkState int

const (
	walking walkState = iota + 1
	done
)

// cycle walks model depth first, stack being the models whose walks are
// under way, and returns the path by which a model under way is reached
// again (from it back to it), or nil; it appends each model whose walk
// ends to walked.
func cycle(model *ModelType, walk map[*ModelType]walkState, stack []string, walked *[]*ModelType) []string {
	switch walk[model] {
	case done:
		return nil
	case walking:
		i := slices.Index(stack, model.Name)
		return append(slices.Clone(stack[i:]), model.Name)
	}
	walk[model] = walking
	stack = append(stack, model.Name)
	for _, f := range model.Fields {
		for _, inner := range f.Type.models() {
			if path := cycle(inner, walk, stack, walked); path != nil {
				return path
			}
		}
	}
	walk[model] = done
	*walked = append(*walked, model)
	return nil
}

// nest is how many levels a value of the model nests, types and models
// counted together, memoized in memo.
func (model *ModelType) nest(memo map[*ModelType]int) int {
	if n, ok := memo[model]; ok {
		return n
	}
	deepest := 0
	for _, f := range model.Fields {
		deepest = max(deepest, f.Type.nest(memo))
	}
	memo[model] = 1 + deepest
	return 1 + deepest
}

// nest is how many levels a value of t nests: each list, dict, tuple,
// Optional, Union and model on the way down.
func (t Type) nest(memo map[*ModelType]int) int {
	if t.Kind == Object {
		return t.Model.nest(memo)
	}
	parts := t.parts()
	if len(parts) == 0 {
		return 0
	}
	deepest := 0
	for _, part := range parts {
		deepest = max(deepest, part.nest(memo))
	}
	return 1 + deepest
}

// size is how many fields of models a value of the model holds, counting
// one element of each list and dict, memoized in memo; it stops counting
// past maxModelFields.
func (model *ModelType) size(memo map[*ModelType]int) int {
	if n, ok := memo[model]; ok {
		return n
	}
	n := len(model.Fields)
	for _, f := range model.Fields {
		n = min(n+f.Type.size(memo), maxModelFields+1)
	}
	memo[model] = n
	return n
}

// size is how many fields of models a value of t holds, counting one
// element of each list and dict and every member of a fixed tuple.
func (t Type) size(memo map[*ModelType]int) int {
	if t.Kind == Object {
		return t.Model.size(memo)
	}
	n := 0
	if t.Elem != nil {
		n = t.Elem.size(memo)
	}
	for _, m := range t.Members {
		n = min(n+m.size(memo), maxModelFields+1)
	}
	return n
}

// checkSize returns an error when a value of t, the type of the
// signature's field name on side ("input", "output"), would hold more
// fields of models than a value may.
func (m *Models) checkSize(t Type, side, name string) error {
	if m != nil && t.size(m.size) > maxModelFields {
		return invalid("%s field %q: %s", side, name, tooLarge)
	}
	return nil
}

// models returns the models t names, outside the models themselves, in
// order.
func (t Type) models() []*ModelType {
	if t.Kind == Object {
		return []*ModelType{t.Model}
	}
	var out []*ModelType
	for _, part := range t.parts() {
		out = append(out, part.models()...)
	}
	return out
}

// HoldsModel reports whether t is or holds a model (an Object).
func (t Type) HoldsModel() bool {
	// not through parts, which allocates: the dummy LM asks for each list
	return t.Kind == Object || t.Elem != nil && t.Elem.HoldsModel() || slices.ContainsFunc(t.Members, Type.HoldsModel)
}

// parts are t's element, key and members.
func (t Type) parts() []Type {
	var parts []Type
	if t.Key != nil {
		parts = append(parts, *t.Key)
	}
	if t.Elem != nil {
		parts = append(parts, *t.Elem)
	}
	return append(parts, t.Members...)
}

// checkUsed returns an error naming the first declared model that no
// field of types' uses, directly or through another model.
func (m *Models) checkUsed(types ...[]Type) error {
	if m == nil {
		return nil
	}
	used := map[string]bool{}
	var use func(t Type)
	use = func(t Type) {
		for _, model := range t.models() {
			if !used[model.Name] {
				used[model.Name] = true
				for _, f := range model.Fields {
					use(f.Type)
				}
			}
		}
	}
	for _, side := range types {
		for _, t := range side {
			use(t)
		}
	}
	for _, name := range m.order {
		if !used[name] {
			return invalid("model %q is not used by any field", name)
		}
	}
	return nil
}

// ParseType is the package's ParseType, where a name may also be one of
// m's models.
func (m *Models) ParseType(s string) (Type, error) {
	return parseType(s, m)
}

// Normalized returns the models as a normalized spec holds them: sorted
// by name, each field's type in canonical form and its default a copy;
// nil when there are none.
func (m *Models) Normalized() []command.Model {
	if m == nil {
		return nil
	}
	out := make([]command.Model, 0, len(m.order))
	for _, name := range m.order {
		model := m.byName[name]
		fields := make([]command.Field, len(model.Fields))
		for i, f := range model.Fields {
			fields[i] = command.Field{Name: f.Name, Type: f.Type.String(), Description: f.Description}
			if f.Default != nil {
				fields[i].Default, _ = f.Type.Convert(f.Default, "") // converted already: a copy
			}
		}
		out = append(out, command.Model{Name: name, Description: model.Description, Fields: fields})
	}
	slices.SortFunc(out, func(a, b command.Model) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// known is the end of an unknown type's error: the models' names.
func (m *Models) known() string {
	if m == nil {
		return ""
	}
	return ", and the signature's models: " + strings.Join(m.order, ", ")
}

// lookup returns the model named name, or nil.
func (m *Models) lookup(name string) *ModelType {
	if m == nil {
		return nil
	}
	return m.byName[name]
}

// convertModel converts an object (or a Go struct, as its JSON encoding)
// to t's model, as pydantic's model_validate does: each field in order,
// one left out its Default (converted: a copy) when it has one, else null
// when it is Optional, else an error; other keys dropped. The values the
// conversion's fields take from their defaults, each counted with all it
// holds, may number at most maxFilled.
func (t Type) convertModel(v reflect.Value, path string, c conv) (reflect.Value, error) {
	v, err := structAsJSON(v)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("%s: expected %s: %v", path, t, err)
	}
	if v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.String {
		return reflect.Value{}, fmt.Errorf("%s: expected %s, got %s", path, t, describe(v))
	}
	keyType := v.Type().Key()
	out := make(map[string]any, len(t.Model.Fields))
	for _, f := range t.Model.Fields {
		key := reflect.ValueOf(f.Name)
		if keyType != key.Type() { // a named string type
			key = key.Convert(keyType)
		}
		value, filled := v.MapIndex(key), false
		if !value.IsValid() && f.Default != nil {
			// Converted below: a copy. Converted already, as every default
			// a value may reach is before it (CompileModels), so it fills
			// in nothing more and is counted once.
			value, filled = reflect.ValueOf(f.Default), true
		}
		if !value.IsValid() {
			if f.Type.Kind != Optional {
				return reflect.Value{}, fmt.Errorf("%s: expected %s, got an object without %q", path, t, f.Name)
			}
			out[f.Name] = nil
			continue
		}
		conv, err := f.Type.convert(value, path+"."+f.Name, c)
		if err != nil {
			return reflect.Value{}, err
		}
		if filled {
			if *c.filled += countValues(conv); *c.filled > maxFilled {
				return reflect.Value{}, fmt.Errorf("%s.%s: %s", path, f.Name, tooManyFilled)
			}
		}
		out[f.Name] = conv.Interface()
	}
	return reflect.ValueOf(out), nil
}
