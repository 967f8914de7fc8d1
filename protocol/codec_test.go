package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/protocol"
)

func TestRequestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := protocol.NewWriter(&buf, 0)
	in := []protocol.Request{
		{ID: 0, Command: "ping", Args: json.RawMessage(`{"initialization":true}`)},
		{ID: 1, Command: "ping"},
		{ID: 2, Command: "execute_program", Args: json.RawMessage(`{"inputs":{"q":"<&> \u2028 ok"}}`), Session: "s-é", DeadlineMS: 250},
		{ID: protocol.MaxID, Command: "x\"y\\z\n\t\x01"},
	}
	for i := range in {
		require.NoError(t, w.WriteRequest(&in[i]))
	}
	r := protocol.NewReader(&buf, 0)
	for _, want := range in {
		got, err := r.ReadRequest()
		require.NoError(t, err)
		if want.Args == nil {
			want.Args = json.RawMessage(`{}`)
		}
		assert.Equal(t, want, got)
	}
	_, err := r.ReadRequest()
	assert.ErrorIs(t, err, io.EOF)
}

func TestResponseRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := protocol.NewWriter(&buf, 0)
	in := []protocol.Response{
		{ID: 1, Success: true, Result: json.RawMessage(`{"pong":true}`)},
		{ID: 2, Success: true, Result: json.RawMessage(`[1,"two",3.5,null]`)},
		{ID: 3, Success: false, Error: &protocol.ErrorBody{Code: "internal", Message: "division by zero", Type: "ZeroDivisionError", Traceback: "Traceback:\n  line 1\n"}},
		{ID: 4, Success: false, Error: &protocol.ErrorBody{Code: "not_found", Message: "no such program"}},
	}
	for i := range in {
		require.NoError(t, w.WriteResponse(&in[i]))
	}
	require.NoError(t, w.WriteResponse(&protocol.Response{ID: 5, Success: true}))
	r := protocol.NewReader(&buf, 0)
	for _, want := range in {
		got, err := r.ReadResponse()
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	got, err := r.ReadResponse()
	require.NoError(t, err)
	assert.Equal(t, json.RawMessage("null"), got.Result, "a nil result travels as null")
}

func TestEncodeRejectsInvalidMessages(t *testing.T) {
	reqs := map[string]protocol.Request{
		"no command":        {ID: 1},
		"args not object":   {ID: 1, Command: "x", Args: json.RawMessage(`[1]`)},
		"args invalid JSON": {ID: 1, Command: "x", Args: json.RawMessage(`{"a":`)},
		"id over MaxID":     {ID: protocol.MaxID + 1, Command: "x"},
		"negative deadline": {ID: 1, Command: "x", DeadlineMS: -1},
		"args too deep":     {ID: 1, Command: "x", Args: json.RawMessage(`{"a":` + strings.Repeat("[", protocol.MaxDepth) + strings.Repeat("]", protocol.MaxDepth) + `}`)},
	}
	for name, req := range reqs {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			err := protocol.NewWriter(&buf, 0).WriteRequest(&req)
			require.Error(t, err)
			assert.True(t, errors.Is(err, protocol.ErrInvalidField) || errors.Is(err, protocol.ErrInvalidID), "%v", err)
			assert.Zero(t, buf.Len(), "nothing written")
		})
	}
	resps := map[string]protocol.Response{
		"failure without error": {ID: 1},
		"invalid result":        {ID: 1, Success: true, Result: json.RawMessage(`{nope`)},
	}
	for name, resp := range resps {
		t.Run(name, func(t *testing.T) {
			_, err := protocol.EncodeResponse(&resp, 0)
			assert.ErrorIs(t, err, protocol.ErrInvalidField)
		})
	}
}

