package registry_test

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/registry"
)

// captureStderr runs f with os.Stderr a pipe, and returns what f wrote
// there.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	prev := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	func() {
		defer func() { os.Stderr = prev }()
		f()
	}()
	require.NoError(t, w.Close())
	out := <-done
	require.NoError(t, r.Close())
	return out
}

// TestModuleIsQuiet: an fx application of the modules with
// config.FxLogger prints nothing while it starts, runs and stops at the
// default log level, not fx's trace either; at debug, fx's events go to
// the configured logger's output.
func TestModuleIsQuiet(t *testing.T) {
	run := func(level string, logs io.Writer) {
		set := map[string]any{"adapter": "mock"}
		if level != "" {
			set["log.level"] = level
		}
		app := fx.New(config.FxLogger,
			fx.Supply(config.LoadOptions{Environ: noEnv, Dir: t.TempDir(), Set: set, LogOutput: logs}),
			config.Module, registry.Module,
			fx.Invoke(func(c *dspgo.Client) error { return c.Ping(context.Background()) }))
		require.NoError(t, app.Start(t.Context()))
		require.NoError(t, app.Stop(t.Context()))
	}
	var logs testutil.SyncBuffer
	stderr := captureStderr(t, func() { run("", &logs) })
	assert.Empty(t, stderr)
	assert.Empty(t, logs.String())

	stderr = captureStderr(t, func() { run("debug", &logs) })
	assert.Empty(t, stderr)
	for _, want := range []string{"level=DEBUG msg=provided", "type=*dspgo.Client", "module=registry", "msg=invoking", "msg=started", `msg="OnStop hook executed"`} {
		assert.Contains(t, logs.String(), want)
	}
	assert.NotContains(t, logs.String(), "[Fx]")
	assert.False(t, strings.Contains(logs.String(), "level=INFO"), logs.String())
}

// TestLogOutput: what registry opens logs to config's LogOutput.
func TestLogOutput(t *testing.T) {
	cfg, err := config.Load(config.LoadOptions{Environ: noEnv, Dir: t.TempDir()})
	require.NoError(t, err)
	assert.Same(t, os.Stderr, cfg.LogOutput())
	var logs testutil.SyncBuffer
	cfg, err = config.Load(config.LoadOptions{Environ: noEnv, Dir: t.TempDir(), LogOutput: &logs,
		Set: map[string]any{"adapter": "python_port", "python.interpreter": testutil.Python(t), "python.worker_dir": testutil.PythonDir()}})
	require.NoError(t, err)
	r, err := registry.New(registry.Builtin()...)
	require.NoError(t, err)
	stderr := captureStderr(t, func() {
		a, _, err := r.Open(t.Context(), cfg)
		require.NoError(t, err)
		registry.PortOptions(cfg).Logger.Warn("a warning")
		require.NoError(t, a.Close(t.Context()))
	})
	assert.Empty(t, stderr)
	assert.Contains(t, logs.String(), `level=WARN msg="a warning"`)
}

// TestFactoriesReportWhatTheAdaptersHave: what a built-in factory reports
// for listings (dspgo adapters), asked of its adapter in process, is what
// the adapter reports once opened from configuration, on its real
// workers.
func TestFactoriesReportWhatTheAdaptersHave(t *testing.T) {
	testutil.VerifyNoChildren(t)
	r, err := registry.New(registry.Builtin()...)
	require.NoError(t, err)
	for _, f := range r.Factories() {
		t.Run(f.Name, func(t *testing.T) {
			require.NotNil(t, f.Capabilities)
			want, err := f.Capabilities(t.Context())
			require.NoError(t, err)
			assert.True(t, want.Sessions, "a built-in adapter has sessions: the capabilities were asked of it")
			cfg, err := config.Load(config.LoadOptions{Environ: noEnv, Dir: t.TempDir(), Set: map[string]any{"adapter": f.Name,
				"python.interpreter": testutil.Python(t), "python.worker_dir": testutil.PythonDir(), "pool.size": 1}})
			require.NoError(t, err)
			a, _, err := r.Open(t.Context(), cfg)
			require.NoError(t, err)
			got := a.Capabilities()
			require.NoError(t, a.Close(t.Context()))
			got.Commands, got.MaxConcurrency = nil, 0 // not reported for listings
			assert.Equal(t, want, got)
		})
	}
}
