package dspgo

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync/atomic"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// CompileOption configures a Compile.
type CompileOption func(*compileOptions)

type compileOptions struct {
	optimizer Optimizer
	valset    []Example
	progress  func(CompileProgress)
	id        string
}

// WithOptimizer chooses the optimizer. Nil, the default, means
// BootstrapFewShot{}.
func WithOptimizer(o Optimizer) CompileOption {
	return func(co *compileOptions) { co.optimizer = o }
}

// WithValset gives the validation examples of the optimizers that score
// candidate programs (BootstrapFewShotWithRandomSearch, MIPROv2); the
// others ignore it. Nil, the default, means the optimizer's choice: the
// training set for the random search, a part of it for MIPROv2.
func WithValset(valset []Example) CompileOption {
	return func(co *compileOptions) { co.valset = valset }
}

// WithProgress calls f with each progress report of the worker's
// optimizer, in order, on the goroutine that called Compile: after every
// score of the metric and every evaluation of a candidate program. Nil,
// the default, means no reports. On an adapter that does not stream,
// there are none.
func WithProgress(f func(CompileProgress)) CompileOption {
	return func(co *compileOptions) { co.progress = f }
}

// WithCompiledID gives the compiled program's id. Empty, the default,
// means a generated one.
func WithCompiledID(id string) CompileOption {
	return func(co *compileOptions) { co.id = id }
}

// CompileProgress is one progress report of Compile's optimizer. Scores
// are on the metric's scale.
type CompileProgress struct {
	// Event is "metric" after a score of the metric, "evaluation" after
	// the evaluation of a candidate program on a dataset.
	Event string
	// Calls counts the metric's scores so far.
	Calls int
	// Score is the metric's last score ("metric") or the candidate's
	// mean score ("evaluation").
	Score float64
	// Mean is the mean of the metric's scores so far.
	Mean float64
	// Evaluations counts the evaluations of candidates so far.
	Evaluations int
	// Best is the best candidate's mean score so far; zero while
	// Evaluations is zero.
	Best float64
}

// Compile optimizes a program with a DSPy optimizer (WithOptimizer;
// BootstrapFewShot by default) on a training set, the metric scoring its
// predictions, and creates the optimized program (its demos and
// instructions; the signature, kind, MaxIters and LM of prog) in prog's
// scope, as CreateProgram does: runnable on every backend, exportable with
// ExportDSPy. prog itself is unchanged; the optimizer starts from its
// signature and instructions, not its demos (DSPy drops a student's
// demos).
//
// The optimizer runs in one worker whose interpreter imports dspy, with
// the LM configuration prog runs with (an OpenAI-compatible one: the dummy
// provider cannot serve DSPy), and calls the metric back in this process
// through the request's tools. An adapter without compile_program (the
// mock) is CodeUnimplemented; a worker without dspy, or with the dummy LM,
// CodeFailedPrecondition. prog must be KindPredict or
// KindChainOfThought. Each example must be valid as a demo of prog
// (CodeInvalidArgument naming the set and the example). metric may be
// nil for LabeledFewShot and BootstrapFewShot (which then accepts every
// run), not for the others. The metric's error or panic ends the compile
// with its code. Ending ctx stops the worker's optimizer before its next
// LM call. Session.Compile compiles a session's program with the LM of
// the session's handle.
func (c *Client) Compile(ctx context.Context, prog *Program, trainset []Example, metric Metric, opts ...CompileOption) (*Program, error) {
	return c.compile(ctx, "", nil, prog, trainset, metric, opts)
}

// compile is Compile with the LM of the handle (Session.WithLM; "" is the
// default) for a program that names none, and the closed flag of a
// Session handle (nil for the Client's).
func (c *Client) compile(ctx context.Context, handleLM string, closed *atomic.Bool, prog *Program, trainset []Example, metric Metric,
	opts []CompileOption) (*Program, error) {
	const op = command.CompileProgram
	co := compileOptions{optimizer: BootstrapFewShot{}}
	for _, o := range opts {
		o(&co)
	}
	if err := ctx.Err(); err != nil {
		return nil, adapter.Wrap(err, c.a.Name(), op)
	}
	sc, err := c.checkProgram(op, prog)
	if err != nil {
		return nil, err
	}
	args, tools, err := c.compileArgs(prog, handleLM, trainset, metric, co)
	if err != nil {
		return nil, err
	}
	if cmds := c.a.Capabilities().Commands; cmds != nil && !slices.Contains(cmds, op) {
		return nil, c.errorf(adapter.CodeUnimplemented, op,
			"the %s backend has no %s: compiling runs DSPy's optimizers in a Python worker with dspy (the port and pool backends)", c.a.Name(), op)
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, c.errorf(adapter.CodeInvalidArgument, op, "%v", err)
	}
	req := adapter.Request{Command: op, Args: raw, Session: prog.Session, Tools: tools}
	resp, err := c.callWithProgress(ctx, req, co.progress)
	if err != nil {
		return nil, err
	}
	var res command.CompileResult
	if err := json.Unmarshal(resp.Result, &res); err != nil {
		return nil, c.errorf(adapter.CodeInternal, op, "malformed result from the backend: %.200s", resp.Result)
	}
	spec := prog.Spec
	spec.ID, spec.Instructions, spec.Demos = co.id, res.Instructions, res.Demos
	return c.createProgram(ctx, prog.Session, closed, sc, spec)
}

