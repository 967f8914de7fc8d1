package port

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/dspgo/dspgo/protocol"
)

// readAll reads frames from f as the reading role does (poll, fill, next)
// until the stream fails or ends, returning the bodies and the error that
// ended it.
func readAll(t *testing.T, f *frameReader) ([][]byte, error) {
	t.Helper()
	var bodies [][]byte
	for {
		body, err := f.next()
		if err != nil {
			return bodies, err
		}
		if body != nil {
			bodies = append(bodies, body)
			continue
		}
		fds := []unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			return bodies, err
		}
		if err := f.fill(); err != nil {
			return bodies, err
		}
	}
}

// writePieces writes stream to w in pieces of random sizes, then closes w.
func writePieces(w *os.File, stream []byte, seed uint64) {
	rnd := rand.New(rand.NewPCG(seed, seed))
	for len(stream) > 0 {
		n := min(len(stream), 1+rnd.IntN(3000))
		if rnd.IntN(20) == 0 {
			n = min(len(stream), 1+rnd.IntN(150_000))
		}
		_, _ = w.Write(stream[:n])
		stream = stream[n:]
	}
	_ = w.Close()
}

// TestFrameReaderPieces: frames of every size (empty, small, larger than
// the read buffer), written in random pieces, come out whole and in order,
// however the pieces fall; the stream's end between frames is io.EOF.
func TestFrameReaderPieces(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 7))
			var want [][]byte
			var stream []byte
			for range 200 {
				n := rnd.IntN(300)
				switch rnd.IntN(10) {
				case 0:
					n = 0
				case 1:
					n = frameBuffer - protocol.HeaderSize - 5 + rnd.IntN(10) // around the buffer's size
				case 2:
					n = 100_000 + rnd.IntN(200_000)
				}
				body := make([]byte, n)
				for i := range body {
					body[i] = byte(rnd.Uint32())
				}
				var err error
				stream, err = protocol.AppendFrame(stream, body, 0)
				require.NoError(t, err)
				want = append(want, body)
			}
			r, w, err := blockingPipe()
			require.NoError(t, err)
			defer r.Close()
			wrote := make(chan struct{})
			go func() { defer close(wrote); writePieces(w, stream, seed) }()
			got, err := readAll(t, newFrameReader(int(r.Fd()), 0))
			<-wrote
			assert.ErrorIs(t, err, io.EOF)
			require.Len(t, got, len(want))
			for i := range want {
				require.True(t, bytes.Equal(want[i], got[i]), "frame %d: %d bytes, want %d", i, len(got[i]), len(want[i]))
			}
		})
	}
}

// TestFrameReaderEnds: a stream that ends inside a frame, or announces one
// over the limit, fails with the codec's own error, as the protocol's
// reader words it.
func TestFrameReaderEnds(t *testing.T) {
	whole, err := protocol.AppendFrame(nil, []byte(`{"id":1}`), 0)
	require.NoError(t, err)
	big, err := protocol.AppendFrame(nil, bytes.Repeat([]byte("x"), 200_000), 0)
	require.NoError(t, err)
	cases := []struct {
		name   string
		stream []byte
		is     error
		says   string
	}{
		{"in a header", append(bytes.Clone(whole), 0, 0), protocol.ErrTruncatedHeader, "after 2 of 4 header bytes"},
		{"in a body", append(bytes.Clone(whole), whole[:7]...), protocol.ErrTruncatedBody, "after 3 of 8 body bytes"},
		{"in a body larger than the buffer", append(bytes.Clone(whole), big[:150_004]...), protocol.ErrTruncatedBody, "after 150000 of 200000 body bytes"},
		{"over the limit", append(bytes.Clone(whole), 0, 0x10, 0, 0), protocol.ErrFrameTooLarge, "over the limit of 1000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, w, err := blockingPipe()
			require.NoError(t, err)
			defer r.Close()
			wrote := make(chan struct{})
			go func() { defer close(wrote); writePieces(w, c.stream, 1) }()
			f := newFrameReader(int(r.Fd()), 1000)
			if c.is != protocol.ErrFrameTooLarge {
				f = newFrameReader(int(r.Fd()), 0)
			}
			got, err := readAll(t, f)
			<-wrote
			require.ErrorIs(t, err, c.is)
			assert.ErrorContains(t, err, c.says)
			assert.Len(t, got, 1, "the whole frame before it")
		})
	}
}
