package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/dspgo/dspgo/internal/jsontext"
)

// Request is a frame from host to worker.
type Request struct {
	// ID correlates the request with its response. It is unique among the
	// requests in flight on one stream and at most MaxID; InitID (0) is
	// reserved for the init ping.
	ID uint64

	// Kind is empty for a request; the other kinds host to worker have
	// their own types (Credit; a tool's result is a Response of
	// KindResult).
	Kind string

	// Command names the command. It must not be empty.
	Command string

	// Args is the command's JSON object of arguments, sent as it is. Nil
	// is sent as {}.
	Args json.RawMessage

	// Session is the session the request belongs to; empty means none and
	// is not sent.
	Session string

	// DeadlineMS is the time the worker has for the request, in
	// milliseconds counted from when it reads the frame. Zero means no
	// deadline and is not sent.
	DeadlineMS int64

	// Stream asks for a stream with this initial credit: the chunks the
	// worker may send before it is granted more (1 to MaxStreamCredit).
	// Zero means no stream and is not sent.
	Stream int
}

// Response is a frame from worker to host: the final answer to the request
// with the same ID.
type Response struct {
	// ID is the id of the request answered.
	ID uint64

	// Kind is empty for a final response, and KindResult for the host's
	// answer to a worker's call (Call), in the worker's id space.
	Kind string

	// Success reports whether the command succeeded. When true, Result
	// holds its value and Error is nil; when false, Error says why.
	Success bool

	// Result is the command's raw JSON result. Nil is sent, and decodes,
	// as null.
	Result json.RawMessage

	// Error describes the failure when Success is false.
	Error *ErrorBody

	// Streamed reports that the request was streamed: Chunks, the number
	// of chunk frames sent before this response, is then sent too.
	Streamed bool

	// Chunks is the number of chunk frames sent before a streamed
	// response.
	Chunks uint64
}

// ErrorBody is the error object of a failed response.
type ErrorBody struct {
	// Code is one of the error code names shared with package adapter,
	// such as "not_found". A legacy string error decodes as "unknown".
	Code string

	// Message is the human-readable description.
	Message string

	// Type is the worker-side exception type; empty when not given.
	Type string

	// Traceback is the worker-side traceback; empty when not given.
	Traceback string
}

// EncodeRequest returns r as a whole frame, header included. It fails,
// without output, when r is invalid or larger than maxFrameBytes (zero means
// DefaultMaxFrameBytes).
func EncodeRequest(r *Request, maxFrameBytes int) ([]byte, error) {
	return AppendRequest(nil, r, maxFrameBytes)
}

// EncodeResponse returns r as a whole frame, header included, under the
// same rules as EncodeRequest.
func EncodeResponse(r *Response, maxFrameBytes int) ([]byte, error) {
	return AppendResponse(nil, r, maxFrameBytes)
}

// AppendRequest appends r as a whole frame to dst. On error dst is returned
// unchanged.
func AppendRequest(dst []byte, r *Request, maxFrameBytes int) ([]byte, error) {
	if r.Command == "" {
		return dst, fmt.Errorf("%w: request %d has no command", ErrInvalidField, r.ID)
	}
	if r.DeadlineMS < 0 {
		return dst, fmt.Errorf("%w: request %d has a negative deadline_ms", ErrInvalidField, r.ID)
	}
	args, err := objectOrEmpty(r.Args, "args")
	if err != nil {
		return dst, err
	}
	start, b, err := beginFrame(dst, r.ID, r.Kind)
	if err != nil {
		return dst, err
	}
	b = append(b, `,"command":`...)
	b = jsontext.AppendString(b, r.Command)
	b = append(b, `,"args":`...)
	b = append(b, args...)
	if r.Session != "" {
		b = append(b, `,"session":`...)
		b = jsontext.AppendString(b, r.Session)
	}
	if r.DeadlineMS > 0 {
		b = append(b, `,"deadline_ms":`...)
		b = strconv.AppendInt(b, r.DeadlineMS, 10)
	}
	if r.Stream != 0 {
		if r.Stream < 0 || r.Stream > MaxStreamCredit {
			return dst, fmt.Errorf("%w: request %d asks for a stream credit of %d (1 to %d)", ErrInvalidField, r.ID, r.Stream, MaxStreamCredit)
		}
		b = append(b, `,"stream":`...)
		b = strconv.AppendInt(b, int64(r.Stream), 10)
	}
	return endFrame(dst, b, start, maxFrameBytes)
}

