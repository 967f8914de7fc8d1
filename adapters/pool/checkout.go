package pool

import (
	"container/list"
	"context"
	"fmt"
	"time"

	"github.com/dspgo/dspgo/adapter"
)

// waiter is a caller queued for a worker.
type waiter struct {
	session string
	ch      chan *worker // buffered; nil worker means the pool closed
	elem    *list.Element
}

// goneMarker is handed to a strict waiter whose session's worker was
// retired.
var goneMarker = &worker{id: "gone"}

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

// pickLocked returns a worker with room for the session, or nil. Under
// AffinityStrict it returns only the session's worker. gone reports a
// strict session whose worker no longer exists.
func (p *Pool) pickLocked(session string) (w *worker, gone bool) {
	aff := p.opts.Affinity
	if session != "" && aff != adapter.AffinityNone {
		if target, ok := p.sessions.Get(session); ok {
			switch {
			case aff == adapter.AffinityStrict && target.gone:
				p.sessions.Forget(session) // told once; the session binds anew next time
				return nil, true
			case p.hasRoom(target):
				return target, false
			case aff == adapter.AffinityStrict:
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
	if w != nil && session != "" && aff != adapter.AffinityNone {
		p.sessions.Bind(session, w)
	}
	return w, false
}

func (p *Pool) hasRoom(w *worker) bool {
	return w.state == ready && w.inFlight < p.opts.WorkerConcurrency && w.p.Ready()
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
	defer p.changed.Notify()
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
