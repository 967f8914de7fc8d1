package bench

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/internal/wait"
)

// slowLM answers after latency, or when ctx ends.
func slowLM(latency time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		if !wait.Sleep(ctx, latency) {
			return ctx.Err()
		}
		return nil
	}
}

func TestLoadReachesTheCeilingOfAnIdealLM(t *testing.T) {
	const n, latency, window = 50, 40 * time.Millisecond, 200 * time.Millisecond
	var inFlight, most atomic.Int64
	lm := slowLM(latency)
	var atEnd atomic.Int64
	r := load(t.Context(), n, latency, window, func() []int { return []int{os.Getpid()} }, func() { atEnd.Store(inFlight.Load()) }, func(ctx context.Context) error {
		cur := inFlight.Add(1)
		for m := most.Load(); cur > m && !most.CompareAndSwap(m, cur); m = most.Load() {
		}
		defer inFlight.Add(-1)
		return lm(ctx)
	})
	assert.LessOrEqual(t, most.Load(), int64(n), "never more than n calls in flight")
	assert.Positive(t, atEnd.Load(), "atEnd runs while calls are in flight")
	assert.Zero(t, r.errors)
	ceiling := n / latency.Seconds()
	assert.LessOrEqual(t, r.perSecond, ceiling*1.1, "no more than the LM's latency allows")
	assert.Greater(t, r.perSecond, ceiling*0.3, "an LM that only waits is near its ceiling (loose: machines are shared)")
	assert.GreaterOrEqual(t, r.p50, latency)
	assert.GreaterOrEqual(t, r.p99, r.p50)
	assert.GreaterOrEqual(t, r.max, r.p99)
	assert.Greater(t, r.calls, r.windowCalls, "the ramp's and the tail's calls count in calls, not in the window")
	assert.Positive(t, r.peak.hostRSS)
	assert.Positive(t, r.peak.workersRSS, "the watched process's memory is read")
	assert.Positive(t, r.peakThreads)
	assert.Positive(t, r.allocs, "the host's allocations per call are counted")
}

func TestLoadCountsErrors(t *testing.T) {
	boom := errors.New("boom")
	r := load(t.Context(), 4, 10*time.Millisecond, 30*time.Millisecond, func() []int { return nil }, nil, func(ctx context.Context) error {
		if err := slowLM(time.Millisecond)(ctx); err != nil {
			return err
		}
		return boom
	})
	assert.Positive(t, r.errors)
	assert.Equal(t, r.calls, r.errors)
	assert.Zero(t, r.windowCalls, "failed calls are not throughput")
	assert.Equal(t, "boom", r.firstErr)
	assert.Zero(t, r.p99, "no successful call, no latency")
}

func TestLoadEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{}, 1)
	done := make(chan loadRun)
	go func() {
		done <- load(ctx, 100, time.Hour, time.Hour, func() []int { return nil }, nil, func(ctx context.Context) error {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	<-started
	cancel()
	select {
	case r := <-done:
		assert.Equal(t, 1, r.calls, "only the first slot started within an hour's ramp")
		assert.Equal(t, 1, r.errors)
	case <-time.After(10 * time.Second):
		require.Fail(t, "load did not end with its context")
	}
}
