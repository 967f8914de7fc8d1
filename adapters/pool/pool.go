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
package pool

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/wait"
	"github.com/dspgo/dspgo/internal/wire"
)

// Errors of the pool, wrapped in an *adapter.Error with their code.
var (
	// ErrCheckoutTimeout: no worker was free within CheckoutTimeout. Its
	// code is adapter.CodeResourceExhausted.
	ErrCheckoutTimeout = errors.New("pool: no worker free within the checkout timeout")
	// ErrQueueFull: MaxQueue callers already wait. Its code is
	// adapter.CodeResourceExhausted.
	ErrQueueFull = errors.New("pool: the queue of callers is full")
	// ErrSessionWorkerGone: with AffinityStrict, the session's worker was
	// retired. Its code is adapter.CodeUnavailable.
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
	sessions   map[string]*worker
	broadcasts []adapter.Request
	bver       uint64
	closed     bool
	inFlight   int
	lastErr    error // the last start failure
	st         counters

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

type state int

const (
	starting state = iota
	ready
	draining
)

func (s state) String() string { return [...]string{"starting", "ready", "draining"}[s] }

// worker is one slot of the pool.
type worker struct {
	id        string
	p         *port.Adapter // nil while starting
	state     state
	overflow  bool
	inFlight  int
	served    uint64
	startedAt time.Time
	lastUsed  time.Time
	maxAge    time.Duration
	rss       atomic.Uint64
	gone      bool // removed from the pool
}

// goneMarker is handed to a strict waiter whose session's worker was
// retired.
var goneMarker = &worker{id: "gone"}

// maxSessions bounds the affinity map; past it an arbitrary binding is
// forgotten (affinity is an optimisation, never needed for correctness).
const maxSessions = 1 << 16

// waiter is a caller queued for a worker.
type waiter struct {
	session string
	ch      chan *worker // buffered; nil worker means the pool closed
	elem    *list.Element
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
		sessions: map[string]*worker{}, closeDone: make(chan struct{})}
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

// waitReady waits until MinReady workers are ready, or until every
// worker has failed its first start.
func (p *Pool) waitReady(ctx context.Context) error {
	for {
		p.mu.Lock()
		readyN, startingN := 0, 0
		for _, w := range p.workers {
			switch w.state {
			case ready:
				readyN++
			case starting:
				startingN++
			}
		}
		lastErr := p.lastErr
		p.mu.Unlock()
		switch {
		case readyN >= p.opts.MinReady:
			return nil
		case startingN == 0 && readyN > 0:
			return nil // some could not start; they are retried in the background
		case startingN == 0:
			return lastErr
		}
		select {
		case <-ctx.Done():
			return adapter.Wrap(ctx.Err(), p.opts.Name, "start")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// startLocked adds a starting worker and starts it in the background. The
// caller holds p.mu.
func (p *Pool) startLocked(overflow bool) {
	p.seq++
	w := &worker{id: p.opts.Name + "-" + strconv.Itoa(p.seq), state: starting, overflow: overflow}
	p.workers = append(p.workers, w)
	p.bg.Add(1)
	go p.run(w)
}

// run starts one worker's port adapter, replays the broadcasts, and puts
// it in service.
func (p *Pool) run(w *worker) {
	defer p.bg.Done()
	select {
	case p.starts <- struct{}{}:
	case <-p.life.Done():
		p.discard(w, nil, adapter.Wrap(adapter.ErrClosed, p.opts.Name, "start"))
		return
	}
	opts := p.workerOp
	opts.WorkerID = w.id
	opts.OnReady = p.dispatch
	opts.OnCrash = func(error) {
		p.mu.Lock()
		p.st.crashes++
		p.mu.Unlock()
	}
	pa, err := port.New(p.life, opts)
	<-p.starts
	if err == nil {
		err = p.replay(pa) // holds p.mu on success
	}
	if err != nil {
		p.discard(w, pa, err)
		return
	}
	if p.closed {
		p.mu.Unlock()
		p.discard(w, pa, nil)
		return
	}
	now := time.Now()
	w.p, w.state, w.startedAt, w.lastUsed = pa, ready, now, now
	w.maxAge = p.opts.Recycle.MaxAge
	if j := p.opts.Recycle.MaxAgeJitter; j > 0 {
		w.maxAge += time.Duration(rand.Int64N(int64(j)))
	}
	p.dispatchLocked()
	p.mu.Unlock()
}

// replay sends the pool's broadcasts to a new worker until none arrived
// meanwhile; on success it returns with p.mu held.
func (p *Pool) replay(pa *port.Adapter) error {
	var done uint64
	for {
		p.mu.Lock()
		if p.bver == done {
			return nil
		}
		list, ver := append([]adapter.Request(nil), p.broadcasts...), p.bver
		p.mu.Unlock()
		for _, req := range list {
			if err := pa.Broadcast(p.life, req); err != nil {
				return err
			}
		}
		done = ver
	}
}

// discard removes a worker that failed to start (or started after Close),
// and schedules a retry when the pool is below Size.
func (p *Pool) discard(w *worker, pa *port.Adapter, err error) {
	if pa != nil {
		_ = pa.Close(context.Background())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removeLocked(w)
	if err == nil || p.closed {
		return
	}
	p.lastErr = err
	p.st.startFailures++
	p.opts.Logger.Warn("worker failed to start", "pool", p.opts.Name, "worker", w.id, "error", err)
	// Waiters must not wait for a worker that will not come: fail them
	// when nothing else can serve them.
	if p.countLocked(func(w *worker) bool { return true }) == 0 {
		p.failWaitersLocked()
	}
	if !p.opts.Lazy {
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			t := time.NewTimer(p.workerOp.Restart.Min + 100*time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
				p.mu.Lock()
				p.fillLocked()
				p.mu.Unlock()
			case <-p.life.Done():
			}
		}()
	}
}

// fillLocked starts workers until an eager pool is back at Size.
func (p *Pool) fillLocked() {
	if p.closed || p.opts.Lazy {
		return
	}
	for n := p.countLocked(func(w *worker) bool { return !w.overflow && w.state != draining }); n < p.opts.Size; n++ {
		p.startLocked(false)
	}
}

func (p *Pool) countLocked(match func(*worker) bool) int {
	n := 0
	for _, w := range p.workers {
		if match(w) {
			n++
		}
	}
	return n
}

// removeLocked takes a worker out of the pool. Its session bindings go
// too, except under AffinityStrict, where the next call of such a session
// is told its worker is gone.
func (p *Pool) removeLocked(w *worker) {
	w.gone = true
	for i, x := range p.workers {
		if x == w {
			p.workers = append(p.workers[:i], p.workers[i+1:]...)
			break
		}
	}
	if p.opts.Affinity != AffinityStrict {
		p.unbindLocked(w)
	}
}

func (p *Pool) unbindLocked(w *worker) {
	for s, x := range p.sessions {
		if x == w {
			delete(p.sessions, s)
		}
	}
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

// Call runs one command on a worker: the session's worker under affinity,
// else the least loaded. A call that never reached its worker (the worker
// died first) is sent to another. The commands only the pool's workers'
// adapters send (protocol.Reserved: shutdown, cancel, the init ping) are
// refused with CodeInvalidArgument, as by Stream and Broadcast: a caller
// can never stop or confuse a worker.
func (p *Pool) Call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	p.counter.Begin()
	resp, err := p.call(ctx, req)
	p.counter.End(err)
	return resp, err
}

func (p *Pool) call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	op := req.Command
	if err := wire.Reserved(p.opts.Name, req); err != nil {
		return adapter.Response{}, err // never reaches a worker
	}
	if err := ctx.Err(); err != nil {
		return adapter.Response{}, adapter.Wrap(err, p.opts.Name, op)
	}
	for attempt := 0; ; attempt++ {
		w, err := p.checkout(ctx, req.Session, op)
		if err != nil {
			return adapter.Response{}, err
		}
		resp, err := w.p.Call(ctx, req)
		p.release(w, err == nil)
		if err != nil && errors.Is(err, port.ErrNotSent) && p.opts.Affinity != AffinityStrict && attempt < p.opts.Size+p.opts.MaxOverflow {
			continue
		}
		if p.cutByClose(ctx, err) {
			err = wire.Closed(p.opts.Name, op)
		}
		return resp, err
	}
}

// Stream runs req as a stream on one worker (see adapter.Streamer), which
// it holds until the stream ends. A worker that died before it got the
// request is replaced, as for Call; once a chunk has been yielded the
// stream is never resent.
func (p *Pool) Stream(ctx context.Context, req adapter.Request) iter.Seq2[adapter.Chunk, error] {
	return func(yield func(adapter.Chunk, error) bool) {
		op := req.Command
		p.counter.Begin()
		var err error
		defer func() { p.counter.End(err) }()
		if err = wire.Reserved(p.opts.Name, req); err != nil {
			yield(adapter.Chunk{}, err)
			return
		}
		if err = ctx.Err(); err != nil {
			err = adapter.Wrap(err, p.opts.Name, op)
			yield(adapter.Chunk{}, err)
			return
		}
		for attempt := 0; ; attempt++ {
			var w *worker
			if w, err = p.checkout(ctx, req.Session, op); err != nil {
				yield(adapter.Chunk{}, err)
				return
			}
			yielded, stopped := false, false
			for c, cerr := range w.p.Stream(ctx, req) {
				if cerr != nil {
					err = cerr
					break
				}
				yielded = true
				if !yield(c, nil) {
					stopped = true
					break
				}
			}
			p.release(w, err == nil)
			if stopped {
				return
			}
			if err != nil && !yielded && errors.Is(err, port.ErrNotSent) && p.opts.Affinity != AffinityStrict && attempt < p.opts.Size+p.opts.MaxOverflow {
				continue
			}
			if err != nil {
				if p.cutByClose(ctx, err) {
					err = wire.Closed(p.opts.Name, op)
				}
				yield(adapter.Chunk{}, err)
			}
			return
		}
	}
}

// cutByClose reports whether err ended a call because Close stopped its
// worker under it (killed, or cancelled by its shutdown) rather than for
// the call's own sake.
func (p *Pool) cutByClose(ctx context.Context, err error) bool {
	if err == nil || !p.isClosed() {
		return false
	}
	code := adapter.CodeOf(err)
	return errors.Is(err, adapter.ErrClosed) || code == adapter.CodeUnavailable || code == adapter.CodeCanceled && ctx.Err() == nil
}

func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// pickLocked returns a worker with room for the session, or nil. Under
// AffinityStrict it returns only the session's worker. gone reports a
// strict session whose worker no longer exists.
func (p *Pool) pickLocked(session string) (w *worker, gone bool) {
	aff := p.opts.Affinity
	if session != "" && aff != AffinityNone {
		if target, ok := p.sessions[session]; ok {
			switch {
			case aff == AffinityStrict && target.gone:
				delete(p.sessions, session) // told once; the session binds anew next time
				return nil, true
			case p.hasRoom(target):
				return target, false
			case aff == AffinityStrict:
				return nil, false
			}
		}
	}
	// The least loaded; among equals the most recently used, as
	// database/sql reuses its newest idle connection: sequential calls stay
	// on a warm worker (whose compiled specs spare a resend), and load
	// spreads as soon as calls overlap.
	for _, c := range p.workers {
		if p.hasRoom(c) && (w == nil || c.inFlight < w.inFlight || c.inFlight == w.inFlight && c.lastUsed.After(w.lastUsed)) {
			w = c
		}
	}
	if w != nil && session != "" && aff != AffinityNone {
		if _, ok := p.sessions[session]; !ok && len(p.sessions) >= maxSessions {
			for s := range p.sessions {
				delete(p.sessions, s)
				break
			}
		}
		p.sessions[session] = w
	}
	return w, false
}

func (p *Pool) hasRoom(w *worker) bool {
	return w.state == ready && w.inFlight < p.opts.WorkerConcurrency && w.p.Ready()
}

// checkout reserves a slot on a worker, waiting in FIFO order.
func (p *Pool) checkout(ctx context.Context, session, op string) (*worker, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, adapter.Wrap(adapter.ErrClosed, p.opts.Name, op)
	}
	if p.waiters.Len() == 0 {
		w, gone := p.pickLocked(session)
		if gone {
			p.mu.Unlock()
			return nil, p.goneError(op, session)
		}
		if w != nil {
			p.takeLocked(w)
			p.mu.Unlock()
			return w, nil
		}
	}
	if p.waiters.Len() >= p.opts.MaxQueue {
		p.mu.Unlock()
		return nil, &adapter.Error{Code: adapter.CodeResourceExhausted, Op: op, Adapter: p.opts.Name, Err: ErrQueueFull,
			Message: fmt.Sprintf("%d callers already wait", p.opts.MaxQueue)}
	}
	wt := &waiter{session: session, ch: make(chan *worker, 1)}
	wt.elem = p.waiters.PushBack(wt)
	p.growLocked()
	p.dispatchLocked()
	p.mu.Unlock()

	start := time.Now()
	timer := time.NewTimer(p.opts.CheckoutTimeout)
	defer timer.Stop()
	var cause error
	select {
	case w := <-wt.ch:
		return p.handed(w, start, op, session)
	case <-ctx.Done():
		cause = adapter.Wrap(ctx.Err(), p.opts.Name, op)
	case <-timer.C:
	}
	p.mu.Lock()
	if wt.elem == nil { // handed a worker, or woken by Close, meanwhile
		p.mu.Unlock()
		w := <-wt.ch
		if cause == nil {
			return p.handed(w, start, op, session) // only the timer fired: the hand-off won the race
		}
		if w != nil && w != goneMarker {
			p.release(w, false)
		}
		return nil, cause
	}
	p.waiters.Remove(wt.elem)
	wt.elem = nil
	if cause == nil {
		p.st.checkoutTimeouts++
		cause = p.timeoutErrorLocked(op, start)
	}
	p.st.waitCount++
	p.st.waitDuration += time.Since(start)
	p.mu.Unlock()
	return nil, cause
}

// handed completes a checkout that waited.
func (p *Pool) handed(w *worker, start time.Time, op, session string) (*worker, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.waitCount++
	p.st.waitDuration += time.Since(start)
	if w == goneMarker {
		return nil, p.goneError(op, session)
	}
	if w == nil {
		if p.closed {
			return nil, adapter.Wrap(adapter.ErrClosed, p.opts.Name, op)
		}
		return nil, &adapter.Error{Code: adapter.CodeUnavailable, Op: op, Adapter: p.opts.Name,
			Message: "no worker could start", Err: p.lastErr}
	}
	return w, nil
}

// timeoutErrorLocked says how many workers were busy, starting and queued,
// and how long the caller waited.
func (p *Pool) timeoutErrorLocked(op string, start time.Time) error {
	busy := p.countLocked(func(w *worker) bool { return w.state == ready && w.inFlight >= p.opts.WorkerConcurrency })
	starting := p.countLocked(func(w *worker) bool { return w.state == starting || w.state == ready && !w.p.Ready() })
	return &adapter.Error{Code: adapter.CodeResourceExhausted, Op: op, Adapter: p.opts.Name, Err: ErrCheckoutTimeout,
		Message: fmt.Sprintf("no worker free after %v (checkout timeout %v): %d of %d workers busy with %d calls each, %d starting or restarting, %d callers queued",
			time.Since(start).Round(time.Millisecond), p.opts.CheckoutTimeout, busy, len(p.workers), p.opts.WorkerConcurrency, starting, p.waiters.Len())}
}

func (p *Pool) goneError(op, session string) error {
	return &adapter.Error{Code: adapter.CodeUnavailable, Op: op, Adapter: p.opts.Name, Err: ErrSessionWorkerGone,
		Message: fmt.Sprintf("session %q is bound (strict affinity) to a worker that was retired; the next call binds it anew", session)}
}

func (p *Pool) takeLocked(w *worker) {
	w.inFlight++
	p.inFlight++
}

// release returns a worker's slot, retires it when due, and serves the
// queue.
func (p *Pool) release(w *worker, served bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w.inFlight--
	p.inFlight--
	w.lastUsed = time.Now()
	if served {
		w.served++
		if m := p.opts.Recycle.MaxCalls; m > 0 && w.served >= m && w.state == ready {
			p.retireLocked(w, "max_calls")
		}
	}
	if w.state == draining && w.inFlight == 0 {
		p.stopLocked(w)
	}
	p.dispatchLocked()
}

// dispatch serves the queue; it is the workers' OnReady hook.
func (p *Pool) dispatch() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dispatchLocked()
}

// dispatchLocked hands free slots to waiters, oldest first; a waiter that
// cannot be served yet (a strict session whose worker is busy) does not
// hold up the others.
func (p *Pool) dispatchLocked() {
	for e := p.waiters.Front(); e != nil; {
		next := e.Next()
		wt := e.Value.(*waiter)
		w, gone := p.pickLocked(wt.session)
		switch {
		case gone:
			w = goneMarker
		case w != nil:
			p.takeLocked(w)
		}
		if w != nil {
			p.waiters.Remove(e)
			wt.elem = nil
			wt.ch <- w
		}
		e = next
	}
}

// growLocked starts workers for queued callers: up to Size when lazy, then
// overflow workers up to Size+MaxOverflow.
func (p *Pool) growLocked() {
	if p.closed {
		return
	}
	startingN := p.countLocked(func(w *worker) bool { return w.state == starting })
	need := p.waiters.Len() - startingN
	for ; need > 0; need-- {
		total := p.countLocked(func(w *worker) bool { return w.state != draining })
		switch {
		case total < p.opts.Size:
			p.startLocked(false)
		case total < p.opts.Size+p.opts.MaxOverflow:
			p.startLocked(true)
		default:
			return
		}
	}
}

// failWaitersLocked wakes every waiter with no worker: they fail with
// ErrClosed, or with the last start error.
func (p *Pool) failWaitersLocked() {
	for e := p.waiters.Front(); e != nil; e = p.waiters.Front() {
		wt := e.Value.(*waiter)
		p.waiters.Remove(e)
		wt.elem = nil
		wt.ch <- nil
	}
}

// retireLocked drains a worker: it takes no new calls, finishes the ones
// in flight, then stops; an eager pool starts a replacement at once.
func (p *Pool) retireLocked(w *worker, reason string) {
	if w.state != ready {
		return
	}
	w.state = draining
	p.st.recycled[reason]++
	p.opts.Logger.Info("retiring worker", "pool", p.opts.Name, "worker", w.id, "reason", reason)
	if p.opts.Affinity != AffinityStrict {
		p.unbindLocked(w)
	}
	if w.inFlight == 0 {
		p.stopLocked(w)
	}
	if !w.overflow {
		p.fillLocked()
	}
}

// stopLocked removes a drained worker and closes it in the background.
func (p *Pool) stopLocked(w *worker) {
	p.removeLocked(w)
	p.st.retired += w.p.Stats().Restarts
	pa := w.p
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		_ = pa.Close(context.Background())
	}()
}

