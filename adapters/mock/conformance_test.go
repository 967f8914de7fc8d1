package mock_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/conformance"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Harness is the mock's conformance harness.
func Harness() conformance.Harness {
	return conformance.Harness{
		Name: "mock",
		New: func(context.Context) (adapter.Adapter, error) {
			return mock.New(mock.Options{}), nil
		},
		Faults: &conformance.Faults{
			Crash:   func(_ context.Context, a adapter.Adapter) error { a.(*mock.Adapter).Crash(); return nil },
			Recover: func(_ context.Context, a adapter.Adapter) error { a.(*mock.Adapter).Restart(); return nil },
		},
	}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, Harness())
}

func TestConformanceRunAllSkipsNothing(t *testing.T) {
	results := conformance.RunAll(t.Context(), Harness(), nil)
	if len(results) != len(conformance.Cases()) {
		t.Fatalf("%d results for %d cases", len(results), len(conformance.Cases()))
	}
	for _, r := range results {
		if r.Outcome != conformance.Passed {
			t.Errorf("%s: %s: %s", r.Case, r.Outcome, r.Reason)
		}
	}
}
