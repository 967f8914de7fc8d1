package credit_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo/internal/credit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTakeWaitsForCredit(t *testing.T) {
	w := credit.New(2)
	ctx := context.Background()
	require.NoError(t, w.Take(ctx))
	require.NoError(t, w.Take(ctx))

	took := make(chan error, 1)
	go func() { took <- w.Take(ctx) }()
	select {
	case <-took:
		t.Fatal("took a unit that was never granted")
	case <-time.After(20 * time.Millisecond): // the producer is blocked, as it must be
	}
	w.Add(1)
	require.NoError(t, <-took)

	short, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, w.Take(short), context.Canceled, "a producer's context ends its wait")
}

func TestGrantsInHalfWindows(t *testing.T) {
	g := credit.NewGrants(16)
	var granted []int
	for range 20 {
		if n := g.Took(); n > 0 {
			granted = append(granted, n)
		}
	}
	assert.Equal(t, []int{8, 8}, granted, "half a window at a time; 4 still owed")
	one := credit.NewGrants(1)
	assert.Equal(t, 1, one.Took(), "a window of 1 grants every chunk")
}

// TestCreditSaturates: grants past math.MaxInt leave the window full, not
// wrapped around to none (a caller granting MaxInt64 twice stalled its own
// stream).
func TestCreditSaturates(t *testing.T) {
	w := credit.New(1)
	w.Add(math.MaxInt)
	w.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		require.NoError(t, w.Take(ctx), "the window still holds credit")
	}
}
