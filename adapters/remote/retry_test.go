package remote

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A JetStream request whose answer is lost waits until its context ends:
// retry bounds each attempt, so one lost answer costs attemptTimeout,
// not the whole of the caller's time.
func TestRetryBoundsEachAttempt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*attemptTimeout)
	defer cancel()
	attempts := 0
	err := retry(ctx, nil, func(ctx context.Context) error {
		attempts++
		if attempts == 1 { // the answer is lost
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 2, attempts)
}