// AppendResponse appends r as a whole frame to dst. On error dst is returned
// unchanged.
func AppendResponse(dst []byte, r *Response, maxFrameBytes int) ([]byte, error) {
	if !r.Success && r.Error == nil {
		return dst, fmt.Errorf("%w: failed response %d has no error", ErrInvalidField, r.ID)
	}
	result := []byte("null")
	if r.Success && len(r.Result) > 0 {
		if !json.Valid(r.Result) {
			return dst, fmt.Errorf("%w: result of response %d is not valid JSON", ErrInvalidField, r.ID)
		}
		if !utf8.Valid(r.Result) {
			return dst, notUTF8(r.Result, fmt.Sprintf("result of response %d", r.ID))
		}
		if depth(r.Result) > MaxDepth {
			return dst, fmt.Errorf("%w: result of response %d nests deeper than %d levels", ErrInvalidField, r.ID, MaxDepth)
		}
		result = r.Result
	}
	start, b, err := beginFrame(dst, r.ID, r.Kind)
	if err != nil {
		return dst, err
	}
	if r.Success {
		b = append(b, `,"success":true,"result":`...)
		b = append(b, result...)
	} else {
		e := r.Error
		b = append(b, `,"success":false,"error":{"code":`...)
		b = jsontext.AppendString(b, e.Code)
		b = append(b, `,"message":`...)
		b = jsontext.AppendString(b, e.Message)
		if e.Type != "" {
			b = append(b, `,"type":`...)
			b = jsontext.AppendString(b, e.Type)
		}
		if e.Traceback != "" {
			b = append(b, `,"traceback":`...)
			b = jsontext.AppendString(b, e.Traceback)
		}
		b = append(b, '}')
	}
	if r.Streamed {
		b = append(b, `,"chunks":`...)
		b = strconv.AppendUint(b, r.Chunks, 10)
	}
	return endFrame(dst, b, start, maxFrameBytes)
}

// AppendFrame appends body as a whole frame to dst, header first. It fails
// only when body is over the limit (zero means DefaultMaxFrameBytes); it
// does not check the body's content.
func AppendFrame(dst, body []byte, maxFrameBytes int) ([]byte, error) {
	if limit := frameLimit(maxFrameBytes); len(body) > limit {
		return dst, fmt.Errorf("%w: body of %d bytes is over the limit of %d", ErrFrameTooLarge, len(body), limit)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...), nil
}

// beginFrame reserves the header and opens the object with its id (and
// kind). start is the offset of the header in the returned slice.
func beginFrame(dst []byte, id uint64, kind string) (start int, b []byte, err error) {
	if id > MaxID {
		return 0, dst, fmt.Errorf("%w: %d is over %d", ErrInvalidID, id, uint64(MaxID))
	}
	start = len(dst)
	b = append(dst, 0, 0, 0, 0)
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	if kind != "" {
		b = append(b, `,"kind":`...)
		b = jsontext.AppendString(b, kind)
	}
	return start, b, nil
}

// endFrame closes the object and fills in the header, or fails when the
// body is over the limit.
func endFrame(dst, b []byte, start, maxFrameBytes int) ([]byte, error) {
	b = append(b, '}')
	n := len(b) - start - HeaderSize
	if limit := frameLimit(maxFrameBytes); n > limit {
		return dst, fmt.Errorf("%w: body of %d bytes is over the limit of %d", ErrFrameTooLarge, n, limit)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	return b, nil
}

// objectOrEmpty checks that raw is one JSON object and returns it, or {} for
// nil.
func objectOrEmpty(raw json.RawMessage, field string) ([]byte, error) {
	if len(raw) == 0 {
		return []byte("{}"), nil
	}
	if firstByte(raw) != '{' || !json.Valid(raw) {
		return nil, fmt.Errorf("%w: %s must be a JSON object", ErrInvalidField, field)
	}
	if !utf8.Valid(raw) {
		return nil, notUTF8(raw, field)
	}
	if depth(raw) > MaxDepth {
		return nil, fmt.Errorf("%w: %s nests deeper than %d levels", ErrInvalidField, field, MaxDepth)
	}
	return raw, nil
}

// notUTF8 is the error for JSON text b, named what, that is not valid
// UTF-8. encoding/json accepts any bytes inside strings, but a frame body
// must be UTF-8: a peer that cannot decode the body cannot read its id
// either, so a request sent with such bytes would never be answered.
// Callers test utf8.Valid first and build what only for the error.
func notUTF8(b []byte, what string) error {
	return fmt.Errorf("%w: %s is not valid UTF-8 (byte %d)", ErrInvalidField, what, invalidUTF8At(b))
}

// invalidUTF8At returns the offset of the first byte of b that does not
// start a valid UTF-8 sequence, or -1.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// depth returns how deeply arrays and objects nest in a valid JSON text.
func depth(b []byte) int {
	d, deepest := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = skipString(b, i) - 1
		case '{', '[':
			d++
			deepest = max(deepest, d)
		case '}', ']':
			d--
		}
	}
	return deepest
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

