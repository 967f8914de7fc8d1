// Package port is dspgo's single-worker backend: exactly one supervised
// worker process (the Python worker by default), or an in-memory worker
// serving a Go handler over the same framing.
//
// port.New returns an adapter whose worker has answered its init ping, or
// an error that carries the worker's exit status and the tail of its
// stderr. The worker runs in its own process group with a parent-death
// signal; a crash fails the calls in flight with CodeUnavailable and the
// worker is restarted with backoff, replaying broadcasts (configure_lm) so
// it never runs with another configuration. Close stops it with a
// shutdown frame, the end of its stdin, SIGTERM and finally SIGKILL to the
// group, and returns when every process and goroutine is gone.
package port

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/replay"
	"github.com/dspgo/dspgo/internal/wait"
	"github.com/dspgo/dspgo/internal/wire"
	"github.com/dspgo/dspgo/protocol"
)

// ErrNotSent is wrapped (with CodeUnavailable) by errors of calls that
// never reached the worker: it was down, or died before the request was
// written. Such a call can be sent to another worker without running twice.
var ErrNotSent = errors.New("port: the request was not sent to the worker")

// ErrProtocolViolation is wrapped (with CodeUnavailable) by errors of calls
// in flight on a worker that broke the protocol (docs/protocol.md, "Rules
// a host keeps"): the host killed it at once, and restarts it, rather than
// wait for answers it can no longer trust. The error's message names the
// violation.
var ErrProtocolViolation = errors.New("port: protocol violation")

// Adapter is the port backend. It is safe for concurrent use.
type Adapter struct {
	opts    Options
	python  string // resolved interpreter
	starter *starter
	sem     chan struct{}
	since   time.Time
	// timeouts bounds the calls whose context has no deadline; nil when
	// Options.CallTimeout is negative (no bound).
	timeouts *callTimeouts

	life context.Context // ends at Close
	stop context.CancelFunc
	sup  sync.WaitGroup // the supervisor

	mu         sync.Mutex
	cur        *conn         // nil while (re)starting
	ready      chan struct{} // closed when cur is set; replaced when it dies
	closed     bool
	lastErr    error       // why the worker is down
	throttled  bool        // too many restarts in the window
	restartLog []time.Time // restarts in the current window
	broadcasts replay.Log
	// turns lets one broadcast of a key run at a time (replay.Turns).
	turns replay.Turns

	// idle is notified at the end of every call, for Close's drain.
	idle wait.Signal

	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error

	counter  adapter.CallCounter
	restarts atomic.Uint64
}

var (
	_ adapter.Adapter     = (*Adapter)(nil)
	_ adapter.Statser     = (*Adapter)(nil)
	_ adapter.Broadcaster = (*Adapter)(nil)
	_ adapter.Streamer    = (*Adapter)(nil)
)

// New starts the worker and returns when it has answered its init ping.
// It fails with the worker's exit status and the tail of its stderr when
// the interpreter is missing, the worker cannot import, speaks another
// protocol version, or does not answer within Options.StartTimeout.
func New(ctx context.Context, opts Options) (*Adapter, error) {
	opts.setDefaults()
	a := &Adapter{opts: opts, sem: make(chan struct{}, opts.MaxConcurrency), since: time.Now(),
		ready: make(chan struct{}), closeDone: make(chan struct{})}
	if opts.CallTimeout > 0 {
		a.timeouts = newCallTimeouts(opts.CallTimeout)
	}
	if opts.Handler == nil {
		var err error
		if a.python, err = ResolvePython(ctx, opts.Python); err != nil {
			return nil, &adapter.Error{Code: adapter.CodeFailedPrecondition, Op: "start", Adapter: opts.Name, Err: err}
		}
		a.starter = newStarter()
	}
	a.life, a.stop = context.WithCancel(context.Background())
	c, err := a.start(ctx)
	if err != nil {
		a.stop()
		if a.starter != nil {
			a.starter.stop()
		}
		return nil, err
	}
	a.setConnLocked(c)
	a.mu.Unlock()
	a.sup.Add(1)
	go a.supervise(c)
	return a, nil
}

// Name returns the adapter's name.
func (a *Adapter) Name() string { return a.opts.Name }

// Capabilities reports the commands of the running worker and the
// adapter's features.
func (a *Adapter) Capabilities() adapter.Capabilities {
	a.mu.Lock()
	c := a.cur
	a.mu.Unlock()
	caps := adapter.Capabilities{Sessions: true, Broadcast: true, Restarts: true,
		MaxConcurrency: a.opts.MaxConcurrency, MaxFrameBytes: a.opts.MaxFrameBytes,
		Streaming: true, Tools: true} // until a worker says otherwise; both built-in workers do
	if c != nil {
		caps.Commands = c.hello.Commands
		caps.Streaming, caps.Tools = c.hello.has(protocol.FeatureStream), c.hello.has(protocol.FeatureCall)
	}
	return caps
}

