package adapter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Code classifies an error. Its numbers are stable: they never change
// meaning, and new codes are only appended. On the wire a Code travels as
// its String form ("not_found"), never as a number.
type Code int

// The error codes. CodeOK (zero) means no error.
const (
	// CodeOK means success; CodeOf(nil) returns it.
	CodeOK Code = 0
	// CodeUnknown is an error that carries no better classification.
	CodeUnknown Code = 1
	// CodeInvalidArgument is a bad request: a malformed signature, a
	// missing or unknown input, an argument of the wrong type.
	CodeInvalidArgument Code = 2
	// CodeNotFound is a reference to something that does not exist, such
	// as an unknown program id.
	CodeNotFound Code = 3
	// CodeAlreadyExists is an attempt to create something that exists.
	CodeAlreadyExists Code = 4
	// CodeUnimplemented is a command or feature the backend does not have.
	CodeUnimplemented Code = 5
	// CodeUnavailable is a transient failure: a worker crashed or is not
	// running. Retrying may succeed.
	CodeUnavailable Code = 6
	// CodeDeadlineExceeded is a call whose deadline passed first.
	CodeDeadlineExceeded Code = 7
	// CodeCanceled is a call whose context was cancelled.
	CodeCanceled Code = 8
	// CodeResourceExhausted is a limit reached: a full queue, a frame over
	// the size limit, a rate limit of the language model.
	CodeResourceExhausted Code = 9
	// CodeFailedPrecondition is a call the system is not in a state to run,
	// such as any call after Close.
	CodeFailedPrecondition Code = 10
	// CodeInternal is a broken invariant or an unexpected failure inside a
	// backend, such as an exception in a worker's handler.
	CodeInternal Code = 11
)

var codeNames = [...]string{
	CodeOK:                 "ok",
	CodeUnknown:            "unknown",
	CodeInvalidArgument:    "invalid_argument",
	CodeNotFound:           "not_found",
	CodeAlreadyExists:      "already_exists",
	CodeUnimplemented:      "unimplemented",
	CodeUnavailable:        "unavailable",
	CodeDeadlineExceeded:   "deadline_exceeded",
	CodeCanceled:           "canceled",
	CodeResourceExhausted:  "resource_exhausted",
	CodeFailedPrecondition: "failed_precondition",
	CodeInternal:           "internal",
}

// Codes returns every defined code in numeric order, CodeOK first.
func Codes() []Code {
	codes := make([]Code, len(codeNames))
	for i := range codeNames {
		codes[i] = Code(i)
	}
	return codes
}

// String returns the code's wire name, such as "not_found". A number
// outside the defined codes prints as "Code(42)".
func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "Code(" + strconv.Itoa(int(c)) + ")"
}

// ParseCode returns the code whose wire name is s. The second result is
// false, and the code CodeUnknown, when s names no code.
func ParseCode(s string) (Code, bool) {
	for i, name := range codeNames {
		if name == s {
			return Code(i), true
		}
	}
	return CodeUnknown, false
}

// MarshalText encodes the code as its wire name.
func (c Code) MarshalText() ([]byte, error) {
	if c < 0 || int(c) >= len(codeNames) {
		return nil, fmt.Errorf("adapter: cannot encode undefined %s", c)
	}
	return []byte(codeNames[c]), nil
}

// UnmarshalText decodes a wire name. A name this version does not know
// decodes as CodeUnknown rather than failing, so that a newer worker's
// error still reaches the caller.
func (c *Code) UnmarshalText(text []byte) error {
	*c, _ = ParseCode(string(text))
	return nil
}

// Sentinel errors. Each code sentinel matches, with errors.Is, every error
// whose CodeOf is that code; ErrClosed matches only errors that wrap it.
var (
	// ErrClosed is returned by every call on an adapter after Close. Its
	// code is CodeFailedPrecondition.
	ErrClosed error = &sentinel{code: CodeFailedPrecondition, msg: "adapter is closed", exact: true}

	ErrUnknown            error = &sentinel{code: CodeUnknown, msg: "unknown error"}
	ErrInvalidArgument    error = &sentinel{code: CodeInvalidArgument, msg: "invalid argument"}
	ErrNotFound           error = &sentinel{code: CodeNotFound, msg: "not found"}
	ErrAlreadyExists      error = &sentinel{code: CodeAlreadyExists, msg: "already exists"}
	ErrUnimplemented      error = &sentinel{code: CodeUnimplemented, msg: "unimplemented"}
	ErrUnavailable        error = &sentinel{code: CodeUnavailable, msg: "unavailable"}
	ErrDeadlineExceeded   error = &sentinel{code: CodeDeadlineExceeded, msg: "deadline exceeded"}
	ErrCanceled           error = &sentinel{code: CodeCanceled, msg: "canceled"}
	ErrResourceExhausted  error = &sentinel{code: CodeResourceExhausted, msg: "resource exhausted"}
	ErrFailedPrecondition error = &sentinel{code: CodeFailedPrecondition, msg: "failed precondition"}
	ErrInternal           error = &sentinel{code: CodeInternal, msg: "internal error"}
)

