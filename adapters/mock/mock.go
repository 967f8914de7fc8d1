// Package mock is dspgo's in-process backend: a Go implementation of the
// worker command set with the deterministic dummy language model, and
// fault injection for tests.
//
// mock.New returns an adapter that is ready at once: no process, no
// goroutine, nothing global to start or forget. Two mocks never share
// state. Every call travels through the real codec (the request and the
// response are encoded as frames and decoded again), so frame limits and
// malformed arguments fail here exactly as they do on a worker process.
package mock

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/wire"
	"github.com/dspgo/dspgo/protocol"
)

// Name is the mock's registered name.
const Name = "mock"

// Options configure a mock adapter. The zero value is ready to use.
type Options struct {
	// Name is the adapter's name in errors and stats. Empty means "mock".
	Name string

	// WorkerID names the mock's single worker in responses. Empty means
	// "mock".
	WorkerID string

	// MaxFrameBytes is the largest request or response body, as for a
	// worker process. Zero means protocol.DefaultMaxFrameBytes (16 MiB).
	MaxFrameBytes int

	// MaxSpecs bounds the compiled-spec cache. Zero means 4096.
	MaxSpecs int

	// MaxCallLog bounds the call log; past it the oldest half is dropped.
	// Zero means 10,000 calls.
	MaxCallLog int

	// Seed seeds the random source of Fault.FailRate, so runs repeat.
	// Zero is a valid seed.
	Seed uint64
}

// Fault describes faults injected into calls of one command.
type Fault struct {
	// Command is the command the fault applies to. Empty means every
	// command (a fault for a named command takes precedence).
	Command string

	// Latency delays each call by this long before it runs, honouring the
	// caller's context. Calls are not serialised by it. Zero means none.
	Latency time.Duration

	// FailNext fails the next FailNext calls with Code.
	FailNext int

	// FailRate fails this fraction (0 to 1) of calls with Code, drawn
	// from the seeded random source. Zero means none.
	FailRate float64

	// Code is the code of injected failures. Zero means
	// adapter.CodeUnavailable.
	Code adapter.Code

	// Hang blocks each call until its context ends or the adapter is
	// closed.
	Hang bool
}

// Call is one entry of the call log.
type Call struct {
	// Command and Session are the request's.
	Command string
	Session string
	// Args are the request's arguments.
	Args json.RawMessage
	// Code is the outcome: adapter.CodeOK or the error's code.
	Code adapter.Code
	// Start is when the call began; Duration how long it took.
	Start    time.Time
	Duration time.Duration
}

// Adapter is the mock backend. It is safe for concurrent use.
type Adapter struct {
	name    string
	worker  string
	max     int
	handler *Handler
	since   time.Time
	maxLog  int
	life    context.Context // cancelled by Close, ending calls in flight
	end     context.CancelFunc

	mu       sync.Mutex
	faults   map[string]*Fault
	rng      *rand.Rand
	crashed  bool
	closed   bool
	log      []Call
	restarts uint64

	counter adapter.CallCounter
}

var (
	_ adapter.Adapter  = (*Adapter)(nil)
	_ adapter.Statser  = (*Adapter)(nil)
	_ adapter.Streamer = (*Adapter)(nil)
)

// New returns a mock adapter, ready to use.
func New(opts Options) *Adapter {
	if opts.Name == "" {
		opts.Name = Name
	}
	if opts.WorkerID == "" {
		opts.WorkerID = "mock"
	}
	if opts.MaxFrameBytes <= 0 {
		opts.MaxFrameBytes = protocol.DefaultMaxFrameBytes
	}
	if opts.MaxCallLog <= 0 {
		opts.MaxCallLog = 10_000
	}
	life, end := context.WithCancel(context.Background())
	return &Adapter{
		name:    opts.Name,
		worker:  opts.WorkerID,
		max:     opts.MaxFrameBytes,
		handler: NewHandler(HandlerOptions{WorkerID: opts.WorkerID, MaxSpecs: opts.MaxSpecs}),
		since:   time.Now(),
		maxLog:  opts.MaxCallLog,
		life:    life,
		end:     end,
		faults:  map[string]*Fault{},
		rng:     rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
	}
}

// Name returns the adapter's name.
func (a *Adapter) Name() string { return a.name }

// Capabilities reports the mock's features.
func (a *Adapter) Capabilities() adapter.Capabilities {
	return adapter.Capabilities{
		Commands:       Commands(),
		Sessions:       true,
		FaultInjection: true,
		MaxFrameBytes:  a.max,
		Streaming:      true,
		Tools:          true,
	}
}

// Handler returns the mock's command-set handler, for serving it over an
// in-memory stream.
func (a *Adapter) Handler() *Handler { return a.handler }

// Call runs one command of the command set. The commands only a host
// sends its worker (protocol.Reserved: shutdown, cancel, the init ping)
// are refused with CodeInvalidArgument, as on every backend.
func (a *Adapter) Call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	start := time.Now()
	a.counter.Begin()
	resp, err := a.call(ctx, req)
	a.counter.End(err)
	a.mu.Lock()
	if len(a.log) >= a.maxLog {
		a.log = append(a.log[:0], a.log[len(a.log)/2:]...)
	}
	a.log = append(a.log, Call{Command: req.Command, Session: req.Session, Args: req.Args,
		Code: adapter.CodeOf(err), Start: start, Duration: time.Since(start)})
	a.mu.Unlock()
	return resp, err
}

