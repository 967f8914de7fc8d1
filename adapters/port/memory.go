package port

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dspgo/dspgo/internal/credit"
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

	hostIn, workerIn net.Conn // requests: host writes hostIn, worker reads workerIn
	// Responses: the worker writes workerOut, the host reads hostOut. An OS
	// pipe, as a process's: the host's reading role polls it.
	hostOut, workerOut *os.File

	ctx    context.Context // ends when the worker stops, cancelling handlers
	cancel context.CancelFunc

	mu       sync.Mutex
	inFlight map[uint64]context.CancelFunc
	streams  map[uint64]*memStream             // streamed requests, by id
	calls    map[uint64]chan protocol.Response // the worker's calls to host tools, by call id
	nextCall atomic.Uint64
	handlers sync.WaitGroup
	sem      chan struct{}

	killed atomic.Bool
	done   chan struct{}
	status string
	tail   *tail
}

func startMemory(h protocol.Handler, maxFrame, concurrency int) (*memWorker, error) {
	m := &memWorker{h: h, max: maxFrame, inFlight: map[uint64]context.CancelFunc{},
		streams: map[uint64]*memStream{}, calls: map[uint64]chan protocol.Response{},
		sem: make(chan struct{}, concurrency), done: make(chan struct{}), tail: newTail(1024)}
	var err error
	if m.hostOut, m.workerOut, err = memoryPipe(); err != nil {
		return nil, err
	}
	m.hostIn, m.workerIn = net.Pipe()
	m.ctx, m.cancel = context.WithCancel(context.Background())
	go m.serve()
	return m, nil
}

// memoryPipe returns the response pipe of an in-memory worker: the host's
// end blocking (see blockingPipe), the worker's in the runtime's poller,
// so that closing it (a kill) ends a write blocked on a full pipe.
func memoryPipe() (r, w *os.File, err error) {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	if err := syscall.SetNonblock(fds[1], true); err != nil {
		_, _ = syscall.Close(fds[0]), syscall.Close(fds[1])
		return nil, nil, os.NewSyscallError("setnonblock", err)
	}
	// NewFile puts a descriptor in non-blocking mode in the poller.
	return os.NewFile(uintptr(fds[0]), "|0"), os.NewFile(uintptr(fds[1]), "|1"), nil
}

func (m *memWorker) stdin() writeDeadliner   { return m.hostIn }
func (m *memWorker) responses() int          { return int(m.hostOut.Fd()) }
func (m *memWorker) pid() int                { return 0 }
func (m *memWorker) exited() <-chan struct{} { return m.done }
func (m *memWorker) exitStatus() string      { return m.status }
func (m *memWorker) stderrTail() string      { return m.tail.String() }

func (m *memWorker) closeStdin() error { return m.hostIn.Close() }

