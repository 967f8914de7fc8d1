package dspgo

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/dspgo/dspgo/adapter"
)

// Example is one training or evaluation example of a program (Compile,
// Evaluate): a value for every input (Inputs; an Optional one may be left
// out, and the program then runs without it) and the expected value of
// every declared output (Outputs), and for KindChainOfThought optionally
// the Reasoning. It has a Demo's shape and rules because DSPy's optimizers
// turn examples into demos.
type Example = Demo

// Metric scores a program's prediction for an example: the example as the
// caller gave it, and the prediction's outputs typed as Execute returns
// them ("reasoning" included for KindChainOfThought). Its score is 1 for a
// pass and 0 for a fail, or anything between for partial credit; it must
// be a finite number. An error ends the Compile or Evaluate that called
// it with the error's code (adapter.CodeOf; CodeUnknown for an error
// without one), and so does a panic (CodeInternal). Compile calls it from
// the worker's optimizer, possibly from several goroutines at once;
// Evaluate calls it from its goroutines.
type Metric func(ctx context.Context, example Example, prediction map[string]any) (float64, error)

// BoolMetric is a Metric that passes (1) or fails (0) a prediction.
func BoolMetric(f func(ctx context.Context, example Example, prediction map[string]any) (bool, error)) Metric {
	return func(ctx context.Context, example Example, prediction map[string]any) (float64, error) {
		ok, err := f(ctx, example, prediction)
		if ok && err == nil {
			return 1, nil
		}
		return 0, err
	}
}

// score runs the metric: a panic, an error or a score that is not a
// finite number is an *adapter.Error (the error's own one when it is
// one).
func (m Metric) score(ctx context.Context, example Example, prediction map[string]any) (score float64, err error) {
	defer func() {
		if p := recover(); p != nil {
			score, err = 0, adapter.Errorf(adapter.CodeInternal, "the metric panicked: %v", p)
		}
	}()
	score, err = m(ctx, example, prediction)
	if err != nil {
		if e := (*adapter.Error)(nil); errors.As(err, &e) {
			return 0, err
		}
		return 0, &adapter.Error{Code: adapter.CodeOf(err), Message: "the metric failed", Err: err}
	}
	if math.IsNaN(score) || math.IsInf(score, 0) {
		return 0, adapter.Errorf(adapter.CodeInvalidArgument, "the metric returned %v, not a finite number", score)
	}
	return score, nil
}

// metricError is op's error for err, the metric's failure on example i of
// the devset: it names the example, and keeps err's code and cause.
func (c *Client) metricError(op string, i int, err error) error {
	e := *adapter.Wrap(err, c.a.Name(), op).(*adapter.Error)
	if e.Message == "" {
		e.Message = fmt.Sprintf("devset example %d", i)
	} else {
		e.Message = fmt.Sprintf("devset example %d: %s", i, e.Message)
	}
	return &e
}

// checkExamples validates a set of examples against the program's
// signature as its demos are, naming the set ("trainset", "devset") and the
// example; it returns them converted, as a spec's demos.
func (c *Client) checkExamples(op string, p *Program, examples []Example, set string) ([]Example, error) {
	if len(examples) == 0 {
		return nil, c.errorf(adapter.CodeInvalidArgument, op, "%s is empty", set)
	}
	if path, problem := checkDemoValues(examples, set+" example"); path != "" {
		return nil, c.errorf(adapter.CodeInvalidArgument, op, "%s: %s", path, problem)
	}
	out, err := p.compiled.Examples(examples, set+" example")
	if err != nil {
		return nil, adapter.Wrap(err, c.a.Name(), op)
	}
	return out, nil
}

// checkProgram returns the scope that holds p, or an error unless p is a
// program of this client that still exists in its scope.
func (c *Client) checkProgram(op string, p *Program) (*scope, error) {
	if p == nil {
		return nil, c.errorf(adapter.CodeInvalidArgument, op, "the program is nil")
	}
	q, sc, err := c.lookup(p.Session, op, p.ID)
	if err != nil {
		return nil, err
	}
	if q != p {
		return nil, c.errorf(adapter.CodeFailedPrecondition, op, "program %q%s is not this program: it was deleted and created again", p.ID, inSession(p.Session))
	}
	return sc, nil
}