// isControl reports the commands that never wait for a concurrency slot:
// the worker answers them on its reading thread.
func isControl(command string) bool {
	return command == protocol.CmdPing || command == protocol.CmdDescribe
}

// Call sends one command to the worker. The commands only the adapter
// sends its worker (protocol.Reserved: shutdown, cancel, the init ping)
// are refused with CodeInvalidArgument, as by Stream and Broadcast. When
// ctx has no deadline, Options.CallTimeout applies (rounded up by at
// most 1/64 of it or 100 ms: calls share a deadline). When ctx ends
// first, Call returns at once, a cancel frame is sent, and the late reply
// is dropped when it comes.
func (a *Adapter) Call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	a.counter.Begin()
	result, err := a.call(ctx, req)
	a.counter.End(err)
	a.idle.Notify()
	if err != nil {
		return adapter.Response{}, err
	}
	return adapter.Response{Result: result, Worker: a.opts.WorkerID}, nil
}

func (a *Adapter) call(ctx context.Context, req adapter.Request) (json.RawMessage, error) {
	return a.exchange(ctx, req, 0, nil)
}

// exchange runs req on the worker, streamed when window > 0 (see
// conn.exchange): it waits for a concurrency slot and for the worker to
// be up, and resends a request the worker died before getting.
func (a *Adapter) exchange(ctx context.Context, req adapter.Request, window int, each func(protocol.Chunk) bool) (json.RawMessage, error) {
	op := req.Command
	if err := wire.Reserved(a.opts.Name, req); err != nil {
		return nil, err // the adapter's own: never sent for a caller
	}
	if err := wire.CtxError(ctx, a.opts.Name, op); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok && a.timeouts != nil {
		var step *timeoutStep
		ctx, step = a.timeouts.bound(ctx)
		defer a.timeouts.release(step)
	}
	if !isControl(op) {
		select {
		case a.sem <- struct{}{}:
			defer func() { <-a.sem }()
		case <-ctx.Done():
			return nil, adapter.Wrap(ctx.Err(), a.opts.Name, op)
		}
	}
	for {
		c, err := a.conn(ctx, op)
		if err != nil {
			return nil, err
		}
		result, err := c.exchange(ctx, req, window, each)
		switch code := adapter.CodeOf(err); {
		case err == nil:
			return result, nil
		case err != errStopped && a.isClosed() && (code == adapter.CodeUnavailable || code == adapter.CodeCanceled && ctx.Err() == nil):
			// Close stopped the worker under the call (a shutdown cancels
			// what runs, a kill ends it): ErrClosed, not the caller's own
			// cancellation.
			return nil, wire.Closed(a.opts.Name, op)
		case errors.Is(err, ErrNotSent) && !a.opts.NoWait:
			continue // the worker died before it got the request: wait for the next one
		}
		return nil, err
	}
}

// Stream runs req on the worker as a stream (see adapter.Streamer): the
// worker may send Options.StreamWindow chunks ahead of the consumer, and
// gets more credit as the range loop takes them. Leaving the loop early
// cancels the request on the worker.
func (a *Adapter) Stream(ctx context.Context, req adapter.Request) iter.Seq2[adapter.Chunk, error] {
	return func(yield func(adapter.Chunk, error) bool) {
		a.counter.Begin()
		var seq uint64
		result, err := a.exchange(ctx, req, a.opts.StreamWindow, func(c protocol.Chunk) bool {
			seq = c.Seq + 1
			return yield(adapter.Chunk{Seq: c.Seq, Data: c.Data}, nil)
		})
		a.counter.End(err)
		a.idle.Notify()
		switch {
		case err == errStopped:
		case err != nil:
			yield(adapter.Chunk{}, err)
		default:
			yield(adapter.Chunk{Seq: seq, Response: &adapter.Response{Result: result, Worker: a.opts.WorkerID}}, nil)
		}
	}
}

func (a *Adapter) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// Broadcast records req and runs it on the worker, so that every worker
// started later (after a crash) gets it before any call: a worker never
// runs with another configuration. A later broadcast of the same command
// replaces the recorded one; for configure_lm, the one of the same LM
// name (every named LM is kept). When the worker is down (the call was not
// sent), the restarted worker gets it and Broadcast succeeds. Broadcasts
// of one key (two configure_lm of one LM name) run one after the other,
// in the order they are recorded.
func (a *Adapter) Broadcast(ctx context.Context, req adapter.Request) error {
	if err := wire.Reserved(a.opts.Name, req); err != nil {
		return err // never recorded, so never replayed
	}
	done, err := a.turns.Take(ctx, req)
	if err != nil {
		return adapter.Wrap(err, a.opts.Name, req.Command)
	}
	defer done()
	a.mu.Lock()
	undo := a.broadcasts.Record(req)
	a.mu.Unlock()
	_, err = a.Call(ctx, req)
	switch {
	case err == nil:
		return nil
	case a.isClosed():
		return err
	case errors.Is(err, ErrNotSent) || adapter.CodeOf(err) == adapter.CodeUnavailable && wire.Remote(err) == nil:
		// The worker died before or while it ran the request: the
		// restarted worker gets it from the record before any call.
		return nil
	}
	// Refused (invalid arguments, say): the record goes back to what the
	// worker runs with, unless a later broadcast replaced it meanwhile.
	a.mu.Lock()
	a.broadcasts.Restore(undo)
	a.mu.Unlock()
	return err
}