func (a *Adapter) call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	op := req.Command
	if err := wire.Reserved(a.name, req); err != nil {
		return adapter.Response{}, err
	}
	if err := a.state(); err != nil {
		return adapter.Response{}, a.wrap(err, op)
	}
	if err := wire.CtxError(ctx, a.name, op); err != nil {
		return adapter.Response{}, err
	}
	// Close ends the calls in flight, as stopping a worker would.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(a.life, cancel)()
	resp, err := a.serve(ctx, req)
	if err != nil && a.life.Err() != nil {
		return resp, wire.Closed(a.name, op)
	}
	return resp, a.wrap(err, op)
}

func (a *Adapter) serve(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	op := req.Command
	if err := a.injected(ctx, op); err != nil {
		return adapter.Response{}, err
	}

	// The request goes through the codec as it would to a worker.
	frame, err := protocol.EncodeRequest(&protocol.Request{Command: req.Command, Args: req.Args, Session: req.Session}, a.max)
	if err != nil {
		return adapter.Response{}, a.codecError(err, op)
	}
	preq, err := protocol.DecodeRequest(frame[protocol.HeaderSize:])
	if err != nil {
		return adapter.Response{}, a.codecError(err, op)
	}
	presp := a.handler.Handle(withTools(ctx, req.Tools), preq)
	if frame, err = protocol.EncodeResponse(&presp, a.max); err != nil {
		return adapter.Response{}, a.codecError(err, op)
	}
	if presp, err = protocol.DecodeResponse(frame[protocol.HeaderSize:]); err != nil {
		return adapter.Response{}, a.codecError(err, op)
	}
	if !presp.Success {
		return adapter.Response{}, wire.Error(a.name, op, presp.Error)
	}
	return adapter.Response{Result: presp.Result, Worker: a.worker}, nil
}

func (a *Adapter) wrap(err error, op string) error { return adapter.Wrap(err, a.name, op) }

// codecError maps a codec failure: an oversized frame is
// CodeResourceExhausted, anything else a bad request.
func (a *Adapter) codecError(err error, op string) error {
	code := adapter.CodeInvalidArgument
	if protocol.ErrorKind(err) == "frame_too_large" {
		code = adapter.CodeResourceExhausted
	}
	return &adapter.Error{Code: code, Op: op, Adapter: a.name, Err: err}
}

// state returns ErrClosed after Close and an unavailable error while
// crashed.
func (a *Adapter) state() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed:
		return adapter.ErrClosed
	case a.crashed:
		return adapter.Errorf(adapter.CodeUnavailable, "the mock worker has crashed (injected); call Restart")
	}
	return nil
}

// injected applies the fault for op: latency, hang, and failures.
func (a *Adapter) injected(ctx context.Context, op string) error {
	a.mu.Lock()
	f := a.faults[op]
	if f == nil {
		f = a.faults[""]
	}
	if f == nil {
		a.mu.Unlock()
		return nil
	}
	latency, hang := f.Latency, f.Hang
	fail := false
	if f.FailNext > 0 {
		f.FailNext--
		fail = true
	} else if f.FailRate > 0 && a.rng.Float64() < f.FailRate {
		fail = true
	}
	code := f.Code
	a.mu.Unlock()

	if latency > 0 || hang {
		var timer <-chan time.Time
		if !hang {
			t := time.NewTimer(latency)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-timer:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		if code == adapter.CodeOK {
			code = adapter.CodeUnavailable
		}
		return adapter.Errorf(code, "injected failure of %s", op)
	}
	return nil
}

// Inject sets the fault for f.Command, replacing any earlier one for it.
func (a *Adapter) Inject(f Fault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults[f.Command] = &f
}

// ClearFaults removes every injected fault.
func (a *Adapter) ClearFaults() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = map[string]*Fault{}
}

// Crash makes every call fail with CodeUnavailable until Restart, as a
// crashed worker would.
func (a *Adapter) Crash() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.crashed = true
}

// Restart ends a Crash. As a restarted worker, the mock comes back with
// no compiled programs and the dummy LM; the client resends specs.
func (a *Adapter) Restart() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.crashed {
		a.crashed = false
		a.restarts++
		a.handler.mu.Lock()
		a.handler.resetLocked()
		a.handler.mu.Unlock()
	}
}

// Calls returns a copy of the call log, oldest first.
func (a *Adapter) Calls() []Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Call(nil), a.log...)
}

// Reset clears the call log, every fault and a crash, and the command
// set's state (programs, LM, counters), as the reset command does.
func (a *Adapter) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.log = nil
	a.faults = map[string]*Fault{}
	a.crashed = false
	a.handler.mu.Lock()
	a.handler.resetLocked()
	a.handler.mu.Unlock()
}

// Stats returns the mock's counters.
func (a *Adapter) Stats() adapter.Stats {
	a.mu.Lock()
	workers := 1
	if a.closed || a.crashed {
		workers = 0
	}
	restarts := a.restarts
	a.mu.Unlock()
	s := adapter.Stats{Adapter: a.name, Workers: workers, Restarts: restarts, Since: a.since}
	a.counter.Fill(&s)
	return s
}

// Close closes the adapter: calls blocked in injected latency or hangs
// return ErrClosed at once, and every later call fails with ErrClosed. The
// mock holds no processes or goroutines, so Close never fails and is
// idempotent.
func (a *Adapter) Close(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	a.end()
	return nil
}
