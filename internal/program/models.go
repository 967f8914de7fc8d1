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
	Name        string
	Type        Type
	Description string
}

// Models are a signature's models, resolved: the names its field types
// may use beside the built-in ones. A nil *Models has none.
type Models struct {
	byName map[string]*ModelType
	// order is the models' names as declared, for errors.
	order []string
}

// typeNames are the names a model may not take: the type names a
// signature's types are written with.
var typeNames = []string{
	"str", "int", "float", "bool", "Any", "None", "NoneType", "list", "List",
	"dict", "Dict", "tuple", "Tuple", "Optional", "Union", "Literal",
}

// baseModelAttributes are the attributes of pydantic's BaseModel (2.14)
// not starting with "model_", which a model's field may not shadow.
var baseModelAttributes = []string{
	"construct", "copy", "dict", "from_orm", "json", "parse_file", "parse_obj",
	"parse_raw", "schema", "schema_json", "update_forward_refs", "validate",
}

// CompileModels validates a signature's models and resolves them: every
// rule of docs/protocol.md ("Program specs") but whether each is used,
// which needs the signature's fields (Models.CheckUsed). Errors have
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
		switch {
		case !isIdentifier(model.Name):
			return nil, invalid("model name %q is not a valid identifier (letters, digits and _, not starting with a digit)", model.Name)
		case slices.Contains(typeNames, model.Name):
			return nil, invalid("model name %q is a type's name", model.Name)
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
	for _, name := range m.order {
		if path := m.cycle(m.byName[name], []string{name}, map[string]bool{}); path != nil {
			return nil, invalid("model %q contains itself (%s)", name, strings.Join(path, " -> "))
		}
	}
	return m, nil
}

// modelFields checks and parses a model's fields.
func (m *Models) modelFields(model command.Model) ([]ModelField, error) {
	fields := make([]ModelField, len(model.Fields))
	for i, f := range model.Fields {
		switch {
		case !isIdentifier(f.Name):
			return nil, invalid("model %q field name %q is not a valid identifier (letters, digits and _, not starting with a digit)", model.Name, f.Name)
		case slices.ContainsFunc(model.Fields[:i], func(g command.Field) bool { return g.Name == f.Name }):
			return nil, invalid("model %q field name %q is used twice", model.Name, f.Name)
		case strings.HasPrefix(f.Name, "_") || strings.HasPrefix(f.Name, "model_"):
			return nil, invalid("model %q field %q: a model's field name may not start with \"_\" or \"model_\"", model.Name, f.Name)
		case slices.Contains(baseModelAttributes, f.Name):
			return nil, invalid("model %q field %q: pydantic's BaseModel has an attribute of that name", model.Name, f.Name)
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
		fields[i] = ModelField{Name: f.Name, Type: t, Description: f.Description}
	}
	return fields, nil
}

// cycle returns the path by which model, at the end of path, contains
// path[0] again, or nil; seen holds the models already searched from
// path[0].
func (m *Models) cycle(model *ModelType, path []string, seen map[string]bool) []string {
	for _, f := range model.Fields {
		for _, inner := range f.Type.models() {
			next := append(slices.Clip(path), inner.Name)
			if inner.Name == path[0] {
				return next
			}
			if seen[inner.Name] {
				continue
			}
			seen[inner.Name] = true
			if found := m.cycle(inner, next, seen); found != nil {
				return found
			}
		}
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

// CheckUsed returns an error naming the first declared model that no
// field of fields uses, directly or through another model.
func (m *Models) CheckUsed(fields ...[]command.Field) error {
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
	for _, side := range fields {
		for _, f := range side {
			t, _ := m.ParseType(f.Type) // parsed before
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
// by name, each field's type in canonical form; nil when there are none.
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
// an Optional one left out null, any other left out an error, other keys
// dropped.
func (t Type) convertModel(v reflect.Value, path string, exact bool) (reflect.Value, error) {
	v, err := structAsJSON(v)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("%s: expected %s: %v", path, t, err)
	}
	if v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.String {
		return reflect.Value{}, fmt.Errorf("%s: expected %s, got %s", path, t, describe(v))
	}
	out := make(map[string]any, len(t.Model.Fields))
	for _, f := range t.Model.Fields {
		value := v.MapIndex(reflect.ValueOf(f.Name).Convert(v.Type().Key()))
		if !value.IsValid() {
			if f.Type.Kind != Optional {
				return reflect.Value{}, fmt.Errorf("%s: expected %s, got an object without %q", path, t, f.Name)
			}
			out[f.Name] = nil
			continue
		}
		conv, err := f.Type.convert(value, path+"."+f.Name, exact)
		if err != nil {
			return reflect.Value{}, err
		}
		out[f.Name] = conv.Interface()
	}
	return reflect.ValueOf(out), nil
}