// signal with SIGKILL ends the worker at once, as a crash: streams closed,
// handlers cancelled, nothing more answered. Other signals stop it as
// end of input does.
func (m *memWorker) signal(sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		m.killed.Store(true)
		m.cancel()
		_ = m.workerOut.Close()
	}
	_ = m.workerIn.Close()
	return nil
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
	status := exitOK
	for {
		msg, err := r.ReadHostMessage()
		req := msg.Request
		if req.ID == 0 {
			req.ID = msg.ID
		}
		switch {
		case errors.Is(err, protocol.ErrInvalidField):
			m.reply(w, protocol.Response{ID: req.ID, Error: &protocol.ErrorBody{Code: "invalid_argument", Message: err.Error()}})
			continue
		case errors.Is(err, protocol.ErrUnsupportedKind):
			m.reply(w, protocol.Response{ID: req.ID, Error: &protocol.ErrorBody{Code: "unimplemented", Message: err.Error()}})
			continue
		case errors.Is(err, protocol.ErrInvalidUTF8) && protocol.Answerable(err):
			// Bytes that are not UTF-8, but the id is readable: answered,
			// as the Python worker answers it, so nobody waits.
			refusal := &protocol.ErrorBody{Code: "invalid_argument", Message: err.Error()}
			switch msg.Kind {
			case "":
				m.reply(w, protocol.Response{ID: msg.ID, Error: refusal})
			case protocol.KindResult:
				m.finishCall(msg.ID, protocol.Response{ID: msg.ID, Error: refusal})
			}
			continue
		case protocol.Recoverable(err):
			continue // no readable id: nothing to answer
		case err != nil:
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
				status = "exit status 3" // a protocol violation by the host, as the Python worker exits
				_, _ = m.tail.Write([]byte(err.Error() + "\n"))
			}
		case msg.Kind == protocol.KindCredit:
			m.grant(msg.Credit)
			continue
		case msg.Kind == protocol.KindResult:
			m.finishCall(msg.ID, msg.Result)
			continue
		case req.Command == protocol.CmdCancel:
			m.reply(w, m.cancelRequest(req))
			continue
		case req.Command == protocol.CmdShutdown:
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
	var ctx context.Context
	var cancel context.CancelFunc
	if req.DeadlineMS > 0 {
		ctx, cancel = context.WithTimeout(m.ctx, time.Duration(req.DeadlineMS)*time.Millisecond)
	} else {
		ctx, cancel = context.WithCancel(m.ctx) // one context per request: none left behind
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
		if req.Command != protocol.CmdPing && req.Command != protocol.CmdDescribe {
			select {
			case m.sem <- struct{}{}:
				defer func() { <-m.sem }()
			case <-ctx.Done():
			}
		}
		var st *memStream
		if req.Stream > 0 {
			st = &memStream{credit: credit.New(req.Stream)}
			m.mu.Lock()
			m.streams[req.ID] = st
			m.mu.Unlock()
			ctx = protocol.WithEmit(ctx, m.emitter(ctx, w, req.ID, st))
		}
		ctx = protocol.WithToolCaller(ctx, m.toolCaller(w, req.ID))
		resp := m.h.Handle(ctx, req)
		resp.ID = req.ID
		if st != nil {
			m.mu.Lock()
			delete(m.streams, req.ID)
			resp.Streamed, resp.Chunks = true, st.seq
			st.done = true // no chunk after the final response
			m.mu.Unlock()
		}
		m.reply(w, resp)
	}()
}

// finishCall hands a call to a host tool its result; a call no longer
// waited for is ignored.
func (m *memWorker) finishCall(id uint64, result protocol.Response) {
	m.mu.Lock()
	ch := m.calls[id]
	delete(m.calls, id)
	m.mu.Unlock()
	if ch != nil {
		ch <- result // buffered
	}
}

// memStream is a streamed request's credit and count.
type memStream struct {
	credit *credit.Window
	seq    uint64 // chunks sent; under memWorker.mu
	done   bool   // the final response is out; under memWorker.mu
}

func (m *memWorker) grant(c protocol.Credit) {
	m.mu.Lock()
	st := m.streams[c.ID]
	m.mu.Unlock()
	if st != nil {
		st.credit.Add(c.Credit)
	}
}

// emitter sends a streamed request's chunks, waiting for credit, as the
// worker protocol requires.
func (m *memWorker) emitter(ctx context.Context, w *protocol.Writer, id uint64, st *memStream) protocol.Emit {
	return func(data json.RawMessage) error {
		if err := st.credit.Take(ctx); err != nil {
			return err
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if st.done {
			return context.Canceled
		}
		seq := st.seq
		st.seq++
		return w.WriteChunk(&protocol.Chunk{ID: id, Seq: seq, Data: data}) // under mu: in seq order, never after the final response
	}
}

// toolCaller calls host tools for request parent: a call frame out, the
// result frame back; the request's end stops the wait, and the host is
// told.
func (m *memWorker) toolCaller(w *protocol.Writer, parent uint64) protocol.ToolCaller {
	return func(ctx context.Context, tool string, args json.RawMessage) (json.RawMessage, error) {
		id := m.nextCall.Add(1)
		ch := make(chan protocol.Response, 1)
		m.mu.Lock()
		m.calls[id] = ch
		m.mu.Unlock()
		forget := func() {
			m.mu.Lock()
			delete(m.calls, id)
			m.mu.Unlock()
		}
		if err := w.WriteCall(&protocol.Call{ID: id, Parent: parent, Tool: tool, Args: args}); err != nil {
			forget()
			return nil, err
		}
		select {
		case r := <-ch:
			if !r.Success {
				return nil, &protocol.ToolError{Body: *r.Error}
			}
			return r.Result, nil
		case <-ctx.Done():
			forget()
			_ = w.WriteCallCancel(id)
			return nil, ctx.Err()
		}
	}
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
