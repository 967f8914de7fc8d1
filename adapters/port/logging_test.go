package port_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
)

// serveOnce runs a Python worker with logger from start to Close, which
// joins the reader of its stderr: every line is logged when it returns.
func serveOnce(t *testing.T, logger *slog.Logger) {
	t.Helper()
	testutil.VerifyNoChildren(t)
	a, err := port.New(t.Context(), port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Logger: logger})
	require.NoError(t, err)
	_, err = a.Call(t.Context(), adapter.Request{Command: "ping"})
	require.NoError(t, err)
	require.NoError(t, a.Close(t.Context()))
}

func lines(s string) []string {
	if s = strings.TrimSpace(s); s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestWorkerLogsEachAttributeOnce: a worker's stderr records reach the
// given logger at their level, with the adapter's attributes, each once:
// the worker's own worker_id is the host's.
func TestWorkerLogsEachAttributeOnce(t *testing.T) {
	var out testutil.SyncBuffer
	serveOnce(t, slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo})))
	var msgs []string
	for _, line := range lines(out.String()) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		msgs = append(msgs, rec["msg"].(string))
		assert.Equal(t, "port", rec["adapter"], line)
		assert.Equal(t, "port", rec["worker_id"], line)
	}
	assert.Contains(t, msgs, "worker started")
	assert.Contains(t, msgs, "worker stopped")

	// Text shows what decoding JSON would hide: a key twice.
	var text testutil.SyncBuffer
	serveOnce(t, slog.New(slog.NewTextHandler(&text, nil)))
	require.NotEmpty(t, lines(text.String()))
	for _, line := range lines(text.String()) {
		assert.Equal(t, 1, strings.Count(line, " worker_id="), line)
		assert.Equal(t, 1, strings.Count(line, " adapter="), line)
	}
}

// TestNoLoggerIsQuiet: an adapter given no logger logs nothing, not
// through slog.Default() either; the worker is asked for errors only.
func TestNoLoggerIsQuiet(t *testing.T) {
	var out testutil.SyncBuffer
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	slog.SetDefault(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	serveOnce(t, nil)
	assert.Empty(t, out.String())
}
