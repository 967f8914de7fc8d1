package protocol

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/dspgo/dspgo/internal/jsontext"
)

// MaxStreamCredit is the largest initial credit a request may ask for,
// and the largest single grant.
const MaxStreamCredit = 4096

// Message kinds beyond requests and final responses (see the protocol's
// "Both directions" section).
const (
	// KindChunk is a piece of a streamed result, worker to host.
	KindChunk = "chunk"
	// KindCredit grants a stream more chunks, host to worker.
	KindCredit = "credit"
	// KindCall is a call to a host tool, worker to host.
	KindCall = "call"
	// KindResult answers a call, host to worker; it is a Response with
	// this Kind.
	KindResult = "result"
	// KindCancel says the worker stopped waiting for a call, worker to
	// host.
	KindCancel = "cancel"
)

// Features a worker announces in its handshake.
const (
	// FeatureStream: the worker streams requests that ask for it.
	FeatureStream = "stream"
	// FeatureCall: the worker's handlers can call host tools.
	FeatureCall = "call"
)

// Chunk is one piece of a streamed result: {"id","kind":"chunk","seq","data"}.
type Chunk struct {
	// ID is the streamed request's id.
	ID uint64
	// Seq counts the request's chunks from 0, without gaps.
	Seq uint64
	// Data is the chunk, any JSON value. Nil is sent as null.
	Data json.RawMessage
}

// Credit grants a stream more chunks: {"id","kind":"credit","credit"}.
type Credit struct {
	// ID is the streamed request's id.
	ID uint64
	// Credit is the number of chunks granted, 1 to MaxStreamCredit.
	Credit int
}

// Call is a worker's call to a host tool while it serves request Parent:
// {"id","kind":"call","parent","tool","args"}. Its ID is in the worker's
// own id space.
type Call struct {
	// ID identifies the call among the worker's calls in flight.
	ID uint64
	// Parent is the id of the request being served.
	Parent uint64
	// Tool names the host function.
	Tool string
	// Args is the tool's JSON object of arguments. Nil is sent as {}.
	Args json.RawMessage
}

// AppendChunk appends c as a whole frame to dst.
func AppendChunk(dst []byte, c *Chunk, maxFrameBytes int) ([]byte, error) {
	data := c.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	} else if !json.Valid(data) {
		return dst, fmt.Errorf("%w: data of chunk %d/%d is not valid JSON", ErrInvalidField, c.ID, c.Seq)
	} else if !utf8.Valid(data) {
		return dst, notUTF8(data, fmt.Sprintf("data of chunk %d/%d", c.ID, c.Seq))
	}
	start, b, err := beginFrame(dst, c.ID, KindChunk)
	if err != nil {
		return dst, err
	}
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return endFrame(dst, b, start, maxFrameBytes)
}

// AppendCredit appends c as a whole frame to dst.
func AppendCredit(dst []byte, c *Credit, maxFrameBytes int) ([]byte, error) {
	if c.Credit < 1 || c.Credit > MaxStreamCredit {
		return dst, fmt.Errorf("%w: credit %d for %d is not from 1 to %d", ErrInvalidField, c.Credit, c.ID, MaxStreamCredit)
	}
	start, b, err := beginFrame(dst, c.ID, KindCredit)
	if err != nil {
		return dst, err
	}
	b = append(b, `,"credit":`...)
	b = strconv.AppendInt(b, int64(c.Credit), 10)
	return endFrame(dst, b, start, maxFrameBytes)
}

// AppendCall appends c as a whole frame to dst.
func AppendCall(dst []byte, c *Call, maxFrameBytes int) ([]byte, error) {
	if c.Tool == "" {
		return dst, fmt.Errorf("%w: call %d names no tool", ErrInvalidField, c.ID)
	}
	if c.Parent > MaxID {
		return dst, fmt.Errorf("%w: parent %d is over %d", ErrInvalidID, c.Parent, uint64(MaxID))
	}
	args, err := objectOrEmpty(c.Args, "args")
	if err != nil {
		return dst, err
	}
	start, b, err := beginFrame(dst, c.ID, KindCall)
	if err != nil {
		return dst, err
	}
	b = append(b, `,"parent":`...)
	b = strconv.AppendUint(b, c.Parent, 10)
	b = append(b, `,"tool":`...)
	b = jsontext.AppendString(b, c.Tool)
	b = append(b, `,"args":`...)
	b = append(b, args...)
	return endFrame(dst, b, start, maxFrameBytes)
}

