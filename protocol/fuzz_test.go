package protocol_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	"github.com/dspgo/dspgo/protocol"
)

// FuzzReadFrame feeds arbitrary streams to the reader and decoders. They
// must never panic, must fail only with the package's own error kinds, and
// whatever decodes must re-encode to a frame that decodes to the same
// message. The shared vectors are its seed corpus, so `go test` runs them.
func FuzzReadFrame(f *testing.F) {
	for _, v := range loadVectors(f).Vectors {
		b, err := hex.DecodeString(v.FrameHex)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := protocol.NewReader(bytes.NewReader(stream), 1<<16)
		for {
			body, err := r.ReadFrame()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				if protocol.ErrorKind(err) == "" || protocol.Recoverable(err) {
					t.Fatalf("ReadFrame failed with an unexpected error: %v", err)
				}
				return
			}
			checkRequest(t, body)
			checkResponse(t, body)
		}
	})
}

func checkRequest(t *testing.T, body []byte) {
	req, err := protocol.DecodeRequest(body)
	if err != nil {
		if !protocol.Recoverable(err) {
			t.Fatalf("DecodeRequest: %v is not a content error", err)
		}
		return
	}
	frame, err := protocol.EncodeRequest(&req, 1<<17)
	if err != nil {
		t.Fatalf("a decoded request does not re-encode: %v", err)
	}
	again, err := protocol.DecodeRequest(frame[protocol.HeaderSize:])
	if err != nil {
		t.Fatalf("a re-encoded request does not decode: %v", err)
	}
	if again.ID != req.ID || again.Command != req.Command || again.Session != req.Session || again.DeadlineMS != req.DeadlineMS {
		t.Fatalf("round trip changed the request: %+v != %+v", again, req)
	}
}

func checkResponse(t *testing.T, body []byte) {
	resp, err := protocol.DecodeResponse(body)
	if err != nil {
		if !protocol.Recoverable(err) {
			t.Fatalf("DecodeResponse: %v is not a content error", err)
		}
		return
	}
	frame, err := protocol.EncodeResponse(&resp, 1<<17)
	if err != nil {
		t.Fatalf("a decoded response does not re-encode: %v", err)
	}
	again, err := protocol.DecodeResponse(frame[protocol.HeaderSize:])
	if err != nil {
		t.Fatalf("a re-encoded response does not decode: %v", err)
	}
	if again.ID != resp.ID || again.Success != resp.Success {
		t.Fatalf("round trip changed the response: %+v != %+v", again, resp)
	}
}
