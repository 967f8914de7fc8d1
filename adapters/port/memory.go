package port

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dspgo/dspgo/protocol"
)

// memWorker serves a protocol.Handler over in-memory streams with the same
// codec a process uses: requests are decoded from frames, each runs in its
// own goroutine with a context that cancel frames, deadlines and the end
// of the worker cancel, and responses are encoded as frames. It is the
// protocol test layer: framing, correlation, cancellation and limits with
// no Python.
type memWorker struct {
	h   protocol.Handler
	max int

	hostIn, workerIn   net.Conn // requests: host writes hostIn, worker reads workerIn
	hostOut, workerOut net.Conn // responses: worker writes workerOut, host reads hostOut

	ctx    context.Context // ends when the worker stops, cancelling handlers
	cancel context.CancelFunc

	mu       sync.Mutex
	inFlight map[uint64]context.CancelFunc
	handlers sync.WaitGroup
	sem      chan struct{}

	killed atomic.Bool
	done   chan struct{}
	status string
	tail   *tail
}

func startMemory(h protocol.Handler, maxFrame, concurrency int) *memWorker {
	m := &memWorker{h: h, max: maxFrame, inFlight: map[uint64]context.CancelFunc{},
		sem: make(chan struct{}, concurrency), done: make(chan struct{}), tail: newTail(1024)}
	m.hostIn, m.workerIn = net.Pipe()
	m.workerOut, m.hostOut = net.Pipe()
	m.ctx, m.cancel = context.WithCancel(context.Background())
	go m.serve()
	return m
}

func (m *memWorker) stdin() writeDeadliner   { return m.hostIn }
func (m *memWorker) stdout() io.Reader       { return m.hostOut }
func (m *memWorker) pid() int                { return 0 }
func (m *memWorker) exited() <-chan struct{} { return m.done }
func (m *memWorker) exitStatus() string      { return m.status }
func (m *memWorker) stderrTail() string      { return m.tail.String() }

func (m *memWorker) closeStdin() error { return m.hostIn.Close() }

// signal with SIGKILL ends the worker at once, as a crash: streams closed,
// handlers cancelled, nothing more answered. Other signals stop it as
// end of input does.
func (m *memWorker) signal(sig syscall.Signal) {
	if sig == syscall.SIGKILL {
		m.killed.Store(true)
		m.cancel()
		_ = m.workerOut.Close()
	}
	_ = m.workerIn.Close()
}

func (m *memWorker) release() {
	_ = m.hostIn.Close()
	_ = m.hostOut.Close()
}

// serve reads requests until the stream ends, then waits for the handlers
// and closes the response stream, as a process exits.
func (m *memWorker) serve() {
	r := protocol.NewReader(m.workerIn, m.max)
	w := protocol.NewWriter(m.workerOut, m.max)
	status := "exit status 0"
	for {
		req, err := r.ReadRequest()
		switch {
		case errors.Is(err, protocol.ErrInvalidField):
			m.reply(w, protocol.Response{ID: req.ID, Error: &protocol.ErrorBody{Code: "invalid_argument", Message: err.Error()}})
			continue
		case errors.Is(err, protocol.ErrUnsupportedKind):
			m.reply(w, protocol.Response{ID: req.ID, Error: &protocol.ErrorBody{Code: "unimplemented", Message: err.Error()}})
			continue
		case protocol.Recoverable(err):
			continue // no readable id: nothing to answer
		case err != nil:
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
				status = "exit status 3" // a protocol violation by the host, as the Python worker exits
				_, _ = m.tail.Write([]byte(err.Error() + "\n"))
			}
		case req.Command == "cancel":
			m.reply(w, m.cancelRequest(req))
			continue
		case req.Command == "shutdown":
			m.reply(w, protocol.Response{ID: req.ID, Success: true, Result: json.RawMessage(`{"stopping":true}`)})
		default:
			m.start(w, req)
			continue
		}
		break
	}
	m.cancel()
	m.handlers.Wait()
	if m.killed.Load() {
		status = "signal: killed"
	}
	m.status = status
	_ = m.workerOut.Close()
	_ = m.workerIn.Close()
	close(m.done)
}

func (m *memWorker) start(w *protocol.Writer, req protocol.Request) {
	ctx, cancel := context.WithCancel(m.ctx)
	if req.DeadlineMS > 0 {
		ctx, cancel = context.WithTimeout(m.ctx, time.Duration(req.DeadlineMS)*time.Millisecond)
	}
	m.mu.Lock()
	m.inFlight[req.ID] = cancel
	m.mu.Unlock()
	m.handlers.Add(1)
	go func() {
		defer m.handlers.Done()
		defer func() {
			m.mu.Lock()
			delete(m.inFlight, req.ID)
			m.mu.Unlock()
			cancel()
		}()
		if req.Command != "ping" && req.Command != "describe" {
			select {
			case m.sem <- struct{}{}:
				defer func() { <-m.sem }()
			case <-ctx.Done():
			}
		}
		resp := m.h.Handle(ctx, req)
		resp.ID = req.ID
		m.reply(w, resp)
	}()
}

func (m *memWorker) cancelRequest(req protocol.Request) protocol.Response {
	var args struct {
		ID uint64 `json:"id"`
	}
	_ = json.Unmarshal(req.Args, &args)
	m.mu.Lock()
	cancel, ok := m.inFlight[args.ID]
	m.mu.Unlock()
	state := "unknown"
	if ok {
		cancel()
		state = "running"
	}
	result, _ := json.Marshal(map[string]any{"id": args.ID, "state": state})
	return protocol.Response{ID: req.ID, Success: true, Result: result}
}

// reply writes a response; one too large for a frame becomes an error, as
// the Python worker answers.
func (m *memWorker) reply(w *protocol.Writer, resp protocol.Response) {
	err := w.WriteResponse(&resp)
	if errors.Is(err, protocol.ErrFrameTooLarge) {
		err = w.WriteResponse(&protocol.Response{ID: resp.ID, Error: &protocol.ErrorBody{Code: "resource_exhausted", Message: "response too large: " + err.Error()}})
	}
	_ = err // a closed stream: the host has gone
}
