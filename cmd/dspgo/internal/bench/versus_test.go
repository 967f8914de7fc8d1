package bench

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/protocol"
)

// TestVersusAddsThePlainClientWithSeveralCallsPerWorker: a row with one
// call in flight per worker is measured against the raw baseline alone; a
// row with more is followed by the plain client's row, which has no
// target and the same dspgo figure. Every measurement served calls.
func TestVersusAddsThePlainClientWithSeveralCallsPerWorker(t *testing.T) {
	testutil.VerifyNoChildren(t)
	s := Suite{Runs: 1, Duration: 100 * time.Millisecond, Python: testutil.Python(t), WorkerDir: testutil.PythonDir()}
	a, err := port.New(context.Background(), s.portOptions())
	require.NoError(t, err)
	defer a.Close(context.Background())
	rw, err := s.raw("--max-concurrency", "32")
	require.NoError(t, err)
	defer rw.stop()
	call := func(ctx context.Context) error {
		_, err := a.Call(ctx, adapter.Request{Command: command.Ping})
		return err
	}
	ping := protocol.Request{Command: command.Ping}

	rows, err := s.versus("one", 1, call, []*rawWorker{rw}, 1, ping, 0.5)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, "one", rows[0].Workload)
	assert.Equal(t, "≥ 0.50 of raw", rows[0].Target)
	assert.Positive(t, rows[0].Raw.Median)
	assert.Positive(t, rows[0].DSPGo.Median)

	rows, err = s.versus("several", 4, call, []*rawWorker{rw}, 4, ping, 0.5)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, "several", rows[0].Workload)
	plain := rows[1]
	assert.Equal(t, "several, against a plain client", plain.Workload)
	assert.Empty(t, plain.Target, "no target")
	assert.True(t, plain.Met)
	assert.Positive(t, plain.Raw.Median, "the plain client served calls")
	assert.Equal(t, rows[0].DSPGo, plain.DSPGo)
	assert.InDelta(t, plain.DSPGo.Median/plain.Raw.Median, plain.Ratio, 0.001)
}
