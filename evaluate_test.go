package dspgo_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/command"
)

// Evaluate on the mock, whose dummy outputs depend only on the inputs.
// Compile needs a Python worker with dspy: python/compile_test.go.

func evalSetup(t *testing.T) (*mock.Adapter, *dspgo.Client, *dspgo.Program, []dspgo.Example) {
	t.Helper()
	a := mock.New(mock.Options{})
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
	require.NoError(t, err)
	var devset []dspgo.Example
	for i := range 6 {
		devset = append(devset, dspgo.Example{Inputs: map[string]any{"question": fmt.Sprint("q", i)},
			Outputs: map[string]any{"answer": fmt.Sprint("a", i)}})
	}
	return a, c, p, devset
}

func TestEvaluateScoresEveryExampleInOrder(t *testing.T) {
	_, c, p, devset := evalSetup(t)
	want := map[string]any{}
	for _, ex := range devset {
		out, err := c.Execute(t.Context(), p.ID, ex.Inputs)
		require.NoError(t, err)
		want[ex.Inputs["question"].(string)] = out["answer"]
	}
	// Even questions pass, odd ones score a quarter.
	metric := func(_ context.Context, ex dspgo.Example, pred map[string]any) (float64, error) {
		q := ex.Inputs["question"].(string)
		assert.Equal(t, want[q], pred["answer"], "the prediction of this example")
		if (q[1]-'0')%2 == 0 {
			return 1, nil
		}
		return 0.25, nil
	}
	ev, err := c.Evaluate(t.Context(), p, devset, metric)
	require.NoError(t, err)
	assert.InDelta(t, (3*1+3*0.25)/6.0, ev.Score, 1e-12)
	assert.Zero(t, ev.Failures)
	require.Len(t, ev.Results, len(devset))
	for i, r := range ev.Results {
		assert.Equal(t, devset[i], r.Example)
		assert.Equal(t, want[devset[i].Inputs["question"].(string)], r.Outputs["answer"])
		assert.NoError(t, r.Err)
	}
	assert.Equal(t, 0.25, ev.Results[1].Score)

	bools, err := c.Evaluate(t.Context(), p, devset, dspgo.BoolMetric(func(_ context.Context, ex dspgo.Example, pred map[string]any) (bool, error) {
		return pred["answer"] == ex.Outputs["answer"], nil
	}))
	require.NoError(t, err)
	assert.Zero(t, bools.Score, "the dummy never gives the expected answer")
}

// TestEvaluateOptionalInputLeftOut: an example may leave an Optional input
// out, and its program then runs without it, as Execute does.
func TestEvaluateOptionalInputLeftOut(t *testing.T) {
	a := mock.New(mock.Options{})
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question, hint: Optional[str] -> answer")})
	require.NoError(t, err)
	left, err := c.Execute(t.Context(), p.ID, map[string]any{"question": "q"})
	require.NoError(t, err)
	null, err := c.Execute(t.Context(), p.ID, map[string]any{"question": "q", "hint": nil})
	require.NoError(t, err)
	require.NotEqual(t, left, null)
	devset := []dspgo.Example{
		{Inputs: map[string]any{"question": "q"}, Outputs: map[string]any{"answer": left["answer"]}},
		{Inputs: map[string]any{"question": "q", "hint": nil}, Outputs: map[string]any{"answer": null["answer"]}},
	}
	exact := func(_ context.Context, ex dspgo.Example, pred map[string]any) (float64, error) {
		if pred["answer"] == ex.Outputs["answer"] {
			return 1, nil
		}
		return 0, nil
	}
	ev, err := c.Evaluate(t.Context(), p, devset, exact)
	require.NoError(t, err)
	assert.Equal(t, 1.0, ev.Score, "each example ran as it was given")
}