// sentinel is the type of the package's sentinel errors. A sentinel that is
// not exact matches every *Error of its code.
type sentinel struct {
	code  Code
	msg   string
	exact bool
}

func (s *sentinel) Error() string { return s.msg }

// Error is the one error type every adapter returns. Drivers wrap once: an
// error that is already an *Error keeps its code and gains only the Adapter
// and Op it lacked (see Wrap).
//
// errors.Is(err, ErrNotFound) holds for every *Error with CodeNotFound, and
// errors.Is(err, context.Canceled) for every *Error with CodeCanceled (and
// likewise for deadlines), so callers can test either way.
type Error struct {
	// Code classifies the error. CodeOK (zero) means "derive it from Err"
	// (see CodeOf); an Error with neither reports CodeUnknown.
	Code Code

	// Op is the command or operation that failed, such as
	// "execute_program" or "start". Empty when not known.
	Op string

	// Adapter is the name of the adapter that returned the error. Empty
	// when not known.
	Adapter string

	// Message is the human-readable description. Empty means the text of
	// Remote or Err stands alone.
	Message string

	// Remote is the error a worker reported, with its exception type and
	// traceback. Nil when the error arose on the Go side.
	Remote *RemoteError

	// Err is the underlying cause. Nil when there is none.
	Err error
}

// Errorf returns an *Error with the code and a message formatted as by
// fmt.Sprintf. Use Wrap, not %w, to keep a cause.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns err as an *Error of the named adapter and operation. A nil
// err gives nil. When err is already an *Error, Wrap returns a copy with its
// empty Adapter and Op filled in, so an error is never wrapped twice;
// otherwise the new Error's code is CodeOf(err).
func Wrap(err error, adapterName, op string) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		c := *e
		if c.Adapter == "" {
			c.Adapter = adapterName
		}
		if c.Op == "" {
			c.Op = op
		}
		return &c
	}
	return &Error{Code: CodeOf(err), Adapter: adapterName, Op: op, Err: err}
}

// Error formats the error as "adapter: op: message: cause (code)", leaving
// out the parts that are empty.
func (e *Error) Error() string {
	var b strings.Builder
	for _, part := range []string{e.Adapter, e.Op} {
		if part != "" {
			b.WriteString(part)
			b.WriteString(": ")
		}
	}
	text := e.Message
	if text == "" && e.Remote != nil {
		text = e.Remote.Error()
	}
	if e.Err != nil {
		if text != "" {
			text += ": "
		}
		text += e.Err.Error()
	}
	code := e.code()
	if text == "" {
		text = code.String()
	} else {
		text += " (" + code.String() + ")"
	}
	b.WriteString(text)
	return b.String()
}

// Unwrap returns the cause, so that errors.Is and errors.As see through the
// Error to Err.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the code sentinel of e's code (ErrNotFound
// for CodeNotFound, …) or the context error of e's code.
func (e *Error) Is(target error) bool {
	code := e.code()
	switch target {
	case context.Canceled:
		return code == CodeCanceled
	case context.DeadlineExceeded:
		return code == CodeDeadlineExceeded
	}
	s, ok := target.(*sentinel)
	return ok && !s.exact && s.code == code
}

func (e *Error) code() Code {
	if e.Code != CodeOK {
		return e.Code
	}
	if e.Err == nil {
		return CodeUnknown
	}
	return CodeOf(e.Err)
}

// RemoteError is an error reported by a worker in a failed response.
type RemoteError struct {
	// Code is the code the worker sent. A name this version does not know
	// is CodeUnknown.
	Code Code

	// Message is the worker's description of the error.
	Message string

	// Type is the worker-side exception type, such as "ValueError". Empty
	// when the worker did not say.
	Type string

	// Traceback is the worker-side traceback. Empty when the worker did not
	// send one.
	Traceback string
}

// Error returns "Type: Message", or the Message alone when Type is empty.
func (r *RemoteError) Error() string {
	if r.Type == "" {
		return r.Message
	}
	return r.Type + ": " + r.Message
}

// CodeOf returns the code of err: CodeOK for nil; the code of the first
// *Error in err's chain (or of its cause, when that Error's Code is
// CodeOK); the code of a sentinel of this package; CodeCanceled for
// context.Canceled; CodeDeadlineExceeded for context.DeadlineExceeded and
// os.ErrDeadlineExceeded; CodeUnknown for anything else.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.code()
	}
	if s, ok := errors.AsType[*sentinel](err); ok {
		return s.code
	}
	switch {
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return CodeDeadlineExceeded
	}
	return CodeUnknown
}
