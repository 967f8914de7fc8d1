package protocol

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// frameLimit returns the effective limit for a configured one.
func frameLimit(maxFrameBytes int) int {
	if maxFrameBytes <= 0 {
		return DefaultMaxFrameBytes
	}
	return maxFrameBytes
}

// readBufferSize is the size of a Reader's buffer: large enough that small
// frames take one read system call.
const readBufferSize = 64 << 10

// Reader reads frames from a stream. It is not safe for concurrent use: a
// stream has one reader.
type Reader struct {
	r   *bufio.Reader
	max int
	hdr [HeaderSize]byte

	stall   time.Duration // see OnStall; zero: no bound
	stalled func()
	timer   *time.Timer
}

// NewReader returns a Reader of frames from r whose bodies are at most
// maxFrameBytes long; zero means DefaultMaxFrameBytes.
func NewReader(r io.Reader, maxFrameBytes int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, readBufferSize), max: frameLimit(maxFrameBytes)}
}

// OnStall bounds how long a frame may take to arrive whole once its first
// byte has: when a frame is still incomplete d after its first byte was
// read, stalled is called, once, on a goroutine of its own. The peer began
// a frame and stopped in the middle of it, which no peer that keeps the
// protocol does; stalled typically kills the peer, so that the read in
// progress ends (with ErrTruncatedHeader or ErrTruncatedBody) instead of
// waiting for bytes that never come. Zero d, the default, means no bound.
// Call it before the first read.
func (r *Reader) OnStall(d time.Duration, stalled func()) {
	r.stall, r.stalled = d, stalled
}

// ReadFrame reads one frame and returns its body in a new slice the caller
// owns. At a clean end of stream, between frames, it returns io.EOF. A
// header over the limit fails with ErrFrameTooLarge before any of the body
// is read or allocated.
func (r *Reader) ReadFrame() ([]byte, error) {
	if r.stall <= 0 {
		return r.readFrame()
	}
	// Wait for the frame's first byte with no bound: between frames a
	// peer may be silent as long as it likes.
	if _, err := r.r.Peek(1); err != nil {
		return nil, err // io.EOF at a frame boundary: a clean end
	}
	if r.whole() {
		return r.readFrame()
	}
	if r.timer == nil {
		r.timer = time.AfterFunc(r.stall, r.stalled)
	} else {
		r.timer.Reset(r.stall)
	}
	body, err := r.readFrame()
	r.timer.Stop()
	return body, err
}

// whole reports whether the next frame is all in the buffer already.
func (r *Reader) whole() bool {
	n := r.r.Buffered()
	if n < HeaderSize {
		return false
	}
	hdr, _ := r.r.Peek(HeaderSize)
	return uint64(n-HeaderSize) >= uint64(binary.BigEndian.Uint32(hdr))
}

// BodyLen decodes a frame header (its first HeaderSize bytes): the length
// of the body it announces, or ErrFrameTooLarge, worded as Reader words
// it, when that is over maxFrameBytes (zero means DefaultMaxFrameBytes).
// It is for readers that cannot block on a stream (a Reader reads headers
// itself).
func BodyLen(hdr []byte, maxFrameBytes int) (int, error) {
	h := [HeaderSize]byte(hdr[:HeaderSize])
	n := binary.BigEndian.Uint32(h[:])
	if limit := frameLimit(maxFrameBytes); uint64(n) > uint64(limit) {
		return 0, tooLarge(h, n, limit)
	}
	return int(n), nil
}

// TruncatedHeader is the error of a stream that ended after got (fewer
// than HeaderSize) bytes of a frame's header, as Reader reports it.
func TruncatedHeader(got int) error {
	return fmt.Errorf("%w: the stream ended after %d of %d header bytes", ErrTruncatedHeader, got, HeaderSize)
}

// TruncatedBody is the error of a stream that ended after got of the n
// bytes of a frame's body, as Reader reports it.
func TruncatedBody(got, n int) error {
	return fmt.Errorf("%w: the stream ended after %d of %d body bytes", ErrTruncatedBody, got, n)
}

func (r *Reader) readFrame() ([]byte, error) {
	if got, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, TruncatedHeader(got)
		}
		return nil, err
	}
	n, err := BodyLen(r.hdr[:], r.max)
	if err != nil {
		return nil, err
	}
	body := make([]byte, n)
	if got, err := io.ReadFull(r.r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, TruncatedBody(got, n)
		}
		return nil, err
	}
	return body, nil
}