func TestEvaluateRunsInParallel(t *testing.T) {
	_, c, p, devset := evalSetup(t)
	const n = 3
	var inMetric atomic.Int32
	all := make(chan struct{})
	metric := func(ctx context.Context, _ dspgo.Example, _ map[string]any) (float64, error) {
		if inMetric.Add(1) == n {
			close(all)
		}
		select { // every one of the first n waits until n are in the metric at once
		case <-all:
			return 1, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ev, err := c.Evaluate(ctx, p, devset, metric, dspgo.WithConcurrency(n))
	require.NoError(t, err, "the metric ran on %d examples at once", n)
	assert.Equal(t, 1.0, ev.Score)
}

func TestEvaluateFailures(t *testing.T) {
	a, c, p, devset := evalSetup(t)
	ctx := t.Context()
	pass := func(context.Context, dspgo.Example, map[string]any) (float64, error) { return 1, nil }

	t.Run("a failed execution scores 0", func(t *testing.T) {
		a.Inject(mock.Fault{Command: command.ExecuteProgram, FailNext: 2, Code: adapter.CodeUnavailable})
		defer a.ClearFaults()
		ev, err := c.Evaluate(ctx, p, devset, pass, dspgo.WithConcurrency(1))
		require.NoError(t, err)
		assert.Equal(t, 2, ev.Failures)
		assert.InDelta(t, 4.0/6, ev.Score, 1e-12)
		assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(ev.Results[0].Err))
		assert.Nil(t, ev.Results[0].Outputs)
	})
	t.Run("the metric's error ends it with its code", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := c.Evaluate(ctx, p, devset, func(context.Context, dspgo.Example, map[string]any) (float64, error) {
			return 0, &adapter.Error{Code: adapter.CodeResourceExhausted, Message: "quota", Err: boom}
		})
		assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err))
		assert.ErrorIs(t, err, boom)
		assert.Regexp(t, `^mock: evaluate: devset example \d: quota: boom \(resource_exhausted\)$`, err.Error())
		_, err = c.Evaluate(ctx, p, devset, func(context.Context, dspgo.Example, map[string]any) (float64, error) {
			return 0, boom
		})
		assert.ErrorIs(t, err, boom)
		assert.Regexp(t, `^mock: evaluate: devset example \d: the metric failed: boom \(unknown\)$`, err.Error())
	})
	t.Run("a panic is internal", func(t *testing.T) {
		_, err := c.Evaluate(ctx, p, devset, func(context.Context, dspgo.Example, map[string]any) (float64, error) {
			panic("metric bug")
		})
		assert.Equal(t, adapter.CodeInternal, adapter.CodeOf(err))
		assert.ErrorContains(t, err, "metric bug")
	})
	t.Run("a score that is not a number", func(t *testing.T) {
		_, err := c.Evaluate(ctx, p, devset, func(context.Context, dspgo.Example, map[string]any) (float64, error) {
			return 0 * float64(len(devset)) / 0, nil
		})
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		assert.Regexp(t, `^mock: evaluate: devset example \d: the metric returned NaN, not a finite number \(invalid_argument\)$`, err.Error())
	})
	t.Run("cancellation ends it at once", func(t *testing.T) {
		a.Inject(mock.Fault{Command: command.ExecuteProgram, Hang: true})
		defer a.ClearFaults()
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := c.Evaluate(cctx, p, devset, pass)
			done <- err
		}()
		cancel()
		select {
		case err := <-done:
			assert.Equal(t, adapter.CodeCanceled, adapter.CodeOf(err), "%v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("Evaluate did not end with its context")
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		_, err := c.Evaluate(ctx, p, devset, nil)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		_, err = c.Evaluate(ctx, p, nil, pass)
		assert.ErrorContains(t, err, "devset is empty")
		_, err = c.Evaluate(ctx, p, []dspgo.Example{{Inputs: map[string]any{"question": "q"}}}, pass)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		assert.ErrorContains(t, err, "devset example 0 holds no output")
		_, err = c.Evaluate(ctx, p, devset, pass, dspgo.WithConcurrency(-1))
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		other, err := dspgo.NewClient(a).CreateProgram(ctx, dspgo.ProgramSpec{ID: p.ID, Signature: p.Spec.Signature})
		require.NoError(t, err)
		_, err = c.Evaluate(ctx, other, devset, pass)
		assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "another client's program")
	})
}

func TestCompileNeedsAWorkerWithDSPy(t *testing.T) {
	_, c, p, devset := evalSetup(t)
	_, err := c.Compile(t.Context(), p, devset, nil, dspgo.WithOptimizer(dspgo.LabeledFewShot{}))
	assert.Equal(t, adapter.CodeUnimplemented, adapter.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, "the mock backend has no compile_program")
}

func TestOptimizerParameters(t *testing.T) {
	_, c, p, devset := evalSetup(t)
	for _, o := range []dspgo.Optimizer{
		dspgo.BootstrapFewShot{MaxRounds: -1},
		dspgo.BootstrapFewShotWithRandomSearch{NumCandidatePrograms: -2},
		dspgo.MIPROv2{Auto: "light", NumTrials: 3},
		dspgo.MIPROv2{NumTrials: 3},
		dspgo.MIPROv2{Auto: "quick"},
		dspgo.MIPROv2{Seed: -1},
	} {
		// Checked before the backend is asked: the mock's refusal would
		// be CodeUnimplemented.
		_, err := c.Compile(t.Context(), p, devset, nil, dspgo.WithOptimizer(o))
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%#v: %v", o, err)
	}
	_, err := c.Compile(t.Context(), p, devset, nil, dspgo.WithOptimizer(dspgo.MIPROv2{}))
	assert.ErrorContains(t, err, "MIPROv2 needs a metric")
	_, err = c.Compile(t.Context(), p, devset[:1], nil, dspgo.WithValset([]dspgo.Example{{}}))
	assert.ErrorContains(t, err, "valset example 0 holds no input")
}
