package port

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// callTimeouts gives calls whose context has no deadline the adapter's
// Options.CallTimeout.
//
// A context.WithTimeout per call costs a context, a channel and a runtime
// timer for as long as the call is in flight (a quarter of the host's
// live heap at 10,000 calls in flight). When the caller's context can
// never end (its Done is nil: context.Background, context.WithoutCancel
// and values over them), the calls share instead one deadline context per
// step of time: a call's deadline is its start plus CallTimeout, rounded
// up to the next multiple of the step (CallTimeout/64, at most 100 ms), so
// it never ends earlier than CallTimeout and at most one step later; the
// worker is sent that deadline. A context that can end is given its own
// context.WithTimeout, as the shared deadline cannot end with it.
type callTimeouts struct {
	timeout time.Duration
	step    int64 // nanoseconds

	cur atomic.Pointer[timeoutStep] // the step of the latest call
	mu  sync.Mutex                  // makes a new step
}

// timeoutStep is the deadline context shared by the calls of one step.
type timeoutStep struct {
	at  int64 // the deadline, Unix nanoseconds: a multiple of the step
	ctx context.Context
	// cancel is never called: the step's timer ends the context at its
	// deadline and lets it go.
	cancel context.CancelFunc
}

// maxTimeoutStep bounds how much later than CallTimeout a call may end.
const maxTimeoutStep = 100 * time.Millisecond

func newCallTimeouts(timeout time.Duration) *callTimeouts {
	step := min(timeout/64, maxTimeoutStep)
	return &callTimeouts{timeout: timeout, step: max(int64(step), 1)}
}

// bound returns ctx bounded by the call time-out, and the function that
// releases what the bound holds.
func (t *callTimeouts) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Done() != nil {
		return context.WithTimeout(ctx, t.timeout)
	}
	now := time.Now()
	deadline := now.Add(t.timeout)
	at := deadline.UnixNano()
	if r := at % t.step; r != 0 {
		at += t.step - r
	}
	s := t.cur.Load()
	if s == nil || s.at < at {
		s = t.next(deadline.Add(time.Duration(at-deadline.UnixNano())), at)
	}
	return &boundCtx{Context: ctx, step: s.ctx}, func() {}
}

// next returns the step whose deadline is at, or a later one made
// meanwhile by another call.
func (t *callTimeouts) next(deadline time.Time, at int64) *timeoutStep {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.cur.Load(); s != nil && s.at >= at {
		return s
	}
	// deadline keeps now's monotonic reading: a change of the wall clock
	// moves no call's end.
	s := &timeoutStep{at: at}
	s.ctx, s.cancel = context.WithDeadline(context.Background(), deadline)
	t.cur.Store(s)
	return s
}

// boundCtx is a context that can never end (the caller's), bounded by a
// shared step's deadline: its values are the caller's, its deadline, Done
// and Err the step's.
type boundCtx struct {
	context.Context
	step context.Context
}

func (c *boundCtx) Deadline() (time.Time, bool) { return c.step.Deadline() }
func (c *boundCtx) Done() <-chan struct{}       { return c.step.Done() }
func (c *boundCtx) Err() error                  { return c.step.Err() }

// Value is the caller's value for key, else the step's. The step over
// context.Background has a value only for the context package's own key
// of its cancelable contexts: with it, a context derived from c
// (context.WithCancel, context.AfterFunc) is registered with the step as
// with any context of the package, without a goroutine or a wrapper.
func (c *boundCtx) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.step.Value(key)
}