// WorkerInfo describes the adapter's worker.
type WorkerInfo struct {
	// ID is the worker's id (Options.WorkerID).
	ID string
	// PID is the worker's OS process id; 0 for an in-memory worker or
	// while none runs.
	PID int
	// State is "ready", "restarting" or "closed".
	State string
	// InFlight counts the calls waiting for the worker.
	InFlight int
	// StartedAt is when the current worker started; zero while none runs.
	StartedAt time.Time
	// Restarts counts the workers started after the first.
	Restarts uint64
	// PythonVersion is the worker's Python version, when it reports one.
	PythonVersion string
}

// Worker describes the current worker.
func (a *Adapter) Worker() WorkerInfo {
	a.mu.Lock()
	c, closed := a.cur, a.closed
	a.mu.Unlock()
	info := WorkerInfo{ID: a.opts.WorkerID, State: "restarting", Restarts: a.restarts.Load()}
	switch {
	case closed:
		info.State = "closed"
	case c != nil:
		info.State, info.PID, info.InFlight, info.StartedAt, info.PythonVersion = "ready", c.w.pid(), c.inFlight(), c.started, c.hello.PythonVersion
	}
	return info
}

// Ping sends a ping on the worker's control path: it never waits for a
// concurrency slot, and the worker answers it on its reading thread.
func (a *Adapter) Ping(ctx context.Context) error {
	_, err := a.Call(ctx, adapter.Request{Command: protocol.CmdPing})
	return err
}

// Ready reports whether the worker is running and the adapter open.
func (a *Adapter) Ready() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur != nil && !a.closed
}

// Kill kills the current worker as a crash would (SIGKILL to its process
// group, or an abrupt end of an in-memory worker). The adapter restarts
// it. For tests and operators.
func (a *Adapter) Kill() {
	a.mu.Lock()
	c := a.cur
	a.mu.Unlock()
	if c != nil {
		_ = c.w.signal(syscall.SIGKILL)
	}
}

// Stats returns the adapter's counters.
func (a *Adapter) Stats() adapter.Stats {
	a.mu.Lock()
	workers := 0
	if a.cur != nil && !a.closed {
		workers = 1
	}
	a.mu.Unlock()
	s := adapter.Stats{Adapter: a.opts.Name, Workers: workers, Restarts: a.restarts.Load(), Since: a.since}
	a.counter.Fill(&s)
	return s
}

// Close stops the worker and returns when its process, its process group
// and every goroutine of the adapter are gone. Calls in flight get until
// ctx ends (or StopGrace, when ctx has no deadline) to finish; then the
// worker gets a shutdown frame and the end of its stdin, SIGTERM after
// StopGrace and SIGKILL after another. Later calls fail with ErrClosed.
//
// Close returns nil when the worker exited with status 0 within StopGrace
// of its shutdown request, or was already down (a crash is reported to the
// calls it failed, not by Close). Otherwise it returns a CodeInternal
// error naming what it met: the signals the worker needed, a signal that
// could not be sent, its exit status and the tail of its stderr. Calls cut
// short when ctx ends fail with ErrClosed; that is not an error of Close.
// Close is idempotent: every call returns the first one's result.
func (a *Adapter) Close(ctx context.Context) error {
	a.closeOnce.Do(func() {
		defer close(a.closeDone)
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		a.stop() // wakes callers waiting for a restart, and stops restarts
		a.drain(ctx)
		if a.timeouts != nil {
			a.timeouts.close()
		}
		a.sup.Wait()
		a.mu.Lock()
		c := a.cur
		a.cur = nil
		a.mu.Unlock()
		if c != nil {
			a.closeErr = c.stop(a.opts.StopGrace)
		}
		if a.starter != nil {
			a.starter.stop()
		}
	})
	<-a.closeDone
	return a.closeErr
}

func (a *Adapter) inFlightCalls() int {
	var s adapter.Stats
	a.counter.Fill(&s)
	return s.InFlight
}

// drain waits for the calls in flight until ctx ends or, when ctx has no
// deadline, for StopGrace.
func (a *Adapter) drain(ctx context.Context) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.opts.StopGrace)
		defer cancel()
	}
	a.idle.Until(ctx, func() bool { return a.inFlightCalls() == 0 })
}