func TestDepthLimit(t *testing.T) {
	nest := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	ok := json.RawMessage(nest(protocol.MaxDepth))
	_, err := protocol.EncodeRequest(&protocol.Request{ID: 1, Command: "x", Args: ok}, 0)
	require.NoError(t, err, "exactly MaxDepth levels")
	deep := json.RawMessage(nest(protocol.MaxDepth + 1))
	_, err = protocol.EncodeRequest(&protocol.Request{ID: 1, Command: "x", Args: deep}, 0)
	assert.ErrorIs(t, err, protocol.ErrInvalidField)
	_, err = protocol.EncodeResponse(&protocol.Response{ID: 1, Success: true, Result: deep}, 0)
	assert.ErrorIs(t, err, protocol.ErrInvalidField)
	_, err = protocol.DecodeResponse([]byte(`{"id":1,"success":true,"result":` + nest(protocol.MaxDepth+1) + `}`))
	assert.ErrorIs(t, err, protocol.ErrInvalidJSON)
	assert.ErrorContains(t, err, "nested deeper")
	// Brackets inside strings do not count.
	_, err = protocol.EncodeRequest(&protocol.Request{ID: 1, Command: "x", Args: json.RawMessage(`{"s":"` + strings.Repeat("[", 1000) + `"}`)}, 0)
	assert.NoError(t, err)
}