// wireMessage is the decoding form of every frame. Fields other than the
// id stay raw until the id is known, so that a message with a bad field
// can still be answered. The raw values are sub-slices of the body.
type wireMessage struct {
	ID, Kind, Command, Args, Session, DeadlineMS, Success, Result, Error json.RawMessage
	Stream, Chunks, Credit, Seq, Data, Parent, Tool                      json.RawMessage
}

// field returns where the value of a top-level key goes, or nil for a key
// this version ignores. Keys match exactly, as in every other JSON
// implementation (encoding/json alone would match them case-insensitively).
func (w *wireMessage) field(key []byte) *json.RawMessage {
	switch string(key) {
	case "id":
		return &w.ID
	case "kind":
		return &w.Kind
	case "command":
		return &w.Command
	case "args":
		return &w.Args
	case "session":
		return &w.Session
	case "deadline_ms":
		return &w.DeadlineMS
	case "success":
		return &w.Success
	case "result":
		return &w.Result
	case "error":
		return &w.Error
	case "stream":
		return &w.Stream
	case "chunks":
		return &w.Chunks
	case "credit":
		return &w.Credit
	case "seq":
		return &w.Seq
	case "data":
		return &w.Data
	case "parent":
		return &w.Parent
	case "tool":
		return &w.Tool
	}
	return nil
}

// decodeWire checks a frame body up to its id and kind: UTF-8, one JSON
// value, an object, an id from 0 to MaxID, no kind or one of kinds. A body
// that is not UTF-8 fails with ErrInvalidUTF8 whatever else is wrong with
// it; when its id can be read all the same (the bad bytes are inside
// strings), the id and kind are returned and the error is Answerable.
func decodeWire(body []byte, kinds ...string) (wireMessage, uint64, error) {
	var w wireMessage
	var badUTF8 error
	if !utf8.Valid(body) {
		badUTF8 = fmt.Errorf("%w (byte %d)", ErrInvalidUTF8, invalidUTF8At(body))
	}
	fail := func(err error) (wireMessage, uint64, error) {
		if badUTF8 != nil {
			return wireMessage{}, 0, badUTF8
		}
		return wireMessage{}, 0, err
	}
	if !json.Valid(body) {
		return fail(ErrInvalidJSON)
	}
	if firstByte(body) != '{' {
		return fail(ErrNotObject)
	}
	if depth(body) > MaxDepth+1 {
		return fail(fmt.Errorf("%w: nested deeper than %d levels", ErrInvalidJSON, MaxDepth+1))
	}
	scanObject(body, func(key, value []byte) {
		if dst := w.field(key); dst != nil {
			*dst = value // a repeated key: the last one wins
		}
	})
	if w.ID == nil {
		return fail(ErrMissingID)
	}
	idText := string(w.ID)
	if idText == "-0" {
		idText = "0" // JSON's negative zero is the integer zero, as in Python
	}
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil || id > MaxID {
		return fail(fmt.Errorf("%w: got %.40s", ErrInvalidID, w.ID))
	}
	if badUTF8 != nil {
		// The id is known: the message can be answered, and its kind
		// says how (a request, or the result of a call).
		var kind string
		if json.Unmarshal(w.Kind, &kind) != nil {
			kind = ""
		}
		return wireMessage{Kind: json.RawMessage(kind)}, id, idRead{badUTF8}
	}
	if !isNull(w.Kind) {
		var kind string
		if json.Unmarshal(w.Kind, &kind) != nil {
			return w, id, fieldError(id, "kind", "a string")
		}
		if !slices.Contains(kinds, kind) {
			return w, id, fmt.Errorf("%w: %q in message %d", ErrUnsupportedKind, kind, id)
		}
		w.Kind = json.RawMessage(kind) // unquoted from here on
	} else {
		w.Kind = nil
	}
	return w, id, nil
}

// idRead marks a decoding error after which the message's id was read
// all the same (see Answerable).
type idRead struct{ error }

func (e idRead) Unwrap() error { return e.error }