// AppendCallCancel appends {"id","kind":"cancel"} to dst: the worker
// stopped waiting for call id.
func AppendCallCancel(dst []byte, id uint64, maxFrameBytes int) ([]byte, error) {
	start, b, err := beginFrame(dst, id, KindCancel)
	if err != nil {
		return dst, err
	}
	return endFrame(dst, b, start, maxFrameBytes)
}

// WorkerMessage is a frame a host reads from a worker: a final response
// (Kind ""), a chunk, a call, or a call cancellation.
type WorkerMessage struct {
	// Kind is "", KindChunk, KindCall or KindCancel.
	Kind string
	// ID is the frame's id.
	ID uint64
	// Response is set for Kind "".
	Response Response
	// Chunk is set for KindChunk.
	Chunk Chunk
	// Call is set for KindCall.
	Call Call
}

// DecodeWorkerMessage decodes a frame body from a worker. As with
// DecodeResponse, a field error still returns the ID and Kind.
func DecodeWorkerMessage(body []byte) (WorkerMessage, error) {
	w, id, err := decodeWire(body, KindChunk, KindCall, KindCancel)
	m := WorkerMessage{ID: id, Kind: string(w.Kind)}
	if err != nil {
		return m, err
	}
	switch m.Kind {
	case "":
		m.Response, err = decodeResponse(w, id)
	case KindChunk:
		m.Chunk, err = decodeChunk(w, id)
	case KindCall:
		m.Call, err = decodeCall(w, id)
	}
	return m, err
}

// decodeChunk and decodeCall decode into locals, so that the message the
// caller gets stays off the heap.
func decodeChunk(w wireMessage, id uint64) (Chunk, error) {
	c := Chunk{ID: id, Data: w.Data}
	var seq uint64
	if json.Unmarshal(w.Seq, &seq) != nil {
		return c, fieldError(id, "seq", "a non-negative integer")
	}
	c.Seq = seq
	if c.Data == nil {
		c.Data = json.RawMessage("null")
	}
	return c, nil
}

func decodeCall(w wireMessage, id uint64) (Call, error) {
	c := Call{ID: id}
	var parent uint64
	var tool string
	switch {
	case json.Unmarshal(w.Parent, &parent) != nil || parent > MaxID:
		return c, fieldError(id, "parent", "a request id")
	case json.Unmarshal(w.Tool, &tool) != nil || tool == "":
		return c, fieldError(id, "tool", "a non-empty string")
	case !isNull(w.Args) && firstByte(w.Args) != '{':
		return c, fieldError(id, "args", "an object")
	}
	c.Parent, c.Tool, c.Args = parent, tool, w.Args
	return c, nil
}

// HostMessage is a frame a worker reads from its host: a request (Kind
// ""), a credit, or the result of a call.
type HostMessage struct {
	// Kind is "", KindCredit or KindResult.
	Kind string
	// ID is the frame's id.
	ID uint64
	// Request is set for Kind "".
	Request Request
	// Credit is set for KindCredit.
	Credit Credit
	// Result is set for KindResult: the call's answer.
	Result Response
}

// DecodeHostMessage decodes a frame body from a host. As with
// DecodeRequest, a field error still returns the ID and Kind.
func DecodeHostMessage(body []byte) (HostMessage, error) {
	w, id, err := decodeWire(body, KindCredit, KindResult)
	m := HostMessage{ID: id, Kind: string(w.Kind)}
	if err != nil {
		return m, err
	}
	switch m.Kind {
	case "":
		m.Request, err = decodeRequest(w, id)
	case KindCredit:
		var n int
		if json.Unmarshal(w.Credit, &n) != nil || n < 1 || n > MaxStreamCredit {
			err = fieldError(id, "credit", fmt.Sprintf("an integer from 1 to %d", MaxStreamCredit))
		}
		m.Credit = Credit{ID: id, Credit: n}
	case KindResult:
		m.Result, err = decodeResponse(w, id)
	}
	return m, err
}
