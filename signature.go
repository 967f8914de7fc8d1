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
//	}
//
// Type is "str", "int", "float", "bool", "Any", "list[T]", "dict[str, T]",
// "dict[int, T]", "tuple[A, B]", "tuple[T, ...]", "Optional[T]" or
// "T | None", "Union[A, B]" or "A | B", or "Literal['a', 'b']"; the
// spellings and canonical forms are in docs/protocol.md.
type Field = command.Field

// Signature is a program's typed inputs and outputs, the command set's
// command.Signature:
//
//	type Signature struct {
//		Inputs  []Field // at least one
//		Outputs []Field // at least one; names distinct from the inputs'
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
// Its String method gives DSPy's string form.
type Signature = command.Signature

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
