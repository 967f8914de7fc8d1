package pool_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
)

// TestCloseReportsWorkersThatDidNotStopCleanly: the pool's Close returns
// the error of every worker that exited with a failure status, joined, and
// the same error again.
func TestCloseReportsWorkersThatDidNotStopCleanly(t *testing.T) {
	testutil.VerifyNoChildren(t)
	p, err := pool.New(t.Context(), pool.Options{Size: 2, Logger: quiet,
		Worker: port.Options{Python: testutil.WrappedPython(t, "exit 7"), WorkerDir: testutil.PythonDir(), StopGrace: 10 * time.Second}}) // exits at once
	require.NoError(t, err)
	require.Len(t, p.Workers(), 2)

	err = p.Close(context.Background())
	assert.Equal(t, adapter.CodeInternal, adapter.CodeOf(err), "%v", err)
	assert.Equal(t, 2, strings.Count(err.Error(), "exit status 7"), "both workers: %v", err)
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(err, &joined))
	assert.Len(t, joined.Unwrap(), 2)
	assert.Equal(t, err, p.Close(context.Background()), "a second Close returns the first one's result")
}
