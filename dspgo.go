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

import "errors"

// Errors of the client. They arrive wrapped in an *adapter.Error that
// gives their code; test with errors.Is.
var (
	// ErrSessionClosed is the cause of every call on a Session after its
	// Close, and of a CreateProgram or Compile of the session that Close
	// overtook (Session.Close). Its code is adapter.CodeFailedPrecondition.
	ErrSessionClosed = errors.New("dspgo: session is closed")
)