// tooLarge words ErrFrameTooLarge, recognising the commonest cause: a peer
// that writes JSON with no length header, whose first bytes then read as an
// enormous length.
func tooLarge(hdr [HeaderSize]byte, n uint32, limit int) error {
	if hdr[0] == '{' || hdr[0] == '[' {
		return fmt.Errorf("%w: header announces %d bytes (limit %d); its bytes %q look like JSON, so the peer seems to send JSON without the 4-byte length header", ErrFrameTooLarge, n, limit, hdr[:])
	}
	return fmt.Errorf("%w: header announces %d bytes, over the limit of %d", ErrFrameTooLarge, n, limit)
}

// Buffered returns the number of bytes already read from the stream and
// not yet returned: when it is zero, the next read may block.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// ReadRequest reads and decodes one request frame (see DecodeRequest).
func (r *Reader) ReadRequest() (Request, error) {
	body, err := r.ReadFrame()
	if err != nil {
		return Request{}, err
	}
	return DecodeRequest(body)
}

// ReadResponse reads and decodes one response frame (see DecodeResponse).
func (r *Reader) ReadResponse() (Response, error) {
	body, err := r.ReadFrame()
	if err != nil {
		return Response{}, err
	}
	return DecodeResponse(body)
}

// Writer writes frames to a stream. It is safe for concurrent use: each
// frame is encoded outside the lock and written whole, in one Write call,
// under it, so frames never interleave.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	max int
}

// NewWriter returns a Writer of frames to w whose bodies are at most
// maxFrameBytes long; zero means DefaultMaxFrameBytes.
func NewWriter(w io.Writer, maxFrameBytes int) *Writer {
	return &Writer{w: w, max: frameLimit(maxFrameBytes)}
}

// bufPool holds encoding buffers; buffers that grew past maxPooledBuffer are
// dropped rather than kept alive.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const maxPooledBuffer = 64 << 10

// WriteRequest encodes r and writes it as one frame. Nothing is written
// when r is invalid or over the limit.
func (w *Writer) WriteRequest(r *Request) error {
	return w.write(func(dst []byte) ([]byte, error) { return AppendRequest(dst, r, w.max) })
}

// WriteResponse encodes r and writes it as one frame. Nothing is written
// when r is invalid or over the limit.
func (w *Writer) WriteResponse(r *Response) error {
	return w.write(func(dst []byte) ([]byte, error) { return AppendResponse(dst, r, w.max) })
}

// WriteFrame writes body, which the caller has encoded, as one frame. It
// does not check the body's content: it is for messages this package does
// not model and for tests that send malformed frames on purpose.
func (w *Writer) WriteFrame(body []byte) error {
	return w.write(func(dst []byte) ([]byte, error) { return AppendFrame(dst, body, w.max) })
}

func (w *Writer) write(encode func([]byte) ([]byte, error)) error {
	bp := bufPool.Get().(*[]byte)
	frame, err := encode((*bp)[:0])
	if err == nil {
		w.mu.Lock()
		_, err = w.w.Write(frame)
		w.mu.Unlock()
	}
	if cap(frame) <= maxPooledBuffer {
		*bp = frame[:0]
		bufPool.Put(bp)
	}
	return err
}

// ReadWorkerMessage reads and decodes one frame from a worker (see
// DecodeWorkerMessage).
func (r *Reader) ReadWorkerMessage() (WorkerMessage, error) {
	body, err := r.ReadFrame()
	if err != nil {
		return WorkerMessage{}, err
	}
	return DecodeWorkerMessage(body)
}

// ReadHostMessage reads and decodes one frame from a host (see
// DecodeHostMessage).
func (r *Reader) ReadHostMessage() (HostMessage, error) {
	body, err := r.ReadFrame()
	if err != nil {
		return HostMessage{}, err
	}
	return DecodeHostMessage(body)
}

// WriteChunk encodes c and writes it as one frame.
func (w *Writer) WriteChunk(c *Chunk) error {
	return w.write(func(dst []byte) ([]byte, error) { return AppendChunk(dst, c, w.max) })
}

// WriteCredit encodes c and writes it as one frame.
func (w *Writer) WriteCredit(c *Credit) error {
	return w.write(func(dst []byte) ([]byte, error) { return AppendCredit(dst, c, w.max) })
}

// WriteCall encodes c and writes it as one frame.
func (w *Writer) WriteCall(c *Call) error {
	return w.write(func(dst []byte) ([]byte, error) { return AppendCall(dst, c, w.max) })
}

// WriteCallCancel writes {"id","kind":"cancel"} as one frame.
func (w *Writer) WriteCallCancel(id uint64) error {
	return w.write(func(dst []byte) ([]byte, error) { return AppendCallCancel(dst, id, w.max) })
}
