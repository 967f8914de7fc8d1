package protocol_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/protocol"
)

// The frames of both directions, byte for byte as docs/protocol.md shows
// them (and as the Python worker writes them).
func TestKindsEncodeAsDocumented(t *testing.T) {
	body := func(b []byte, err error) string {
		t.Helper()
		require.NoError(t, err)
		return string(b[protocol.HeaderSize:])
	}
	assert.Equal(t, `{"id":7,"command":"execute_program","args":{},"stream":16}`,
		body(protocol.AppendRequest(nil, &protocol.Request{ID: 7, Command: "execute_program", Stream: 16}, 0)))
	assert.Equal(t, `{"id":7,"kind":"chunk","seq":0,"data":{"field":"answer","delta":"a"}}`,
		body(protocol.AppendChunk(nil, &protocol.Chunk{ID: 7, Data: json.RawMessage(`{"field":"answer","delta":"a"}`)}, 0)))
	assert.Equal(t, `{"id":7,"kind":"credit","credit":8}`, body(protocol.AppendCredit(nil, &protocol.Credit{ID: 7, Credit: 8}, 0)))
	assert.Equal(t, `{"id":3,"kind":"call","parent":7,"tool":"search","args":{"q":"x"}}`,
		body(protocol.AppendCall(nil, &protocol.Call{ID: 3, Parent: 7, Tool: "search", Args: json.RawMessage(`{"q":"x"}`)}, 0)))
	assert.Equal(t, `{"id":3,"kind":"result","success":true,"result":[1]}`,
		body(protocol.AppendResponse(nil, &protocol.Response{ID: 3, Kind: protocol.KindResult, Success: true, Result: json.RawMessage(`[1]`)}, 0)))
	assert.Equal(t, `{"id":3,"kind":"cancel"}`, body(protocol.AppendCallCancel(nil, 3, 0)))
	assert.Equal(t, `{"id":7,"success":true,"result":null,"chunks":3}`,
		body(protocol.AppendResponse(nil, &protocol.Response{ID: 7, Success: true, Streamed: true, Chunks: 3}, 0)))

	_, err := protocol.AppendCredit(nil, &protocol.Credit{ID: 7, Credit: 0}, 0)
	assert.ErrorIs(t, err, protocol.ErrInvalidField)
	_, err = protocol.AppendRequest(nil, &protocol.Request{ID: 7, Command: "x", Stream: protocol.MaxStreamCredit + 1}, 0)
	assert.ErrorIs(t, err, protocol.ErrInvalidField)
	_, err = protocol.AppendCall(nil, &protocol.Call{ID: 1, Parent: 2}, 0)
	assert.ErrorIs(t, err, protocol.ErrInvalidField)
}

func TestDecodeWorkerMessages(t *testing.T) {
	m, err := protocol.DecodeWorkerMessage([]byte(`{"id":7,"kind":"chunk","seq":2,"data":{"field":"a","delta":" b"}}`))
	require.NoError(t, err)
	assert.Equal(t, protocol.KindChunk, m.Kind)
	assert.Equal(t, protocol.Chunk{ID: 7, Seq: 2, Data: json.RawMessage(`{"field":"a","delta":" b"}`)}, m.Chunk)

	m, err = protocol.DecodeWorkerMessage([]byte(`{"id":3,"kind":"call","parent":7,"tool":"add","args":{"a":1}}`))
	require.NoError(t, err)
	assert.Equal(t, protocol.Call{ID: 3, Parent: 7, Tool: "add", Args: json.RawMessage(`{"a":1}`)}, m.Call)

	m, err = protocol.DecodeWorkerMessage([]byte(`{"id":3,"kind":"cancel"}`))
	require.NoError(t, err)
	assert.Equal(t, protocol.KindCancel, m.Kind)

	m, err = protocol.DecodeWorkerMessage([]byte(`{"id":7,"success":false,"error":{"code":"canceled","message":"stopped"},"chunks":5}`))
	require.NoError(t, err)
	assert.True(t, m.Response.Streamed)
	assert.Equal(t, uint64(5), m.Response.Chunks)
	assert.Equal(t, "canceled", m.Response.Error.Code)

	for body, field := range map[string]string{
		`{"id":7,"kind":"chunk","data":1}`:                       "seq",
		`{"id":3,"kind":"call","parent":7,"args":{}}`:            "tool",
		`{"id":3,"kind":"call","parent":-1,"tool":"t"}`:          "parent",
		`{"id":3,"kind":"call","parent":7,"tool":"t","args":[]}`: "args",
		`{"id":7,"success":true,"chunks":"3"}`:                   "chunks",
	} {
		m, err := protocol.DecodeWorkerMessage([]byte(body))
		assert.ErrorIs(t, err, protocol.ErrInvalidField, body)
		assert.Contains(t, err.Error(), field, body)
		assert.NotZero(t, m.ID, "the id survives a field error")
	}
	_, err = protocol.DecodeWorkerMessage([]byte(`{"id":7,"kind":"credit","credit":1}`))
	assert.ErrorIs(t, err, protocol.ErrUnsupportedKind, "a host never reads a credit")
	// Version-1 decoders still refuse every kind.
	_, err = protocol.DecodeResponse([]byte(`{"id":7,"kind":"chunk","seq":0,"data":1}`))
	assert.True(t, errors.Is(err, protocol.ErrUnsupportedKind))
}

func TestDecodeHostMessages(t *testing.T) {
	m, err := protocol.DecodeHostMessage([]byte(`{"id":7,"command":"execute_program","args":{},"stream":16}`))
	require.NoError(t, err)
	assert.Equal(t, 16, m.Request.Stream)
	m, err = protocol.DecodeHostMessage([]byte(`{"id":7,"kind":"credit","credit":8}`))
	require.NoError(t, err)
	assert.Equal(t, protocol.Credit{ID: 7, Credit: 8}, m.Credit)
	m, err = protocol.DecodeHostMessage([]byte(`{"id":3,"kind":"result","success":false,"error":{"code":"not_found","message":"no tool"}}`))
	require.NoError(t, err)
	assert.Equal(t, "not_found", m.Result.Error.Code)
	for _, body := range []string{`{"id":7,"command":"x","stream":0}`, `{"id":7,"command":"x","stream":4097}`, `{"id":7,"kind":"credit","credit":0}`} {
		_, err := protocol.DecodeHostMessage([]byte(body))
		assert.ErrorIs(t, err, protocol.ErrInvalidField, body)
	}
	_, err = protocol.DecodeHostMessage([]byte(`{"id":7,"kind":"chunk","seq":0,"data":1}`))
	assert.ErrorIs(t, err, protocol.ErrUnsupportedKind)
}