// scanObject calls fn with each top-level key (unescaped) and raw value of
// obj, which must be a valid JSON object.
func scanObject(obj []byte, fn func(key, value []byte)) {
	i := skipSpace(obj, 0) + 1 // past '{'
	for {
		i = skipSpace(obj, i)
		if obj[i] == '}' {
			return
		}
		end := skipString(obj, i)
		key := obj[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			_ = json.Unmarshal(obj[i:end], &k) // valid: checked by json.Valid
			key = []byte(k)
		}
		i = skipSpace(obj, end) + 1 // past ':'
		i = skipSpace(obj, i)
		start := i
		i = skipValue(obj, i)
		fn(key, obj[start:i])
		i = skipSpace(obj, i)
		if obj[i] == ',' {
			i++
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at i.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index just past the value that starts at i.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

func fieldError(id uint64, field, want string) error {
	return fmt.Errorf("%w: %s of message %d must be %s", ErrInvalidField, field, id, want)
}

// DecodeRequest decodes a frame body (without its header) into a Request.
// When the id is valid but another field is not (ErrInvalidField,
// ErrUnsupportedKind), the returned Request still carries the ID so that
// the error can be answered.
func DecodeRequest(body []byte) (Request, error) {
	w, id, err := decodeWire(body)
	if err != nil {
		return Request{ID: id}, err
	}
	return decodeRequest(w, id)
}

func decodeRequest(w wireMessage, id uint64) (Request, error) {
	r := Request{ID: id}
	if json.Unmarshal(w.Command, &r.Command) != nil || r.Command == "" {
		return r, fieldError(id, "command", "a non-empty string")
	}
	// Optional fields may be absent or null.
	if !isNull(w.Args) {
		if firstByte(w.Args) != '{' {
			return r, fieldError(id, "args", "an object")
		}
		r.Args = w.Args
	}
	if !isNull(w.Session) && json.Unmarshal(w.Session, &r.Session) != nil {
		return r, fieldError(id, "session", "a string")
	}
	if !isNull(w.DeadlineMS) {
		if json.Unmarshal(w.DeadlineMS, &r.DeadlineMS) != nil || r.DeadlineMS < 0 {
			return r, fieldError(id, "deadline_ms", "a non-negative integer")
		}
	}
	if !isNull(w.Stream) {
		if json.Unmarshal(w.Stream, &r.Stream) != nil || r.Stream < 1 || r.Stream > MaxStreamCredit {
			return r, fieldError(id, "stream", fmt.Sprintf("an integer from 1 to %d", MaxStreamCredit))
		}
	}
	return r, nil
}

// isNull reports whether a raw field is absent or null.
func isNull(raw json.RawMessage) bool {
	return raw == nil || string(raw) == "null"
}

// DecodeResponse decodes a frame body (without its header) into a
// Response. A plain-string "error", as older workers send it, decodes with
// code "unknown". As with DecodeRequest, a field error still returns the ID.
func DecodeResponse(body []byte) (Response, error) {
	w, id, err := decodeWire(body)
	if err != nil {
		return Response{ID: id}, err
	}
	return decodeResponse(w, id)
}

func decodeResponse(w wireMessage, id uint64) (Response, error) {
	r := Response{ID: id, Kind: string(w.Kind)}
	if !isNull(w.Chunks) {
		if json.Unmarshal(w.Chunks, &r.Chunks) != nil {
			return r, fieldError(id, "chunks", "a non-negative integer")
		}
		r.Streamed = true
	}
	switch string(w.Success) { // a raw value is its token alone
	case "true":
		r.Success = true
	case "false":
	default: // null is false, as json.Unmarshal has it; anything else is refused
		if json.Unmarshal(w.Success, &r.Success) != nil {
			return r, fieldError(id, "success", "true or false")
		}
	}
	if r.Success && !isNull(w.Error) {
		// A failure must be success:false: success with an error inside
		// is neither, and is refused rather than guessed at.
		return r, fmt.Errorf("%w: response %d has success true and an error", ErrInvalidField, id)
	}
	if r.Success {
		r.Result = w.Result
		if r.Result == nil {
			r.Result = json.RawMessage("null")
		}
		return r, nil
	}
	var err error
	r.Error, err = decodeError(w.Error)
	if err != nil {
		return r, fieldError(id, "error", "an object {code, message} or a string")
	}
	return r, nil
}

func decodeError(raw json.RawMessage) (*ErrorBody, error) {
	switch firstByte(raw) {
	case 0, 'n':
		return &ErrorBody{Code: "unknown", Message: "the worker reported a failure without an error"}, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return &ErrorBody{Code: "unknown", Message: s}, nil
	}
	var e struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Type      string `json:"type"`
		Traceback string `json:"traceback"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, err
	}
	if e.Code == "" {
		e.Code = "unknown"
	}
	return &ErrorBody{Code: e.Code, Message: e.Message, Type: e.Type, Traceback: e.Traceback}, nil
}
