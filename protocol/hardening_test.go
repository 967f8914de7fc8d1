package protocol_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/protocol"
)

// badUTF8 are byte sequences that are not UTF-8 (a stray continuation
// byte, a truncated sequence, an overlong form, an encoded surrogate, a
// code point beyond U+10FFFF), each placed in a value and in a key, at the
// top and nested.
var badUTF8 = func() []string {
	var out []string
	for _, b := range []string{"\xff", "\x80", "\xc3", "\xe2\x82", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"} {
		out = append(out,
			`{"value":"a`+b+`b"}`,
			`{"`+b+`":1}`,
			`{"outer":{"list":["ok","`+b+`"]}}`,
			`{"outer":[{"`+b+`":null}]}`)
	}
	return out
}()

// TestInvalidUTF8IsNeverSent: the codec refuses to encode a request, a
// result, a chunk or a call whose JSON holds bytes that are not UTF-8.
// encoding/json accepts any bytes inside strings; a peer that cannot
// decode the body cannot read its id either, so such a request would
// never be answered.
func TestInvalidUTF8IsNeverSent(t *testing.T) {
	require.Len(t, badUTF8, 28)
	for _, raw := range badUTF8 {
		require.True(t, json.Valid([]byte(raw)), "%q is valid JSON to encoding/json", raw)
		encoders := map[string]func() ([]byte, error){
			"request": func() ([]byte, error) {
				return protocol.EncodeRequest(&protocol.Request{ID: 1, Command: "echo", Args: json.RawMessage(raw)}, 0)
			},
			"response": func() ([]byte, error) {
				return protocol.EncodeResponse(&protocol.Response{ID: 2, Success: true, Result: json.RawMessage(raw)}, 0)
			},
			"tool result": func() ([]byte, error) {
				return protocol.EncodeResponse(&protocol.Response{ID: 3, Kind: protocol.KindResult, Success: true, Result: json.RawMessage(raw)}, 0)
			},
			"chunk": func() ([]byte, error) {
				return protocol.AppendChunk(nil, &protocol.Chunk{ID: 4, Data: json.RawMessage(raw)}, 0)
			},
			"call": func() ([]byte, error) {
				return protocol.AppendCall(nil, &protocol.Call{ID: 5, Parent: 1, Tool: "t", Args: json.RawMessage(raw)}, 0)
			},
		}
		for name, encode := range encoders {
			frame, err := encode()
			require.ErrorIs(t, err, protocol.ErrInvalidField, "%s %q", name, raw)
			assert.Contains(t, err.Error(), "not valid UTF-8", "%s %q", name, raw)
			assert.Nil(t, frame, "nothing encoded")
		}
	}
	// Valid UTF-8, escapes included, still goes.
	for _, raw := range []string{`{"v":"héllo 世界 🎉"}`, `{"v":"\udc00 lone surrogate escape"}`, `{"\u00e9":"\u0000"}`} {
		_, err := protocol.EncodeRequest(&protocol.Request{ID: 1, Command: "echo", Args: json.RawMessage(raw)}, 0)
		assert.NoError(t, err, raw)
	}
}

