package port_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
)

// TestCloseReportsAnUncleanStop: Close returns what it met when the worker
// does not stop cleanly, and the same error again; a clean stop is nil
// (every other test's cleanup checks that).
func TestCloseReportsAnUncleanStop(t *testing.T) {
	for _, c := range []struct {
		name, after, want string
		grace             time.Duration
	}{
		{"a non-zero exit", "exit 7", "exit status 7", 10 * time.Second}, // exits at once
		{"still running after the shutdown request", "sleep 60", "after the shutdown request (sent SIGTERM); signal: terminated", 100 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			testutil.VerifyNoChildren(t)
			a, err := port.New(t.Context(), port.Options{Python: testutil.WrappedPython(t, c.after), WorkerDir: testutil.PythonDir(),
				StopGrace: c.grace, Logger: quiet})
			require.NoError(t, err)
			_, err = call(t, a, t.Context(), "ping", "")
			require.NoError(t, err)

			err = a.Close(context.Background())
			assert.Equal(t, adapter.CodeInternal, adapter.CodeOf(err), "%v", err)
			assert.ErrorContains(t, err, "did not stop cleanly")
			assert.ErrorContains(t, err, c.want)
			assert.Equal(t, err, a.Close(context.Background()), "a second Close returns the first one's result")
		})
	}
}

// TestCloseAfterACrashIsClean: a worker that died before Close is no
// error of Close (its calls were told).
func TestCloseAfterACrashIsClean(t *testing.T) {
	testutil.VerifyNoChildren(t)
	a, err := port.New(t.Context(), port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Logger: quiet,
		Restart: port.RestartPolicy{Min: time.Hour}})
	require.NoError(t, err)
	a.Kill()
	testutil.WaitFor(t, "the worker down", func() bool { return !a.Ready() })
	assert.NoError(t, a.Close(context.Background()))
}
