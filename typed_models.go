package dspgo

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// modelSet is the pydantic models a typed program's struct fields name:
// each nested struct type becomes a model named as the Go type, its
// fields derived as In's and Out's are.
type modelSet struct {
	// list holds the models, each after those its fields name.
	list []command.Model
	// types are the Go types of list's models, by name.
	types map[string]reflect.Type
	// deriving are the struct types whose fields are being derived,
	// outermost first: a struct among them contains itself.
	deriving []reflect.Type
}

// nested returns the type of a field of struct type t, a model, and adds
// it (and the models it names) to ms.
func (ms *modelSet) nested(t reflect.Type, s side) (program.Type, error) {
	switch {
	case t.Name() == "":
		return program.Type{}, fmt.Errorf("anonymous struct %s has no name for its pydantic model: declare it as a named type", t)
	case isText(t, inputSide) != isText(t, outputSide):
		return program.Type{}, fmt.Errorf("struct %s has MarshalText or UnmarshalText but not both: give it both to travel as a str, or neither to be a pydantic model", t)
	case slices.Contains(ms.deriving, t):
		return program.Type{}, fmt.Errorf("struct %s contains itself: a pydantic model may not, in dspgo", t)
	case ms.types[t.Name()] == t: // derived once already: its models are in ms
		return modelType(t.Name()), nil
	}
	if err := program.CheckModelName(t.Name()); err != nil {
		var aerr *adapter.Error
		errors.As(err, &aerr)
		return program.Type{}, fmt.Errorf("struct %s cannot name a pydantic model: %s", t, aerr.Message)
	}
	c, err := deriveCodec(t, s, append(slices.Clip(ms.deriving), t))
	if err != nil {
		return program.Type{}, err
	}
	if len(c.fields) == 0 {
		return program.Type{}, fmt.Errorf("struct %s has no exported field for its pydantic model", t)
	}
	if err := ms.merge(&c.models); err != nil {
		return program.Type{}, err
	}
	model := command.Model{Name: t.Name(), Fields: make([]command.Field, len(c.fields))}
	for i, f := range c.fields {
		model.Fields[i] = f.field
	}
	if err := ms.add(t, model); err != nil {
		return program.Type{}, err
	}
	return modelType(model.Name), nil
}

// modelType is the type of a field whose type is the model name.
func modelType(name string) program.Type {
	return program.Type{Kind: program.Object, Model: &program.ModelType{Name: name}}
}

// add adds the model of struct type t, unless ms has it.
func (ms *modelSet) add(t reflect.Type, model command.Model) error {
	prev, ok := ms.types[model.Name]
	switch {
	case !ok:
		if ms.types == nil {
			ms.types = map[string]reflect.Type{}
		}
		ms.types[model.Name] = t
		ms.list = append(ms.list, model)
		return nil
	case prev != t:
		return fmt.Errorf("struct types %s and %s are both named %s: a signature's models need distinct names", prev, t, model.Name)
	}
	i := slices.IndexFunc(ms.list, func(m command.Model) bool { return m.Name == model.Name })
	if !reflect.DeepEqual(ms.list[i], model) {
		return fmt.Errorf("struct %s is a different pydantic model as an input and as an output (its fields' text types or input and output tags differ)", t)
	}
	return nil
}

// merge adds other's models to ms.
func (ms *modelSet) merge(other *modelSet) error {
	for _, model := range other.list {
		if err := ms.add(other.types[model.Name], model); err != nil {
			return err
		}
	}
	return nil
}

// clone returns a copy of ms's models that merge can grow.
func (ms *modelSet) clone() modelSet {
	out := modelSet{list: slices.Clone(ms.list), types: make(map[string]reflect.Type, len(ms.types))}
	for name, t := range ms.types {
		out.types[name] = t
	}
	return out
}

// rewriteModel returns a nested struct input as its model's object: each
// field by its signature name, as encode gives a field (rewritten where
// it must be).
func rewriteModel(v reflect.Value) (any, error) {
	c, err := codecOf(v.Type(), inputSide)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(c.fields))
	for _, f := range c.fields {
		fv := v.FieldByIndex(f.index)
		switch {
		case f.omitNil && fv.IsNil():
		case !f.rewrite: // converts as it is, as a top-level field's value (a time.Time of a date)
			out[f.field.Name] = fv.Interface()
		default:
			if out[f.field.Name], err = rewrite(fv); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// decodeModel sets dst, a nested struct, from its model's object.
func decodeModel(dst reflect.Value, object map[string]any, path string) *decodeError {
	c, err := codecOf(dst.Type(), outputSide)
	if err != nil {
		return &decodeError{path, err.Error()}
	}
	for _, f := range c.fields {
		if err := decodeValue(dst.FieldByIndex(f.index), object[f.field.Name], path+"."+f.field.Name); err != nil {
			return err
		}
	}
	return nil
}
