// Package wait waits for a condition: on a Signal its owner notifies at
// every change (the drains of Close, a pool's readiness), or, for an
// observer of state that has no signal (tests, the conformance suite), by
// polling it.
package wait

import (
	"context"
	"sync/atomic"
	"time"
)

// Signal tells waiters that the state they watch may have changed: every
// channel C returned before a Notify is closed by it. Notify costs one
// atomic load while nobody waits. The zero value is ready; a Signal is safe
// for concurrent use.
type Signal struct {
	ch atomic.Pointer[chan struct{}]
}

// C returns a channel closed at the next Notify.
func (s *Signal) C() <-chan struct{} {
	for {
		if p := s.ch.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if s.ch.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// Notify wakes every waiter. Call it after each change of the watched
// state.
func (s *Signal) Notify() {
	if s.ch.Load() == nil {
		return
	}
	if p := s.ch.Swap(nil); p != nil {
		close(*p)
	}
}

// Until checks cond now and after each Notify until it holds (true) or ctx
// ends (false).
func (s *Signal) Until(ctx context.Context, cond func() bool) bool {
	for {
		changed := s.C() // before cond: a change after cond is not missed
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		}
	}
}

// Interval is how often Until checks its condition.
const Interval = 5 * time.Millisecond

// Until checks cond every Interval until it holds (true) or ctx ends
// (false). It is for observers of state that has no Signal; the owner of
// the state waits on a Signal instead.
func Until(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// Sleep waits d, or less when ctx ends first; it reports whether ctx is
// still live (false when it ended). A d of zero or less waits nothing.
// It is for intervals (a backoff, a simulated latency), not for waiting
// until something happens, which Until and Signal do.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
