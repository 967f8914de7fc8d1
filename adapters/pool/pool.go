// Package pool is dspgo's pooled backend: N supervised port workers with a
// FIFO queue of callers, session affinity, recycling, health checks and
// restarts.
//
// Its semantics follow database/sql's pool and jackc/puddle: callers wait
// in FIFO order with their own context and a checkout timeout; a full
// queue is refused at once; Close wakes every waiter with ErrClosed, lets
// calls in flight finish until its context ends, then stops every worker.
// Workers start concurrently and a starting worker never blocks checkouts
// of ready ones. A crash fails only the crashed worker's calls in flight;
// a call that never reached a worker is sent to another. Broadcasts
// (configure_lm) reach every ready worker and are replayed to every worker
// started later.
//
// The files follow the pool's jobs: worker.go starts, replaces and retires
// workers; checkout.go is the queue of callers; call.go runs calls and
// streams on checked-out workers; broadcast.go, janitor.go (recycling and
// health checks) and stats.go the rest.
package pool

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/replay"
	"github.com/dspgo/dspgo/internal/sessionmap"
	"github.com/dspgo/dspgo/internal/wait"
)

// Errors of the pool, wrapped in an *adapter.Error with their code.
var (
	// ErrCheckoutTimeout: no worker was free within CheckoutTimeout. Its
	// code is adapter.CodeResourceExhausted.
	ErrCheckoutTimeout = errors.New("pool: no worker free within the checkout timeout")
	// ErrQueueFull: MaxQueue callers already wait. Its code is
	// adapter.CodeResourceExhausted.
	ErrQueueFull = errors.New("pool: the queue of callers is full")
	// ErrSessionWorkerGone: with adapter.AffinityStrict, the session's
	// worker was retired. Its code is adapter.CodeUnavailable.
	ErrSessionWorkerGone = errors.New("pool: the session's worker is gone")
)

// Pool is the pool backend. It is safe for concurrent use.
type Pool struct {
	opts     Options
	workerOp port.Options // the template, with the interpreter resolved
	since    time.Time
	starts   chan struct{} // StartConcurrency slots

	life context.Context // ends at Close
	stop context.CancelFunc
	bg   sync.WaitGroup // starters, stoppers, the janitor

	mu         sync.Mutex
	workers    []*worker // starting, ready and draining
	seq        int
	waiters    list.List // of *waiter, oldest first
	sessions   sessionmap.Map[*worker]
	broadcasts replay.Log
	// turns lets one broadcast of a key run at a time (replay.Turns).
	turns replay.Turns
	// recorded counts the broadcasts recorded, refusals those refused
	// and taken back: a refused broadcast recycles the workers that went
	// into service since it was recorded, and restarts those whose replay
	// it overlapped (see takeBack).
	recorded, refusals uint64
	// checking lets one Broadcast at a time check itself on a worker
	// when none is ready: the others wait for it, then find that worker
	// ready, so that concurrent broadcasts start no worker beyond it.
	checking chan struct{}
	closed   bool
	inFlight int
	lastErr  error // the last start failure
	st       counters

	// changed is notified when a worker starts, fails to start or is
	// removed, and when a call releases its worker: New's wait for
	// readiness and Close's drain wait on it.
	changed wait.Signal

	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error

	counter adapter.CallCounter
}

// counters are the cumulative figures of Stats, guarded by Pool.mu.
type counters struct {
	waitCount        uint64
	waitDuration     time.Duration
	checkoutTimeouts uint64
	crashes          uint64
	healthFailures   uint64
	startFailures    uint64
	broadcasts       uint64
	recycled         map[string]uint64
	retired          uint64 // restarts of retired workers, kept in the total
}

var (
	_ adapter.Adapter       = (*Pool)(nil)
	_ adapter.StatsReporter = (*Pool)(nil)
	_ adapter.Broadcaster   = (*Pool)(nil)
	_ adapter.Streamer      = (*Pool)(nil)
)

