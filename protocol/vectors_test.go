package protocol_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/protocol"
)

// vectorFile is protocol/testdata/vectors.json, shared with the Python tests.
type vectorFile struct {
	MaxFrameBytes int      `json:"max_frame_bytes"`
	ErrorKinds    []string `json:"error_kinds"`
	Vectors       []vector `json:"vectors"`
}

type vector struct {
	Name      string          `json:"name"`
	Direction string          `json:"direction"`
	Canonical bool            `json:"canonical"`
	FrameHex  string          `json:"frame_hex"`
	Message   json.RawMessage `json:"message"`
	Error     string          `json:"error"`
}

func (v vector) frame(t *testing.T) []byte {
	t.Helper()
	b, err := hex.DecodeString(v.FrameHex)
	require.NoError(t, err)
	return b
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	data, err := os.ReadFile("testdata/vectors.json")
	require.NoError(t, err)
	var f vectorFile
	require.NoError(t, json.Unmarshal(data, &f))
	require.NotEmpty(t, f.Vectors)
	return f
}

func TestVectorsDecode(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Vectors {
		if v.Error != "" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			r := protocol.NewReader(bytes.NewReader(v.frame(t)), f.MaxFrameBytes)
			body, err := r.ReadFrame()
			require.NoError(t, err)
			assert.JSONEq(t, string(v.Message), string(body), "the body is the vector's message")
			_, err = r.ReadFrame()
			assert.ErrorIs(t, err, io.EOF, "one frame, then a clean end")

			var want map[string]any
			require.NoError(t, json.Unmarshal(v.Message, &want))
			switch v.Direction {
			case "request":
				req, err := protocol.DecodeRequest(body)
				require.NoError(t, err)
				assert.EqualValues(t, want["id"], req.ID)
				assert.Equal(t, want["command"], req.Command)
				if args, ok := want["args"]; ok && args != nil {
					var got any
					require.NoError(t, json.Unmarshal(req.Args, &got))
					assert.Equal(t, args, got)
				}
			case "response":
				resp, err := protocol.DecodeResponse(body)
				require.NoError(t, err)
				assert.EqualValues(t, want["id"], resp.ID)
				assert.Equal(t, want["success"], resp.Success)
				switch e := want["error"].(type) {
				case string:
					assert.Equal(t, &protocol.ErrorBody{Code: "unknown", Message: e}, resp.Error, "legacy string error")
				case map[string]any:
					require.NotNil(t, resp.Error)
					assert.Equal(t, e["code"], resp.Error.Code)
					assert.Equal(t, e["message"], resp.Error.Message)
				default:
					var got any
					require.NoError(t, json.Unmarshal(resp.Result, &got))
					assert.Equal(t, want["result"], got)
				}
			default:
				t.Fatalf("vector %s has no direction", v.Name)
			}
		})
	}
}

// canonicalMessage mirrors a vector's message with raw args and result, so
// their key order survives.
type canonicalMessage struct {
	ID         uint64          `json:"id"`
	Command    string          `json:"command"`
	Args       json.RawMessage `json:"args"`
	Session    string          `json:"session"`
	DeadlineMS int64           `json:"deadline_ms"`
	Success    bool            `json:"success"`
	Result     json.RawMessage `json:"result"`
	Error      *struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Type      string `json:"type"`
		Traceback string `json:"traceback"`
	} `json:"error"`
}

func compact(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	if raw == nil {
		return nil
	}
	var b bytes.Buffer
	require.NoError(t, json.Compact(&b, raw))
	return b.Bytes()
}

func TestVectorsEncodeCanonical(t *testing.T) {
	f := loadVectors(t)
	n := 0
	for _, v := range f.Vectors {
		if !v.Canonical {
			continue
		}
		n++
		t.Run(v.Name, func(t *testing.T) {
			var m canonicalMessage
			require.NoError(t, json.Unmarshal(v.Message, &m))
			var (
				got []byte
				err error
			)
			if v.Direction == "request" {
				got, err = protocol.EncodeRequest(&protocol.Request{
					ID: m.ID, Command: m.Command, Args: compact(t, m.Args), Session: m.Session, DeadlineMS: m.DeadlineMS,
				}, f.MaxFrameBytes)
			} else {
				resp := &protocol.Response{ID: m.ID, Success: m.Success, Result: compact(t, m.Result)}
				if m.Error != nil {
					resp.Error = &protocol.ErrorBody{Code: m.Error.Code, Message: m.Error.Message, Type: m.Error.Type, Traceback: m.Error.Traceback}
				}
				got, err = protocol.EncodeResponse(resp, f.MaxFrameBytes)
			}
			require.NoError(t, err)
			assert.Equal(t, v.FrameHex, hex.EncodeToString(got), "byte for byte")
		})
	}
	assert.NotZero(t, n, "there are canonical vectors")
}

func TestVectorsErrors(t *testing.T) {
	f := loadVectors(t)
	seen := map[string]bool{}
	for _, v := range f.Vectors {
		if v.Error == "" {
			continue
		}
		seen[v.Error] = true
		t.Run(v.Name, func(t *testing.T) {
			r := protocol.NewReader(bytes.NewReader(v.frame(t)), f.MaxFrameBytes)
			body, err := r.ReadFrame()
			if err == nil {
				_, err = protocol.DecodeRequest(body)
			}
			require.Error(t, err)
			assert.Equal(t, v.Error, protocol.ErrorKind(err), "error: %v", err)

			if err == nil || body == nil {
				return
			}
			// The same frame read as a response fails the same way.
			_, rerr := protocol.DecodeResponse(body)
			assert.Equal(t, v.Error, protocol.ErrorKind(rerr))
		})
	}
	for _, kind := range f.ErrorKinds {
		assert.True(t, seen[kind], "a vector covers %s", kind)
	}
}

func TestRawJSONWithoutHeaderIsExplained(t *testing.T) {
	// The predecessor's tests wrote JSON with no length header (the seed's
	// Pattern 1). The reader must say so, not wait for 2 GB.
	r := protocol.NewReader(bytes.NewReader([]byte(`{"id":1,"command":"ping"}`)), 0)
	_, err := r.ReadFrame()
	require.ErrorIs(t, err, protocol.ErrFrameTooLarge)
	assert.Contains(t, err.Error(), "without the 4-byte length header")
	assert.False(t, protocol.Recoverable(err))
}

func TestRecoverable(t *testing.T) {
	for _, err := range []error{protocol.ErrTruncatedHeader, protocol.ErrTruncatedBody, protocol.ErrFrameTooLarge, io.ErrClosedPipe, errors.New("x")} {
		assert.False(t, protocol.Recoverable(err), "%v", err)
	}
	for _, err := range []error{protocol.ErrInvalidUTF8, protocol.ErrInvalidJSON, protocol.ErrNotObject, protocol.ErrMissingID, protocol.ErrInvalidID, protocol.ErrInvalidField, protocol.ErrUnsupportedKind} {
		assert.True(t, protocol.Recoverable(err), "%v", err)
	}
	assert.Equal(t, "", protocol.ErrorKind(io.EOF))
}