func TestDecodeFieldErrorsKeepTheID(t *testing.T) {
	tests := map[string]string{
		"command missing":     `{"id":7,"args":{}}`,
		"command empty":       `{"id":7,"command":""}`,
		"command not string":  `{"id":7,"command":3}`,
		"args not object":     `{"id":7,"command":"x","args":[1]}`,
		"session not string":  `{"id":7,"command":"x","session":1}`,
		"deadline negative":   `{"id":7,"command":"x","deadline_ms":-5}`,
		"deadline fractional": `{"id":7,"command":"x","deadline_ms":1.5}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			req, err := protocol.DecodeRequest([]byte(body))
			assert.ErrorIs(t, err, protocol.ErrInvalidField)
			assert.True(t, protocol.Recoverable(err))
			assert.EqualValues(t, 7, req.ID, "the error can be answered")
		})
	}

	req, err := protocol.DecodeRequest([]byte(`{"id":8,"kind":"chunk","command":"x"}`))
	assert.ErrorIs(t, err, protocol.ErrUnsupportedKind)
	assert.EqualValues(t, 8, req.ID)

	resp, err := protocol.DecodeResponse([]byte(`{"id":9,"success":"yes"}`))
	assert.ErrorIs(t, err, protocol.ErrInvalidField)
	assert.EqualValues(t, 9, resp.ID)

	resp, err = protocol.DecodeResponse([]byte(`{"id":9,"success":false}`))
	require.NoError(t, err, "a failure without an error object is still a failure")
	assert.Equal(t, "unknown", resp.Error.Code)
}

// guardReader fails the test if anything reads past the data it holds.
type guardReader struct {
	t    *testing.T
	data []byte
}

func (g *guardReader) Read(p []byte) (int, error) {
	if len(g.data) == 0 {
		g.t.Error("the reader read past the header of an oversized frame")
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, g.data)
	g.data = g.data[n:]
	return n, nil
}

func TestOversizedFrameIsNotAllocated(t *testing.T) {
	for _, limit := range []int{0, 100} {
		hdr, err := protocol.EncodeRequest(&protocol.Request{ID: 1, Command: "ping"}, 0)
		require.NoError(t, err)
		hdr[0], hdr[1], hdr[2], hdr[3] = 0x7f, 0xff, 0xff, 0xff // 2 GiB announced
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = protocol.NewReader(&guardReader{t: t, data: hdr[:4]}, limit).ReadFrame()
		runtime.ReadMemStats(&after)
		require.ErrorIs(t, err, protocol.ErrFrameTooLarge)
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "the 2 GiB body is never allocated")
	}
}

func TestFrameLimitIsConfigurable(t *testing.T) {
	big := &protocol.Request{ID: 1, Command: "echo", Args: json.RawMessage(`{"value":"` + strings.Repeat("x", 200) + `"}`)}
	var buf bytes.Buffer
	err := protocol.NewWriter(&buf, 100).WriteRequest(big)
	require.ErrorIs(t, err, protocol.ErrFrameTooLarge)
	assert.Zero(t, buf.Len(), "an oversized frame is not written")

	require.NoError(t, protocol.NewWriter(&buf, 1000).WriteRequest(big))
	_, err = protocol.NewReader(bytes.NewReader(buf.Bytes()), 100).ReadFrame()
	assert.ErrorIs(t, err, protocol.ErrFrameTooLarge)
	body, err := protocol.NewReader(bytes.NewReader(buf.Bytes()), 1000).ReadFrame()
	require.NoError(t, err)
	assert.Len(t, body, buf.Len()-protocol.HeaderSize)
}

func TestWriterIsSafeForConcurrentUse(t *testing.T) {
	pr, pw := io.Pipe()
	w := protocol.NewWriter(pw, 0)
	const writers, each = 32, 50
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := uint64(g*each + i)
				payload := strings.Repeat(string(rune('a'+g%26)), 1+int(id%4000))
				args, _ := json.Marshal(map[string]string{"value": payload})
				assert.NoError(t, w.WriteRequest(&protocol.Request{ID: id, Command: "echo", Args: args}))
			}
		}()
	}
	go func() { wg.Wait(); pw.Close() }()

	seen := make(map[uint64]bool)
	r := protocol.NewReader(pr, 0)
	for {
		req, err := r.ReadRequest()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		var args struct{ Value string }
		require.NoError(t, json.Unmarshal(req.Args, &args))
		assert.Len(t, args.Value, 1+int(req.ID%4000), "frame %d is whole", req.ID)
		assert.False(t, seen[req.ID], "frame %d once", req.ID)
		seen[req.ID] = true
	}
	assert.Len(t, seen, writers*each)
}

func TestStringEscapingMatchesJSON(t *testing.T) {
	cases := []string{"", "plain", `quote " backslash \ slash /`, "\n\r\t\b\f\x00\x1f\x7f", "<html>&amp;", "\u2028\u2029", "héllo 世界 🎉", "bad \xff utf8 \xc3"}
	for i := range 256 {
		cases = append(cases, string(rune(i)))
	}
	for _, s := range cases {
		frame, err := protocol.EncodeRequest(&protocol.Request{ID: 1, Command: "c", Session: s + "."}, 0)
		require.NoError(t, err)
		req, err := protocol.DecodeRequest(frame[protocol.HeaderSize:])
		require.NoError(t, err, "%q", s)
		want := strings.ToValidUTF8(s, "\uFFFD") + "."
		assert.Equal(t, want, req.Session, "%q", s)
	}
	// Python's json.dumps(ensure_ascii=False) writes these bytes; so must we.
	frame, err := protocol.EncodeRequest(&protocol.Request{ID: 1, Command: "c", Session: "\x01\"\\\n<\u2028é\x7f"}, 0)
	require.NoError(t, err)
	assert.Contains(t, string(frame), `"session":"\u0001\"\\\n<`+"\u2028é\x7f"+`"`)
}

func TestUnicodeAndLargePayloads(t *testing.T) {
	for _, size := range []int{0, 1, 1 << 10, 1 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			value := strings.Repeat("é世🎉", size/9)
			require.True(t, utf8.ValidString(value))
			result, _ := json.Marshal(map[string]string{"value": value})
			frame, err := protocol.EncodeResponse(&protocol.Response{ID: 3, Success: true, Result: result}, 0)
			require.NoError(t, err)
			got, err := protocol.NewReader(bytes.NewReader(frame), 0).ReadResponse()
			require.NoError(t, err)
			assert.Equal(t, json.RawMessage(result), got.Result)
		})
	}
}
