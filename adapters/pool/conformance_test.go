package pool_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/conformance"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = testutil.Discard

func memoryHandler() protocol.Handler { return mock.NewHandler(mock.HandlerOptions{}) }

// killAll crashes every worker of the pool.
func killAll(_ context.Context, a adapter.Adapter) error {
	for _, w := range a.(*pool.Pool).Workers() {
		w.Kill()
	}
	return nil
}

func TestConformanceInMemory(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Name: "pool/memory",
		New: func(ctx context.Context) (adapter.Adapter, error) {
			return pool.New(ctx, pool.Options{Size: 2, Logger: quiet, Worker: port.Options{Handler: memoryHandler}})
		},
		Faults: &conformance.Faults{Crash: killAll},
	})
}

func pythonOptions(t testing.TB, size int) pool.Options {
	return pool.Options{Size: size, Logger: quiet,
		Worker: port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Diagnostics: true}}
}

func TestConformancePython(t *testing.T) {
	testutil.VerifyNoChildren(t)
	conformance.Run(t, conformance.Harness{
		Name: "pool/python",
		New: func(ctx context.Context) (adapter.Adapter, error) {
			return pool.New(ctx, pythonOptions(t, 2))
		},
		Faults: &conformance.Faults{Crash: killAll},
	})
}
