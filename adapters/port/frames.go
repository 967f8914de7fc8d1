package port

import (
	"bytes"
	"errors"
	"io"
	"os"
	"syscall"

	"github.com/dspgo/dspgo/protocol"
)

// frameReader reads the worker's frames from the response pipe in steps
// that never block: next returns a frame only when it is whole in memory,
// and fill reads once what the pipe holds (its caller polls first). A
// frame that arrives in pieces is kept between steps, so whoever holds the
// reading role can stop between any two steps and another can go on where
// it stopped: no byte is lost or read twice. It is not safe for concurrent
// use; the reading role serialises it (see readrole.go).
type frameReader struct {
	fd  int
	max int // the frame limit

	buf  []byte // buf[r:w] is read and not yet returned
	r, w int

	// big is the body of a frame too large for buf, filled straight from
	// the pipe; its header is consumed. nil when no such frame is under way.
	big    []byte
	bigGot int

	frames uint64 // frames returned so far: a frame's number while it arrives
}

// frameBuffer is the read buffer's size: a small frame, or many, in one read.
const frameBuffer = 64 << 10

func newFrameReader(fd, maxFrame int) *frameReader {
	if maxFrame <= 0 {
		maxFrame = protocol.DefaultMaxFrameBytes
	}
	return &frameReader{fd: fd, max: maxFrame, buf: make([]byte, frameBuffer)}
}

// next returns the next whole frame's body, a new slice the caller owns,
// or nil when the rest of it is still to be read. A header over the limit
// is an error (the stream is out of step), reported as the protocol's
// reader reports it.
func (f *frameReader) next() ([]byte, error) {
	if f.big != nil {
		if f.bigGot < len(f.big) {
			return nil, nil
		}
		body := f.big
		f.big, f.bigGot = nil, 0
		f.frames++
		return body, nil
	}
	if f.w-f.r < protocol.HeaderSize {
		return nil, nil
	}
	n, err := protocol.BodyLen(f.buf[f.r:f.w], f.max)
	if err != nil {
		return nil, err // the stream is out of step
	}
	end := f.r + protocol.HeaderSize + n
	if end <= f.w {
		body := bytes.Clone(f.buf[f.r+protocol.HeaderSize : end])
		if body == nil {
			body = []byte{}
		}
		f.r = end
		f.frames++
		return body, nil
	}
	if protocol.HeaderSize+n > len(f.buf) {
		// Too large for the buffer: the body is read straight into its
		// own slice, starting with what is buffered.
		f.big = make([]byte, n)
		f.bigGot = copy(f.big, f.buf[f.r+protocol.HeaderSize:f.w])
		f.r, f.w = 0, 0
	}
	return nil, nil
}

// partial reports whether a frame has begun and is not whole yet.
func (f *frameReader) partial() bool { return f.big != nil || f.w > f.r }

// fill reads once from the pipe, which must be readable (the caller
// polled it): it never blocks then. At the end of the stream it returns
// io.EOF between frames, and the protocol's truncation error inside one.
func (f *frameReader) fill() error {
	var dst []byte
	if f.big != nil {
		dst = f.big[f.bigGot:]
	} else {
		// The frame under way must fit from f.r to the end of buf (next has
		// moved a larger one to big): else move it to the front.
		need := protocol.HeaderSize
		if f.w-f.r >= protocol.HeaderSize {
			n, _ := protocol.BodyLen(f.buf[f.r:f.w], f.max) // over the limit: next says so
			need += n
		}
		if f.r == f.w || f.r+need > len(f.buf) {
			f.w = copy(f.buf, f.buf[f.r:f.w])
			f.r = 0
		}
		dst = f.buf[f.w:]
	}
	n, err := syscall.Read(f.fd, dst)
	switch {
	case errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN):
		return nil // nothing this time: the caller polls again
	case err != nil:
		return os.NewSyscallError("read", err)
	case n == 0:
		if !f.partial() {
			return io.EOF
		}
		return f.codecError()
	}
	if f.big != nil {
		f.bigGot += n
	} else {
		f.w += n
	}
	return nil
}

// codecError is the error of the stream's end inside the frame under way:
// a truncated header or body, worded by the protocol.
func (f *frameReader) codecError() error {
	if f.big != nil {
		return protocol.TruncatedBody(f.bigGot, len(f.big))
	}
	rest := f.buf[f.r:f.w]
	if len(rest) < protocol.HeaderSize {
		return protocol.TruncatedHeader(len(rest))
	}
	n, err := protocol.BodyLen(rest, f.max)
	if err != nil {
		return err
	}
	return protocol.TruncatedBody(len(rest)-protocol.HeaderSize, n)
}
