package port_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/conformance"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = testutil.Discard

func memoryHandler() protocol.Handler { return mock.NewHandler(mock.HandlerOptions{}) }

func crash(_ context.Context, a adapter.Adapter) error {
	a.(*port.Adapter).Kill()
	return nil
}

func TestConformanceInMemory(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Name: "port/memory",
		New: func(ctx context.Context) (adapter.Adapter, error) {
			return port.New(ctx, port.Options{Handler: memoryHandler, Logger: quiet})
		},
		Faults: &conformance.Faults{Crash: crash},
	})
}

func TestConformancePython(t *testing.T) {
	testutil.VerifyNoChildren(t)
	conformance.Run(t, conformance.Harness{
		Name: "port/python",
		New: func(ctx context.Context) (adapter.Adapter, error) {
			return port.New(ctx, port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Logger: quiet, Diagnostics: true})
		},
		Faults: &conformance.Faults{Crash: crash},
	})
}
