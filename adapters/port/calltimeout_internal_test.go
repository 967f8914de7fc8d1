package port

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/protocol"
)

type ctxKey struct{}

func TestCallTimeoutsShareOneContextPerStepAndParent(t *testing.T) {
	const timeout = 6400 * time.Millisecond // a step of 100 ms
	tt := newCallTimeouts(timeout)
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	before := time.Now()
	a, sa := tt.bound(parent)
	b, sb := tt.bound(parent)
	if sa == sb {
		assert.Same(t, a, b, "one context for the calls of a step")
	}
	da, ok := a.Deadline()
	require.True(t, ok)
	assert.False(t, da.Before(before.Add(timeout)), "never earlier than the time-out")
	assert.LessOrEqual(t, da.Sub(time.Now().Add(timeout)), 100*time.Millisecond, "at most one step later")
	assert.Equal(t, "v", a.Value(ctxKey{}), "the caller's values")

	other := context.WithValue(context.Background(), ctxKey{}, "w")
	c, sc := tt.bound(other)
	assert.Equal(t, "w", c.Value(ctxKey{}), "another parent, another context")
	tt.release(sa)
	tt.release(sb)
	assert.ErrorIs(t, a.Err(), context.Canceled, "released once no call uses it and another step is the latest")
	assert.NoError(t, c.Err())
	tt.release(sc)
	assert.NoError(t, c.Err(), "the latest step stays for the next call")
	tt.close()
	assert.ErrorIs(t, c.Err(), context.Canceled, "released at close")
}

func TestCallTimeoutsEnd(t *testing.T) {
	tt := newCallTimeouts(20 * time.Millisecond)
	ctx, s := tt.bound(context.Background())
	defer tt.release(s)
	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the bound never ended")
	}
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
	assert.ErrorIs(t, child.Err(), context.DeadlineExceeded)
}

func TestCallTimeoutsEndWithTheCaller(t *testing.T) {
	tt := newCallTimeouts(time.Hour)
	parent, cancel := context.WithCancel(context.Background())
	ctx, s := tt.bound(parent)
	defer tt.release(s)
	_, ok := ctx.Deadline()
	assert.True(t, ok)
	cancel()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the caller's cancel did not end the bound context")
	}
	assert.ErrorIs(t, ctx.Err(), context.Canceled)
}

// uncomparableCtx is a context whose type cannot be compared with ==.
type uncomparableCtx struct {
	context.Context
	_ []int
}

func TestCallTimeoutsOfAnUncomparableContext(t *testing.T) {
	tt := newCallTimeouts(time.Hour)
	parent := uncomparableCtx{Context: context.WithValue(context.Background(), ctxKey{}, "v")}
	a, sa := tt.bound(parent)
	b, sb := tt.bound(parent)
	assert.NotSame(t, sa, sb, "never shared")
	assert.Equal(t, "v", a.Value(ctxKey{}))
	tt.release(sa)
	tt.release(sb)
	assert.ErrorIs(t, a.Err(), context.Canceled, "released at the end of its call")
	assert.ErrorIs(t, b.Err(), context.Canceled)
}

// stuckHandler is the mock's worker, except that it holds "slow" until
// release is closed, whatever its context says: a handler that never
// answers.
type stuckHandler struct {
	protocol.Handler
	release chan struct{}
}

func (h stuckHandler) Handle(ctx context.Context, req protocol.Request) protocol.Response {
	if req.Command != "slow" {
		return h.Handler.Handle(ctx, req)
	}
	<-h.release
	return protocol.Response{ID: req.ID, Success: true, Result: json.RawMessage(`{}`)}
}

// A call whose context has no deadline ends with CodeDeadlineExceeded at
// Options.CallTimeout (within a step), whether its context can end or not.
func TestCallTimeoutBoundsACallWithoutDeadline(t *testing.T) {
	const timeout = 150 * time.Millisecond
	h := stuckHandler{Handler: mock.NewHandler(mock.HandlerOptions{}), release: make(chan struct{})}
	a, err := New(t.Context(), Options{Handler: func() protocol.Handler { return h }, CallTimeout: timeout, StopGrace: time.Second})
	require.NoError(t, err)
	defer func() {
		close(h.release)
		require.NoError(t, a.Close(context.Background()))
	}()
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for name, ctx := range map[string]context.Context{"background": context.Background(), "cancellable": cancellable} {
		start := time.Now()
		_, err := a.Call(ctx, adapter.Request{Command: "slow"})
		elapsed := time.Since(start)
		assert.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err), "%s: %v", name, err)
		assert.GreaterOrEqual(t, elapsed, timeout, name)
	}
}