// New returns a pool. Unless Lazy, it starts Size workers concurrently (at
// most StartConcurrency at a time) and returns when MinReady are ready; it
// fails when none could start, with the first start error. Workers that
// failed keep being retried in the background.
func New(ctx context.Context, opts Options) (*Pool, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, &adapter.Error{Code: adapter.CodeInvalidArgument, Op: "start", Adapter: opts.Name, Err: err}
	}
	p := &Pool{opts: opts, since: time.Now(), starts: make(chan struct{}, opts.StartConcurrency),
		checking: make(chan struct{}, 1), closeDone: make(chan struct{})}
	p.st.recycled = map[string]uint64{}
	if err := p.resolveWorker(ctx); err != nil {
		return nil, err
	}
	p.life, p.stop = context.WithCancel(context.Background())

	if !opts.Lazy {
		p.mu.Lock()
		for range opts.Size {
			p.startLocked(false)
		}
		p.mu.Unlock()
		if err := p.waitReady(ctx); err != nil {
			_ = p.Close(context.Background())
			return nil, err
		}
	}
	if opts.HealthInterval > 0 || opts.Recycle != (Recycle{}) || opts.MaxOverflow > 0 {
		p.bg.Add(1)
		go p.janitor()
	}
	return p, nil
}

// resolveWorker fixes the worker template: the interpreter resolved to its
// real path and the worker files written, once for every worker.
func (p *Pool) resolveWorker(ctx context.Context) error {
	w := p.opts.Worker
	if w.Handler == nil {
		python := w.Python
		if python == "" {
			python = "python3"
		}
		var err error
		if w.Python, err = port.ResolvePython(ctx, python); err != nil {
			return &adapter.Error{Code: adapter.CodeFailedPrecondition, Op: "start", Adapter: p.opts.Name, Err: err}
		}
		if w.WorkerDir == "" {
			// Written and compiled once here, before workers start together;
			// each worker's port re-verifies the directory at every start.
			if _, err = port.PrepareWorkerDir(ctx, w.Python, w.CacheDir); err != nil {
				return &adapter.Error{Code: adapter.CodeFailedPrecondition, Op: "start", Adapter: p.opts.Name, Err: err}
			}
		}
	}
	w.Name = p.opts.Name
	w.MaxConcurrency = p.opts.WorkerConcurrency
	w.NoWait = true
	if w.Logger == nil {
		w.Logger = p.opts.Logger
	}
	if w.Restart == (port.RestartPolicy{}) {
		w.Restart = p.opts.Restart
	}
	p.workerOp = w
	return nil
}

// Workers returns the port adapters of the pool's ready workers, for
// tests and operators (to kill one, or read its WorkerInfo). The pool keeps
// managing them: do not close them.
func (p *Pool) Workers() []*port.Adapter {
	p.mu.Lock()
	defer p.mu.Unlock()
	var list []*port.Adapter
	for _, w := range p.workers {
		if w.p != nil {
			list = append(list, w.p)
		}
	}
	return list
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.opts.Name }

// Capabilities reports the pool's features.
func (p *Pool) Capabilities() adapter.Capabilities {
	caps := adapter.Capabilities{Sessions: true, Broadcast: true, Restarts: true,
		MaxConcurrency: (p.opts.Size + p.opts.MaxOverflow) * p.opts.WorkerConcurrency,
		MaxFrameBytes:  p.workerOp.MaxFrameBytes,
		Streaming:      true, Tools: true} // until a worker says otherwise; both built-in workers do
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.workers {
		if w.p != nil {
			wc := w.p.Capabilities()
			caps.Commands, caps.MaxFrameBytes, caps.Streaming, caps.Tools = wc.Commands, wc.MaxFrameBytes, wc.Streaming, wc.Tools
			break
		}
	}
	return caps
}

func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Close wakes every waiter with ErrClosed at once, lets the calls in
// flight finish until ctx ends, then stops every worker; it returns when
// no process or goroutine of the pool is left. It returns nil when every
// worker stopped cleanly, and otherwise the errors of the workers that did
// not (see port.Adapter.Close), joined. Calls cut short when ctx ends fail
// with ErrClosed; that is not an error of Close. Close is idempotent: a
// second Close returns the first one's result.
func (p *Pool) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		defer close(p.closeDone)
		p.mu.Lock()
		p.closed = true
		p.failWaitersLocked()
		p.mu.Unlock()
		if p.stop != nil {
			p.stop()
		}
		p.drain(ctx)
		p.mu.Lock()
		workers := append([]*worker(nil), p.workers...)
		p.mu.Unlock()
		errs := make([]error, len(workers))
		var wg sync.WaitGroup
		for i, w := range workers {
			if w.p == nil {
				continue // starting: its starter sees the pool closed
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = w.p.Close(ctx)
			}()
		}
		wg.Wait()
		p.bg.Wait()
		p.closeErr = errors.Join(errs...)
	})
	<-p.closeDone
	return p.closeErr
}

// drain waits for the calls in flight until ctx ends.
func (p *Pool) drain(ctx context.Context) {
	p.changed.Until(ctx, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.inFlight == 0
	})
}
