// Package protocol is dspgo's wire format: the one codec every host, worker
// and test uses.
//
// A frame is a 4-byte big-endian unsigned length N followed by N bytes of
// one UTF-8 JSON object. The host sends Requests and the worker answers each
// with exactly one final Response of the same id. Frames over the size limit
// (DefaultMaxFrameBytes unless configured) are refused on both sides without
// being allocated. docs/protocol.md is the full contract.
//
// The format runs both ways: a frame's "kind" marks the messages beyond
// requests and final responses (kinds.go). A streamed request's worker
// sends KindChunk frames before the final response, within the credit the
// host grants with KindCredit frames; a worker calls the host's tools
// with KindCall frames of its own id space, answered by KindResult
// frames, and withdraws a call with KindCancel. DecodeWorkerMessage and
// DecodeHostMessage read every kind of one direction; a kind no side
// knows is refused with ErrUnsupportedKind, its id kept so that the
// refusal can be answered.
//
// This package depends on the standard library only.
package protocol

import (
	"context"
	"errors"
)

// Version is the protocol version a worker reports in its init reply. A
// host refuses a worker that reports another.
const Version = 1

// DefaultMaxFrameBytes is the largest frame body, in bytes, that readers and
// writers accept when given a limit of zero: 16 MiB.
const DefaultMaxFrameBytes = 16 << 20

// HeaderSize is the size in bytes of a frame's length header.
const HeaderSize = 4

// MaxID is the largest request id: 2^53-1, so that every JSON
// implementation reads ids exactly.
const MaxID = 1<<53 - 1

// MaxDepth is how deeply arrays and objects may nest in args and result:
// well within what every JSON implementation parses (Python's recursive
// decoder gives up near 1,000 levels), so that a frame the host sends can
// always be read, and so always answered.
const MaxDepth = 128

// InitID is the id of the init ping a host sends before any other request.
const InitID = 0

// Errors. Those a reader returns wrap one of them with details; test with
// errors.Is. After ErrTruncatedHeader, ErrTruncatedBody or ErrFrameTooLarge
// the stream is out of step and must be abandoned; after the others the next
// frame can be read (see Recoverable).
var (
	// ErrTruncatedHeader: the stream ended inside a frame's length header.
	ErrTruncatedHeader = errors.New("protocol: truncated frame header")
	// ErrTruncatedBody: the stream ended inside a frame's body.
	ErrTruncatedBody = errors.New("protocol: truncated frame body")
	// ErrFrameTooLarge: a frame's length exceeds the limit.
	ErrFrameTooLarge = errors.New("protocol: frame too large")
	// ErrInvalidUTF8: a frame's body is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("protocol: frame is not valid UTF-8")
	// ErrInvalidJSON: a frame's body is not one JSON value.
	ErrInvalidJSON = errors.New("protocol: frame is not valid JSON")
	// ErrNotObject: a frame's body is JSON but not an object.
	ErrNotObject = errors.New("protocol: frame is not a JSON object")
	// ErrMissingID: a frame's object has no "id".
	ErrMissingID = errors.New("protocol: frame has no id")
	// ErrInvalidID: a frame's "id" is not an integer from 0 to MaxID.
	ErrInvalidID = errors.New("protocol: frame id is not an integer from 0 to 2^53-1")
	// ErrInvalidField: a field other than "id" has the wrong type or
	// value; the decoded id is valid and the message can be answered.
	ErrInvalidField = errors.New("protocol: invalid field")
	// ErrUnsupportedKind: the frame's "kind" is one this version does not
	// handle; the decoded id is valid and the message can be answered.
	ErrUnsupportedKind = errors.New("protocol: unsupported message kind")
)

// kinds maps each decoding error to its name in testdata/vectors.json and
// in the Python worker.
var kinds = []struct {
	err  error
	name string
}{
	{ErrTruncatedHeader, "truncated_header"},
	{ErrTruncatedBody, "truncated_body"},
	{ErrFrameTooLarge, "frame_too_large"},
	{ErrInvalidUTF8, "invalid_utf8"},
	{ErrInvalidJSON, "invalid_json"},
	{ErrNotObject, "not_object"},
	{ErrMissingID, "missing_id"},
	{ErrInvalidID, "invalid_id"},
	{ErrInvalidField, "invalid_field"},
	{ErrUnsupportedKind, "unsupported_kind"},
}

// ErrorKind returns the shared name of a decoding error, such as
// "truncated_body", the same name the Python worker logs. It returns "" for
// an error that is not one of this package's.
func ErrorKind(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return ""
}

// Recoverable reports whether a stream can go on after err: true for errors
// confined to one frame's content, false for errors that leave the reader
// out of step with the frame boundaries (and for I/O errors).
func Recoverable(err error) bool {
	switch ErrorKind(err) {
	case "invalid_utf8", "invalid_json", "not_object", "missing_id", "invalid_id", "invalid_field", "unsupported_kind":
		return true
	}
	return false
}

// Answerable reports whether the message that failed to decode with err
// can still be answered: its id, returned with the error, was read. That
// is so for a bad field (ErrInvalidField), an unknown kind
// (ErrUnsupportedKind), and a body whose bytes are not all UTF-8 but whose
// id can be read (ErrInvalidUTF8, when the bad bytes are inside strings).
// A worker answers such a request with invalid_argument (unimplemented for
// a kind), so that no caller waits for an answer that never comes.
func Answerable(err error) bool {
	if errors.Is(err, ErrInvalidField) || errors.Is(err, ErrUnsupportedKind) {
		return true
	}
	_, ok := errors.AsType[idRead](err)
	return ok
}

// Handler serves requests on the worker side of a stream. In-process
// workers implement it (the mock's command set, which the port adapter can
// also serve over an in-memory stream); the Python worker is the other
// implementation of the same contract.
type Handler interface {
	// Handle runs one request and returns its final response, whose ID
	// must be req.ID. It honours ctx, which ends when the request is
	// cancelled or its deadline passes.
	Handle(ctx context.Context, req Request) Response
}