// Broadcast runs req on every ready worker and records it for every
// worker started later, in order, so no worker runs with another
// configuration. A later broadcast of the same command replaces the
// recorded one; for configure_lm, the one of the same LM name (every
// named LM is kept). It returns the first error met.
func (p *Pool) Broadcast(ctx context.Context, req adapter.Request) error {
	if err := wire.Reserved(p.opts.Name, req); err != nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return adapter.Wrap(adapter.ErrClosed, p.opts.Name, req.Command)
	}
	prev := port.Recorded(p.broadcasts, req)
	p.broadcasts = port.Record(p.broadcasts, req)
	p.bver++
	p.st.broadcasts++
	var targets []*port.Adapter
	for _, w := range p.workers {
		if w.state == ready {
			targets = append(targets, w.p)
		}
	}
	p.mu.Unlock()
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = t.Broadcast(ctx, req)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, adapter.ErrClosed) { // a worker retired meanwhile
			// Refused: workers started later get what the others run.
			p.mu.Lock()
			p.broadcasts = port.Restore(p.broadcasts, req, prev)
			p.mu.Unlock()
			return err
		}
	}
	return nil
}

// Close wakes every waiter with ErrClosed at once, lets the calls in
// flight finish until ctx ends, then stops every worker; it returns when
// no process or goroutine of the pool is left. A second Close returns the
// first one's result.
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
		var wg sync.WaitGroup
		for _, w := range workers {
			if w.p == nil {
				continue // starting: its starter sees the pool closed
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = w.p.Close(ctx)
			}()
		}
		wg.Wait()
		p.bg.Wait()
	})
	<-p.closeDone
	return p.closeErr
}

// drain waits for the calls in flight until ctx ends.
func (p *Pool) drain(ctx context.Context) {
	wait.Until(ctx, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.inFlight == 0
	})
}