// TestInvalidUTF8WithReadableID: a body that is not UTF-8 is
// invalid_utf8 whatever else is wrong with it; when its id can be read
// all the same, the id (and kind) come back with an Answerable error, so
// a worker can answer it instead of leaving its caller waiting.
func TestInvalidUTF8WithReadableID(t *testing.T) {
	answerable := []struct {
		body string
		id   uint64
		kind string
	}{
		{`{"id":7,"command":"p` + "\xff" + `ing"}`, 7, ""},
		{`{"id":8,"command":"echo","args":{"value":"` + "\xc3" + `"}}`, 8, ""},
		{`{"command":"echo","args":{"` + "\xed\xa0\x80" + `":1},"id":9}`, 9, ""},
		{`{"id":3,"kind":"result","success":true,"result":"` + "\x80" + `"}`, 3, protocol.KindResult},
	}
	for _, c := range answerable {
		req, err := protocol.DecodeRequest([]byte(c.body))
		require.Error(t, err)
		assert.Equal(t, "invalid_utf8", protocol.ErrorKind(err), "%q", c.body)
		assert.True(t, protocol.Answerable(err), "%q: %v", c.body, err)
		assert.True(t, protocol.Recoverable(err))
		assert.Equal(t, c.id, req.ID)
		m, err := protocol.DecodeHostMessage([]byte(c.body))
		assert.True(t, protocol.Answerable(err))
		assert.Equal(t, c.id, m.ID)
		assert.Equal(t, c.kind, m.Kind)
	}
	for _, body := range []string{
		`{"id":7,"command":` + "\xff" + `}`, // outside a string: not JSON
		`{"` + "\xff" + `":7}`,              // no id
		`{"id":"` + "\xff" + `"}`,           // no integer id
		"[\"\xff\"]",                        // not an object
	} {
		_, err := protocol.DecodeRequest([]byte(body))
		assert.Equal(t, "invalid_utf8", protocol.ErrorKind(err), "%q", body)
		assert.False(t, protocol.Answerable(err), "%q", body)
	}
	// Decoding errors other than a field's or a kind's leave no id.
	assert.False(t, protocol.Answerable(protocol.ErrInvalidJSON))
	assert.False(t, protocol.Answerable(protocol.ErrMissingID))
	assert.True(t, protocol.Answerable(fmt.Errorf("x: %w", protocol.ErrInvalidField)))
}

// TestSuccessWithAnErrorIsRefused: a failure is success:false; a
// response that says success and carries an error is a protocol
// violation, not a success.
func TestSuccessWithAnErrorIsRefused(t *testing.T) {
	for _, body := range []string{
		`{"id":4,"success":true,"error":{"code":"internal","message":"boom"}}`,
		`{"id":4,"success":true,"result":1,"error":"boom"}`,
	} {
		resp, err := protocol.DecodeResponse([]byte(body))
		require.ErrorIs(t, err, protocol.ErrInvalidField, body)
		assert.Contains(t, err.Error(), "success true and an error")
		assert.EqualValues(t, 4, resp.ID)
		m, err := protocol.DecodeWorkerMessage([]byte(body))
		require.ErrorIs(t, err, protocol.ErrInvalidField, body)
		assert.EqualValues(t, 4, m.ID)
	}
	resp, err := protocol.DecodeResponse([]byte(`{"id":4,"success":true,"result":1,"error":null}`))
	require.NoError(t, err, "a null error is no error")
	assert.True(t, resp.Success)
}

// TestStalledFrame: a frame begun and not finished within the stall bound
// calls stalled, whose closing of the stream ends the read with
// truncated_body; whole frames and a silent stream between frames never
// do.
func TestStalledFrame(t *testing.T) {
	pr, pw := io.Pipe()
	r := protocol.NewReader(pr, 0)
	stalled := make(chan struct{}, 1)
	r.OnStall(50*time.Millisecond, func() {
		stalled <- struct{}{}
		_ = pw.Close()
	})
	frame, err := protocol.EncodeRequest(&protocol.Request{ID: 1, Command: "ping"}, 0)
	require.NoError(t, err)

	// A whole frame, then silence before the next: no stall.
	go func() { _, _ = pw.Write(frame) }()
	body, err := r.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, frame[protocol.HeaderSize:], body)
	read := make(chan error, 1)
	go func() { _, err := r.ReadFrame(); read <- err }()
	select {
	case <-stalled:
		t.Fatal("a silent stream between frames is not a stall")
	case <-time.After(200 * time.Millisecond): // four stall bounds of silence
	}

	// The next frame's header arrives with part of its body, the rest
	// never does.
	var partial bytes.Buffer
	_ = binary.Write(&partial, binary.BigEndian, uint32(100))
	partial.WriteString(`{"id":2,`)
	_, err = pw.Write(partial.Bytes())
	require.NoError(t, err)
	<-stalled
	err = <-read
	assert.ErrorIs(t, err, protocol.ErrTruncatedBody)
	assert.False(t, protocol.Recoverable(err))

	// Without a bound, nothing is called (the default).
	r2 := protocol.NewReader(bytes.NewReader(frame), 0)
	_, err = r2.ReadFrame()
	require.NoError(t, err)
	_, err = r2.ReadFrame()
	assert.ErrorIs(t, err, io.EOF)
}
