package dspgo

import (
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// Field is one input or output of a signature, the command set's
// command.Field:
//
//	type Field struct {
//		Name        string // a Python identifier, unique within the signature
//		Type        string // as written in a DSPy signature; empty means "str"
//		Description string // for the language model; empty means none
//		Default     any    // the value when left out; nil means none
//		Constraints []Constraint // pydantic's, shown to the LM; nil means none
//	}
//
// Type is "str", "int", "float", "bool", "Any", "list[T]", "dict[str, T]",
// "dict[int, T]", "tuple[A, B]", "tuple[T, ...]", "Optional[T]" or
// "T | None", "Union[A, B]" or "A | B", "Literal['a', 'b']", or the name
// of one of the signature's Models; the spellings and canonical forms
// are in docs/protocol.md.
type Field = command.Field

// Constraint is one of pydantic's constraints on a signature's field,
// which DSPy shows the language model (Field.Constraints), the command
// set's command.Constraint:
//
//	type Constraint struct {
//		Name  string // "gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "allow_inf_nan"
//		Value any    // a number (an int, or a float), or a bool for allow_inf_nan
//	}
//
// dspy.OutputField(ge=0, le=1) is
// Field{Name: "confidence", Type: "float", Constraints: []Constraint{{"ge", 0}, {"le", 1}}}.
type Constraint = command.Constraint

// Signature is a program's typed inputs and outputs, the command set's
// command.Signature:
//
//	type Signature struct {
//		Inputs  []Field // any number ("-> joke" has none)
//		Outputs []Field // at least one; names distinct from the inputs'
//		Models  []Model // the pydantic models the fields' types may name
//	}
//
// Build one with ParseSignature, or as a struct literal to give fields
// descriptions:
//
//	sig := dspgo.Signature{
//		Inputs:  []dspgo.Field{{Name: "question", Description: "a question about Go"}},
//		Outputs: []dspgo.Field{{Name: "answer"}, {Name: "confidence", Type: "float"}},
//	}
//
// Its String method gives DSPy's string form (which holds no
// descriptions, Models or defaults).
type Signature = command.Signature

// Model is a pydantic model that a signature's field types may name,
// DSPy's structured type, the command set's command.Model:
//
//	type Model struct {
//		Name        string  // the class's name: "Answer"
//		Description string  // its docstring; empty means none
//		Fields      []Field // at least one; one with a Default, or Optional, may be left out of a value
//	}
//
// A field "answer" of type "Answer" (or "list[Answer]", "Optional[Answer]")
// is then what DSPy's "answer: Answer = dspy.OutputField()" is: the
// language model is given the model's JSON schema, and its value is an
// object of the model's fields (a map[string]any in Go). NewTyped derives
// models from nested struct types. A model nests at most 32 levels and a
// value holds at most 10,000 fields of models; the rules are in
// docs/protocol.md ("Program specs"):
//
//	sig := dspgo.Signature{
//		Inputs:  []dspgo.Field{{Name: "text"}},
//		Outputs: []dspgo.Field{{Name: "people", Type: "list[Person]"}},
//		Models: []dspgo.Model{{Name: "Person", Fields: []dspgo.Field{
//			{Name: "name"}, {Name: "age", Type: "Optional[int]", Description: "in years"}}}},
//	}
type Model = command.Model

// ParseSignature parses DSPy's string form of a signature:
// comma-separated input fields, "->", comma-separated output fields, each
// with an optional ": type" (default str). The inputs may be none, as in
// DSPy's "-> joke". A bad signature (no "->", no outputs, an empty field,
// a duplicate or invalid name, an unknown type) is an error with
// adapter.CodeInvalidArgument that says which part is wrong.
func ParseSignature(s string) (Signature, error) {
	return program.ParseSignature(s)
}

// MustParseSignature is ParseSignature for signatures known to be valid;
// it panics on error.
func MustParseSignature(s string) Signature {
	sig, err := ParseSignature(s)
	if err != nil {
		panic(err)
	}
	return sig
}
