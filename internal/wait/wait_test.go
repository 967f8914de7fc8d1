package wait_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/internal/wait"
)

func TestSignalWakesEveryWaiter(t *testing.T) {
	var s wait.Signal
	s.Notify() // nobody waits: nothing to do
	a, b := s.C(), s.C()
	require.Equal(t, a, b, "waiters before one Notify share its channel")
	select {
	case <-a:
		t.Fatal("closed before Notify")
	default:
	}
	s.Notify()
	<-a
	<-b
	select {
	case <-s.C():
		t.Fatal("a channel taken after Notify waits for the next one")
	default:
	}
}

func TestSignalUntil(t *testing.T) {
	var s wait.Signal
	var n atomic.Int64
	done := make(chan bool)
	go func() { done <- s.Until(context.Background(), func() bool { return n.Load() == 3 }) }()
	for range 3 {
		n.Add(1)
		s.Notify()
	}
	assert.True(t, <-done)

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- s.Until(ctx, func() bool { return false }) }()
	cancel()
	assert.False(t, <-done, "the context ends the wait")
}

func TestUntilPolls(t *testing.T) {
	start := time.Now()
	assert.True(t, wait.Until(context.Background(), func() bool { return time.Since(start) > 3*wait.Interval }))
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait.Interval)
	defer cancel()
	assert.False(t, wait.Until(ctx, func() bool { return false }))
}

// TestSleep: Sleep waits its time, ends early with its context, and waits
// nothing for a time of zero or less.
func TestSleep(t *testing.T) {
	start := time.Now()
	assert.True(t, wait.Sleep(context.Background(), 2*wait.Interval))
	assert.GreaterOrEqual(t, time.Since(start), 2*wait.Interval, "it waited its time")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.False(t, wait.Sleep(ctx, time.Hour), "an ended context ends it at once")
	assert.False(t, wait.Sleep(ctx, 0))
	assert.True(t, wait.Sleep(context.Background(), -time.Second))
}
