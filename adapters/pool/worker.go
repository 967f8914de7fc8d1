package pool

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
)

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
	// recorded is Pool.recorded when the worker went into service: it
	// was given every broadcast recorded up to then.
	recorded uint64
}

// waitReady waits until MinReady workers are ready, or until every
// worker has failed its first start.
func (p *Pool) waitReady(ctx context.Context) error {
	var err error
	settled := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		readyN := p.countLocked(func(w *worker) bool { return w.state == ready })
		startingN := p.countLocked(func(w *worker) bool { return w.state == starting })
		switch {
		case readyN >= p.opts.MinReady:
		case startingN == 0 && readyN > 0:
			// Some could not start; they are retried in the background.
		case startingN == 0:
			err = p.lastErr
		default:
			return false
		}
		return true
	}
	if !p.changed.Until(ctx, settled) {
		return adapter.Wrap(ctx.Err(), p.opts.Name, "start")
	}
	return err
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
	var pa *port.Adapter
	for {
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
		var err error
		pa, err = port.New(p.life, opts)
		<-p.starts
		var refusals uint64
		if err == nil {
			p.mu.Lock()
			refusals = p.refusals
			p.mu.Unlock()
			// Holds p.mu on success: no broadcast is recorded before the
			// worker is in service.
			err = p.broadcasts.Replay(&p.mu, func(req adapter.Request) error { return pa.Broadcast(p.life, req) },
				func(req adapter.Request, err error) {
					p.opts.Logger.Warn("a new worker refused a recorded broadcast; dropped", "pool", p.opts.Name, "worker", w.id, "command", req.Command, "error", err)
				})
		}
		if err != nil {
			p.discard(w, pa, err)
			return
		}
		if p.refusals == refusals {
			break
		}
		// A broadcast was refused while this worker replayed the record:
		// it may have been given that broadcast, which cannot be taken
		// back (see takeBack), so it starts again from the record.
		p.mu.Unlock()
		p.opts.Logger.Info("a broadcast was refused while a new worker replayed the record; starting it again", "pool", p.opts.Name, "worker", w.id)
		p.closeWorker(w, pa)
	}
	if p.closed {
		p.mu.Unlock()
		p.discard(w, pa, nil)
		return
	}
	now := time.Now()
	w.p, w.state, w.startedAt, w.lastUsed = pa, ready, now, now
	w.recorded = p.recorded
	w.maxAge = p.opts.Recycle.MaxAge
	if j := p.opts.Recycle.MaxAgeJitter; j > 0 {
		w.maxAge += time.Duration(rand.Int64N(int64(j)))
	}
	p.dispatchLocked()
	p.mu.Unlock()
	p.changed.Notify()
}

// discard removes a worker that failed to start (or started after Close),
// and schedules a retry when the pool is below Size.
func (p *Pool) discard(w *worker, pa *port.Adapter, err error) {
	if pa != nil {
		p.closeWorker(w, pa)
	}
	defer p.changed.Notify()
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
	if len(p.workers) == 0 {
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

// closeWorker closes a worker the pool no longer uses, outside Close: a
// failure to stop it cleanly is logged, as nobody waits for it.
func (p *Pool) closeWorker(w *worker, pa *port.Adapter) {
	if err := pa.Close(context.Background()); err != nil {
		p.opts.Logger.Warn("worker did not stop cleanly", "pool", p.opts.Name, "worker", w.id, "error", err)
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
	if p.opts.Affinity != adapter.AffinityStrict {
		p.sessions.Unbind(w)
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
	if p.opts.Affinity != adapter.AffinityStrict {
		p.sessions.Unbind(w)
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
		p.closeWorker(w, pa)
	}()
}
