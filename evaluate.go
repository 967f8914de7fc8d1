package dspgo

import (
	"context"
	"sync"

	"github.com/dspgo/dspgo/adapter"
)

// DefaultEvalConcurrency is the executions Evaluate runs at once on an
// adapter that declares no limit (Capabilities().MaxConcurrency zero),
// such as the mock.
const DefaultEvalConcurrency = 8

// evaluateOp is Evaluate's name in its errors.
const evaluateOp = "evaluate"

// EvaluateOption configures an Evaluate.
type EvaluateOption func(*evaluateOptions)

type evaluateOptions struct {
	concurrency int
}

// WithConcurrency sets the executions Evaluate runs at once. Zero, the
// default, means the adapter's Capabilities().MaxConcurrency (a pool's
// workers times each one's concurrency), or DefaultEvalConcurrency when
// the adapter declares no limit; never more than the examples.
func WithConcurrency(n int) EvaluateOption {
	return func(o *evaluateOptions) { o.concurrency = n }
}

// Evaluation is the result of Evaluate.
type Evaluation struct {
	// Score is the mean of the examples' scores; an example whose
	// execution failed counts as 0.
	Score float64
	// Results are the examples' results, in the devset's order.
	Results []EvalResult
	// Failures counts the examples whose execution failed.
	Failures int
}

// EvalResult is one example's result in an Evaluation.
type EvalResult struct {
	// Example is the example as the caller gave it.
	Example Example
	// Outputs are the program's outputs, as Execute returns them; nil
	// when the execution failed.
	Outputs map[string]any
	// Score is the metric's score; 0 when the execution failed.
	Score float64
	// Err is the execution's error; nil when it succeeded.
	Err error
}

// Evaluate scores a program on a devset: it executes the program on each
// example's inputs, up to WithConcurrency at once (spread over a pool's
// workers), and scores each prediction with the metric, in this process.
// It works on every backend. An example whose execution fails scores 0
// and keeps its error in its EvalResult; the metric's error or panic, or
// the end of ctx, ends Evaluate at once (the executions in flight are
// cancelled) with that error, the metric's naming its example. Each
// example must be valid as a demo of prog (CodeInvalidArgument naming the
// example). Session.Evaluate runs a session's program with the LM of the
// session's handle.
func (c *Client) Evaluate(ctx context.Context, prog *Program, devset []Example, metric Metric, opts ...EvaluateOption) (*Evaluation, error) {
	return c.evaluate(ctx, "", prog, devset, metric, opts)
}

// evaluate is Evaluate with the LM of the handle (Session.WithLM; "" is
// the default) for a program that names none.
func (c *Client) evaluate(ctx context.Context, handleLM string, prog *Program, devset []Example, metric Metric, opts []EvaluateOption) (*Evaluation, error) {
	const op = evaluateOp
	var eo evaluateOptions
	for _, o := range opts {
		o(&eo)
	}
	if err := ctx.Err(); err != nil {
		return nil, adapter.Wrap(err, c.a.Name(), op)
	}
	if metric == nil {
		return nil, c.errorf(adapter.CodeInvalidArgument, op, "the metric is nil")
	}
	if eo.concurrency < 0 {
		return nil, c.errorf(adapter.CodeInvalidArgument, op, "the concurrency must not be negative, got %d", eo.concurrency)
	}
	if _, err := c.checkProgram(op, prog); err != nil {
		return nil, err
	}
	if _, err := c.checkExamples(op, prog, devset, "devset"); err != nil {
		return nil, err
	}
	n := eo.concurrency
	if n == 0 {
		n = c.a.Capabilities().MaxConcurrency
	}
	if n == 0 {
		n = DefaultEvalConcurrency
	}
	n = min(n, len(devset))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ev := &Evaluation{Results: make([]EvalResult, len(devset))}
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := &ev.Results[i]
				r.Example = devset[i]
				e, err := c.run(ctx, prog.Session, handleLM, prog.ID, devset[i].Inputs)
				if err != nil {
					if ctx.Err() != nil {
						fail(adapter.Wrap(ctx.Err(), c.a.Name(), op))
						return
					}
					r.Err = err
					continue
				}
				r.Outputs = e.Outputs
				if r.Score, err = metric.score(ctx, devset[i], e.Outputs); err != nil {
					fail(c.metricError(op, i, err))
					return
				}
			}
		}()
	}
feed:
	for i := range devset {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = adapter.Wrap(ctx.Err(), c.a.Name(), op)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	var sum float64
	for _, r := range ev.Results {
		if r.Err != nil {
			ev.Failures++
		}
		sum += r.Score
	}
	ev.Score = sum / float64(len(devset))
	return ev, nil
}
