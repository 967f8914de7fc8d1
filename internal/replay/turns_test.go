package replay_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo/internal/replay"
)

// Turns: a second broadcast of one key waits for the first's turn to
// end, one of another key does not, and a wait ends with its context.
func TestTurns(t *testing.T) {
	defer goleak.VerifyNone(t)
	var turns replay.Turns
	ctx := t.Context()
	first, err := turns.Take(ctx, lm(`{"provider":"dummy","model":"a","name":"x"}`))
	require.NoError(t, err)

	other, err := turns.Take(ctx, lm(`{"provider":"dummy","model":"a","name":"y"}`))
	require.NoError(t, err, "another LM name is another key")
	other()

	got := make(chan func())
	go func() {
		done, err := turns.Take(ctx, lm(`{"provider":"dummy","model":"b","name":"x"}`))
		assert.NoError(t, err)
		got <- done
	}()
	cancelled, cancel := context.WithCancel(ctx)
	waited := make(chan error)
	go func() {
		_, err := turns.Take(cancelled, lm(`{"provider":"dummy","model":"c","name":"x"}`))
		waited <- err
	}()
	cancel()
	assert.ErrorIs(t, <-waited, context.Canceled, "the wait ends with its context")
	select {
	case <-got:
		t.Fatal("the second broadcast of the key took a turn the first holds")
	default:
	}
	first()
	(<-got)()
	again, err := turns.Take(ctx, lm(`{"provider":"dummy","model":"d","name":"x"}`))
	require.NoError(t, err, "every turn was given back")
	again()
}
