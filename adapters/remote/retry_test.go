package remote

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
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

// refusingServer starts a server whose one user may not publish to
// JetStream's API, and returns a connection as that user.
func refusingServer(t *testing.T) *nats.Conn {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		Users: []*server.User{{Username: "u", Password: "p", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.>"}}}}}})
	require.NoError(t, err)
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	require.True(t, s.ReadyForConnections(10*time.Second))
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("u", "p"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// A refused request to JetStream's API is never answered: the attempt
// waiting for it ends refusalGrace after the refusal (its context is
// canceled, where attemptTimeout would have it past its deadline), and
// retry returns *stateRefused naming the subject.
func TestRetryEndsARefusedAttempt(t *testing.T) {
	nc := refusingServer(t)
	var attemptErr error
	err := retry(context.Background(), nc, func(ctx context.Context) error {
		if err := nc.Publish("$JS.API.INFO", nil); err != nil {
			return err
		}
		<-ctx.Done() // the answer that cannot come
		attemptErr = ctx.Err()
		return attemptErr
	})
	refused, ok := errors.AsType[*stateRefused](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "$JS.API.INFO", refused.subject)
	assert.ErrorIs(t, attemptErr, context.Canceled, "ended by the refusal, not by the attempt's time-out")
}

// The refusal may be another request's on the same connection: an attempt
// that ends on its own within refusalGrace of it keeps its outcome.
func TestRetryKeepsAnAttemptThatEndsWithinTheGrace(t *testing.T) {
	nc := refusingServer(t)
	require.NoError(t, nc.Publish("$JS.API.INFO", nil))
	require.NoError(t, nc.Flush())
	attempts := 0
	err := retry(context.Background(), nc, func(ctx context.Context) error {
		attempts++
		if attempts == 1 {
			// Another request's refusal arrives while this attempt runs.
			require.NoError(t, nc.Publish("$JS.API.STREAM.INFO.X", nil))
			require.Eventually(t, func() bool { return refusedJetStream(nc, nil) == "$JS.API.STREAM.INFO.X" }, 5*time.Second, time.Millisecond)
		}
		return ctx.Err()
	})
	assert.NoError(t, err)
	assert.Equal(t, 1, attempts)
}
