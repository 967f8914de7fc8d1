// Package dspgo runs DSPy-style programs from Go on any backend.
//
// A program is a signature, such as
// "question, context: list[str] -> answer, confidence: float", with
// optional instructions; executing it on inputs gives typed outputs. A
// Client runs programs on an adapter.Adapter: the in-process mock, one
// Python worker process (port), a pool of workers, or your own.
//
//	a := mock.New(mock.Options{})
//	defer a.Close(ctx)
//	c := dspgo.NewClient(a)
//	p, _ := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
//	out, _ := c.Execute(ctx, p.ID, map[string]any{"question": "What is Go?"})
//
// The client keeps every program's spec, and each execution carries the
// spec's hash (and the spec itself when a worker does not know it), so any
// worker, including one started after a crash, can run any program.
package dspgo

import (
	"errors"

	"github.com/dspgo/dspgo/internal/program"
)

// Field is one input or output of a signature: a Name (a Python
// identifier), a Type as written in a DSPy signature ("str", "int",
// "float", "bool", "Any", "list[T]", "dict[str, T]", "dict[int, T]",
// "tuple[A, B]", "tuple[T, ...]", "Optional[T]" or "T | None",
// "Union[A, B]" or "A | B", "Literal['a', 'b']"; empty means "str"; the
// spellings and canonical forms are in docs/protocol.md) and a Description
// for the language model (empty means none).
type Field = program.Field

// Signature is a program's typed inputs and outputs. Build one with
// ParseSignature, or as a struct to give fields descriptions.
type Signature = program.Signature

// Demo is one few-shot example of a program (ProgramSpec.Demos): Inputs
// and Outputs hold a value for every input and declared output field, by
// name, each converting to its field's type as an execution's inputs do;
// Reasoning is a KindChainOfThought demo's reasoning (empty means none,
// and other kinds must leave it empty).
type Demo = program.Demo

// Program kinds for ProgramSpec.Kind.
const (
	// KindPredict maps inputs straight to outputs (DSPy's Predict).
	KindPredict = program.KindPredict
	// KindChainOfThought produces a "reasoning" output before the declared
	// ones (DSPy's ChainOfThought).
	KindChainOfThought = program.KindChainOfThought
)

// ParseSignature parses DSPy's string form of a signature:
// comma-separated input fields, "->", comma-separated output fields, each
// with an optional ": type" (default str). A bad signature (no "->", an
// empty side, a duplicate or invalid name, an unknown type) is an error
// with adapter.CodeInvalidArgument that says which part is wrong.
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

// Errors of the client. They arrive wrapped in an *adapter.Error that
// gives their code; test with errors.Is.
var (
	// ErrSessionClosed is the cause of every call on a Session after its
	// Close. Its code is adapter.CodeFailedPrecondition.
	ErrSessionClosed = errors.New("dspgo: session is closed")
)