// compileArgs checks Compile's arguments and returns compile_program's and
// the tools that run the metric.
func (c *Client) compileArgs(prog *Program, handleLM string, trainset []Example, metric Metric, co compileOptions) (command.CompileArgs, adapter.Tools, error) {
	const op = command.CompileProgram
	if prog.Spec.Kind != KindPredict && prog.Spec.Kind != KindChainOfThought {
		return command.CompileArgs{}, nil, c.errorf(adapter.CodeInvalidArgument, op,
			"a %s program cannot be compiled (only %s and %s)", prog.Spec.Kind, KindPredict, KindChainOfThought)
	}
	if co.optimizer == nil {
		co.optimizer = BootstrapFewShot{}
	}
	opt, err := co.optimizer.args()
	if err != nil {
		return command.CompileArgs{}, nil, c.errorf(adapter.CodeInvalidArgument, op, "%v", err)
	}
	if metric == nil && (opt.Name == command.BootstrapFewShotWithRandomSearch || opt.Name == command.MIPROv2) {
		return command.CompileArgs{}, nil, c.errorf(adapter.CodeInvalidArgument, op, "%s needs a metric", opt.Name)
	}
	train, err := c.checkExamples(op, prog, trainset, "trainset")
	if err != nil {
		return command.CompileArgs{}, nil, err
	}
	var val []Example
	if co.valset != nil {
		if val, err = c.checkExamples(op, prog, co.valset, "valset"); err != nil {
			return command.CompileArgs{}, nil, err
		}
	}
	spec := prog.compiled.Spec
	spec.Demos = nil
	spec = program.WireSpec(spec)
	args := command.CompileArgs{ProgramID: prog.ID, Spec: spec, Optimizer: opt, Trainset: program.WireDemos(train), Valset: program.WireDemos(val),
		Metric: metric != nil, LM: prog.lm(handleLM)}
	var tools adapter.Tools
	if metric != nil {
		tools = &metricTool{p: prog, metric: metric, sets: map[string][]Example{"trainset": trainset, "valset": co.valset}}
	}
	return args, tools, nil
}

// callWithProgress runs req, as a stream feeding progress when there is
// one to feed and the adapter streams.
func (c *Client) callWithProgress(ctx context.Context, req adapter.Request, progress func(CompileProgress)) (adapter.Response, error) {
	s, ok := c.a.(adapter.Streamer)
	if progress == nil || !ok || !c.a.Capabilities().Streaming {
		return c.a.Call(ctx, req)
	}
	for ch, err := range s.Stream(ctx, req) {
		switch {
		case err != nil:
			return adapter.Response{}, err
		case ch.Response != nil:
			return *ch.Response, nil
		}
		var p command.CompileProgress
		if err := json.Unmarshal(ch.Data, &p); err != nil || p.Event == "" {
			return adapter.Response{}, c.errorf(adapter.CodeInternal, req.Command, "malformed progress from the backend: %.200s", ch.Data)
		}
		report := CompileProgress{Event: p.Event, Calls: p.Calls, Score: p.Score, Mean: p.Mean, Evaluations: p.Evaluations}
		if p.Event == "evaluation" {
			report.Score /= 100 // DSPy's percentages
		}
		if p.Best != nil {
			report.Best = *p.Best / 100
		}
		progress(report)
	}
	return adapter.Response{}, c.errorf(adapter.CodeInternal, req.Command, "the stream ended without a result")
}

// metricTool is the tool command.MetricTool: the worker's optimizer calls
// it to score a prediction with the caller's metric.
type metricTool struct {
	p      *Program
	metric Metric
	sets   map[string][]Example // the examples as the caller gave them
}

// CallTool scores the prediction in args (command.MetricArgs).
func (m *metricTool) CallTool(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
	if name != command.MetricTool {
		return nil, adapter.Errorf(adapter.CodeNotFound, "tool %q is not registered (registered: %s)", name, command.MetricTool)
	}
	var a command.MetricArgs
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil {
		return nil, adapter.Errorf(adapter.CodeInvalidArgument, "the metric's arguments are malformed: %v", err)
	}
	example := a.Example
	if set := m.sets[a.Set]; a.Index != nil && *a.Index >= 0 && *a.Index < len(set) {
		example = set[*a.Index]
	}
	prediction, err := m.p.compiled.Outputs(a.Prediction)
	if err != nil {
		return nil, err
	}
	score, err := m.metric.score(ctx, example, prediction)
	if err != nil {
		return nil, err
	}
	return json.Marshal(command.MetricResult{Score: score})
}
