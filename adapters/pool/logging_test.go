package pool_test

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/internal/wait"
)

// TestNoLoggerIsQuiet: a pool given no logger logs nothing, not through
// slog.Default() either: not a worker's start or stop, not even a
// worker's crash (a library logs only through the logger it is given).
func TestNoLoggerIsQuiet(t *testing.T) {
	testutil.VerifyNoChildren(t)
	var out testutil.SyncBuffer
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	slog.SetDefault(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))

	p, err := pool.New(t.Context(), pool.Options{Size: 1,
		Worker: port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir()}})
	require.NoError(t, err)
	for range 4 {
		_, err = p.Call(t.Context(), adapter.Request{Command: "ping"})
		require.NoError(t, err)
	}
	assert.Empty(t, out.String())

	// A crash: the worker is killed, and a call succeeds again once it
	// was replaced; nothing was logged.
	crashes := p.Stats().Crashes
	p.Workers()[0].Kill()
	ok := wait.Until(t.Context(), func() bool {
		_, err := p.Call(t.Context(), adapter.Request{Command: "ping"})
		return err == nil && p.Stats().Crashes > crashes
	})
	require.True(t, ok, "no call succeeded after the crash")
	require.NoError(t, p.Close(t.Context()))
	assert.Empty(t, out.String())
}
