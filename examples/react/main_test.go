package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The example runs offline on the mock and on Python workers, and its Go
// tools run: their results and their errors are the trajectory.
func TestExampleRuns(t *testing.T) {
	for _, backend := range []string{"mock", "pool"} {
		t.Run(backend, func(t *testing.T) {
			testutil.VerifyNoChildren(t)
			var out bytes.Buffer
			err := run(context.Background(), "", config.LoadOptions{Environ: func() []string { return nil }, Dir: t.TempDir(),
				Set: map[string]any{"adapter": backend, "pool.size": 1, "python.interpreter": testutil.Python(t), "python.worker_dir": testutil.PythonDir()}}, &out)
			require.NoError(t, err)
			assert.Regexp(t, `(?m)^answer: answer [0-9a-f]{8} [0-9a-f]{8}$`, out.String())
			assert.Contains(t, out.String(), "step 1: multiply({\"a\":17,\"b\":23}) → 391")
			assert.Contains(t, out.String(), `"forecast":"light rain, 14°C"`)
			assert.Contains(t, out.String(), `"code":"not_found"`)
		})
	}
}
