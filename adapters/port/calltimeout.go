package port

import (
	"context"
	"reflect"
	"sync"
	"time"
)

// callTimeouts gives calls whose context has no deadline the adapter's
// Options.CallTimeout.
//
// A context.WithTimeout per call costs a context, a channel, a runtime
// timer and an entry in the parent's children for as long as the call is
// in flight (a quarter of the host's live heap at 10,000 calls in
// flight). Calls from one context (context.Background, or one context
// that many goroutines call with) share instead one bounded context per
// step of time: a call's deadline is its start plus CallTimeout, rounded
// up to the next multiple of the step (CallTimeout/64, at most 100 ms), so
// it never ends earlier than CallTimeout and at most one step later; the
// worker is sent that deadline. The shared context is derived from the
// caller's, so it has the caller's values and ends when the caller's
// does. A call from another context than the previous call's gets a
// context of its own, released when the call ends, as before.
type callTimeouts struct {
	timeout time.Duration
	step    int64 // nanoseconds

	mu   sync.Mutex
	last *timeoutStep // the step of the latest call
}

// timeoutStep is the bounded context of the calls of one step from one
// parent context.
type timeoutStep struct {
	parent context.Context
	at     int64 // the deadline, Unix nanoseconds: a multiple of the step
	ctx    context.Context
	cancel context.CancelFunc
	calls  int // calls using ctx; guarded by callTimeouts.mu
}

// maxTimeoutStep bounds how much later than CallTimeout a call may end.
const maxTimeoutStep = 100 * time.Millisecond

func newCallTimeouts(timeout time.Duration) *callTimeouts {
	step := min(timeout/64, maxTimeoutStep)
	return &callTimeouts{timeout: timeout, step: max(int64(step), 1)}
}

// bound returns ctx bounded by the call time-out, and the step that the
// caller releases when its call ends.
func (t *callTimeouts) bound(ctx context.Context) (context.Context, *timeoutStep) {
	now := time.Now()
	deadline := now.Add(t.timeout)
	at := deadline.UnixNano()
	if r := at % t.step; r != 0 {
		at += t.step - r
	}
	// Only a comparable context can be recognised as the previous call's.
	shared := reflect.TypeOf(ctx).Comparable()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.last
	if !shared || s == nil || s.parent != ctx || s.at < at {
		// deadline keeps now's monotonic reading: a change of the wall
		// clock moves no call's end.
		s = &timeoutStep{parent: ctx, at: at}
		s.ctx, s.cancel = context.WithDeadline(ctx, deadline.Add(time.Duration(at-deadline.UnixNano())))
		if shared {
			if prev := t.last; prev != nil && prev.calls == 0 {
				prev.cancel() // no call uses it, and none will
			}
			t.last = s
		}
	}
	s.calls++
	return s.ctx, s
}

// release ends a call's use of its step: the step's context is released
// when no call uses it and no later call can.
func (t *callTimeouts) release(s *timeoutStep) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s.calls--
	if s.calls == 0 && t.last != s {
		s.cancel()
	}
}

// close releases the latest step once no call uses it (at Close).
func (t *callTimeouts) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.last; s != nil {
		t.last = nil
		if s.calls == 0 {
			s.cancel()
		}
	}
}
