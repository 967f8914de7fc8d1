package python_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/lmtest"
	"github.com/dspgo/dspgo/internal/testutil"
	poll "github.com/dspgo/dspgo/internal/wait"
)

// Compile runs DSPy's optimizers in the worker, the metric called back in
// Go, against the test LM's needs_demos model: it answers an input right
// only when the prompt holds a demo whose input shares a word with it, so
// the score before compiling is 0 and after it higher.

// produceSig classifies a food: the test LM's value rule answers
// "category <hex> <hex>" without a teaching demo.
const produceSig = "food -> category"

func example(food, category string) dspgo.Example {
	return dspgo.Example{Inputs: map[string]any{"food": food}, Outputs: map[string]any{"category": category}}
}

// trainset pairs examples that share a word, so that each teaches the
// other (BootstrapFewShot leaves an example out of its own prompt).
var trainset = []dspgo.Example{
	example("ripe apple", "fruit"), example("apple juice", "fruit"),
	example("raw carrot", "vegetable"), example("carrot soup", "vegetable"),
	example("smoked salmon", "fish"), example("salmon roe", "fish"),
	example("old oak", "tree"), example("oak leaf", "tree"),
}

// devset shares one word with the trainset examples of its category only.
var devset = []dspgo.Example{
	example("apple tart", "fruit"), example("carrot cake", "vegetable"),
	example("salmon fillet", "fish"), example("oak bark", "tree"),
}

// exact passes a prediction whose category is the example's.
var exact = dspgo.BoolMetric(func(_ context.Context, ex dspgo.Example, pred map[string]any) (bool, error) {
	return pred["category"] == ex.Outputs["category"], nil
})

// compileLM is the dspy engine on the needs_demos model.
var compileLM = dspgo.LMConfig{Model: "test-model+needs_demos", Timeout: 20 * time.Second}

func TestCompileImprovesTheScore(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	for _, tc := range []struct {
		name      string
		optimizer dspgo.Optimizer
		kind      string
		minDemos  int
	}{
		{"LabeledFewShot", dspgo.LabeledFewShot{}, dspgo.KindPredict, len(trainset)},
		{"BootstrapFewShot", dspgo.BootstrapFewShot{MaxBootstrappedDemos: 4, MaxLabeledDemos: 8}, dspgo.KindPredict, 8},
		{"BootstrapFewShot/chain_of_thought", dspgo.BootstrapFewShot{}, dspgo.KindChainOfThought, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachBackend(t, srv, compileLM, func(t *testing.T, c *dspgo.Client) {
				ctx := t.Context()
				prog, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature(produceSig), Kind: tc.kind,
					Instructions: "Name the food's category."})
				require.NoError(t, err)
				before, err := c.Evaluate(ctx, prog, devset, exact)
				require.NoError(t, err)

				var reports []dspgo.CompileProgress
				compiled, err := c.Compile(ctx, prog, trainset, exact, dspgo.WithOptimizer(tc.optimizer),
					dspgo.WithProgress(func(p dspgo.CompileProgress) { reports = append(reports, p) }))
				require.NoError(t, err)
				after, err := c.Evaluate(ctx, compiled, devset, exact)
				require.NoError(t, err)
				t.Logf("%s (%s): score before %.2f, after %.2f; %d demos; %d progress reports",
					tc.name, tc.kind, before.Score, after.Score, len(compiled.Spec.Demos), len(reports))

				assert.Zero(t, before.Score, "no demo, no right answer")
				assert.Equal(t, 1.0, after.Score, "every devset example has a teaching demo")
				assert.GreaterOrEqual(t, len(compiled.Spec.Demos), tc.minDemos)
				assert.Equal(t, prog.Spec.Instructions, compiled.Spec.Instructions, "only MIPROv2 changes instructions")
				assert.NotEqual(t, prog.ID, compiled.ID)
				if _, ok := tc.optimizer.(dspgo.BootstrapFewShot); ok {
					require.NotEmpty(t, reports, "the metric's scores are reported")
					last := reports[len(reports)-1]
					assert.Equal(t, "metric", last.Event)
					assert.Equal(t, len(reports), last.Calls)
					assert.Positive(t, last.Mean, "bootstrapping found runs the metric passes")
				} else {
					assert.Empty(t, reports, "LabeledFewShot calls no metric")
				}

				// The compiled program is a program like any other: exportable.
				var file strings.Builder
				require.NoError(t, compiled.ExportDSPy(&file))
				assert.Contains(t, file.String(), `"apple juice"`)
			})
		})
	}
}

func TestCompileWithRandomSearch(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	eachBackend(t, srv, compileLM, func(t *testing.T, c *dspgo.Client) {
		ctx := t.Context()
		prog, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature(produceSig)})
		require.NoError(t, err)
		var evaluations []dspgo.CompileProgress
		start := time.Now()
		compiled, err := c.Compile(ctx, prog, trainset, exact,
			dspgo.WithOptimizer(dspgo.BootstrapFewShotWithRandomSearch{NumCandidatePrograms: 2,
				BootstrapFewShot: dspgo.BootstrapFewShot{MaxBootstrappedDemos: 2, MaxLabeledDemos: 4}}),
			dspgo.WithValset(devset),
			dspgo.WithProgress(func(p dspgo.CompileProgress) {
				if p.Event == "evaluation" {
					evaluations = append(evaluations, p)
				}
			}))
		require.NoError(t, err)
		after, err := c.Evaluate(ctx, compiled, devset, exact)
		require.NoError(t, err)
		t.Logf("random search: %d candidates evaluated in %v, best %.2f; score after %.2f",
			len(evaluations), time.Since(start).Round(time.Millisecond), evaluations[len(evaluations)-1].Best, after.Score)
		// zero-shot, labeled only, unshuffled, and 2 shuffled candidates
		require.Len(t, evaluations, 5)
		assert.Zero(t, evaluations[0].Score, "the zero-shot candidate")
		assert.Equal(t, after.Score, evaluations[len(evaluations)-1].Best, "the best candidate is the one returned")
		assert.Positive(t, after.Score)
	})
}

func TestCompileFailures(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	eachBackend(t, srv, compileLM, func(t *testing.T, c *dspgo.Client) {
		ctx := t.Context()
		prog, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature(produceSig)})
		require.NoError(t, err)

		boom := errors.New("boom")
		_, err = c.Compile(ctx, prog, trainset, func(context.Context, dspgo.Example, map[string]any) (float64, error) {
			return 0, &adapter.Error{Code: adapter.CodeResourceExhausted, Message: "quota", Err: boom}
		})
		assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err), "%v", err)
		assert.ErrorContains(t, err, "quota")

		_, err = c.Compile(ctx, prog, trainset, func(context.Context, dspgo.Example, map[string]any) (float64, error) {
			panic("metric bug")
		})
		assert.Equal(t, adapter.CodeInternal, adapter.CodeOf(err), "%v", err)
		assert.ErrorContains(t, err, "metric bug")

		_, err = c.Compile(ctx, prog, trainset, nil, dspgo.WithOptimizer(dspgo.MIPROv2{}))
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		_, err = c.Compile(ctx, prog, []dspgo.Example{{Inputs: map[string]any{"food": "x"}}}, exact)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		assert.ErrorContains(t, err, "trainset")

		// The dummy LM cannot serve DSPy.
		require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Name: "offline", Provider: dspgo.ProviderDummy}))
		offline, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature(produceSig), LM: "offline"})
		require.NoError(t, err)
		_, err = c.Compile(ctx, offline, trainset, exact)
		assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
		assert.ErrorContains(t, err, "dummy")
	})
}

// TestCompileCancel cancels a compile while the optimizer waits for the
// metric: Compile returns at once, and the worker's optimizer makes no LM
// call after it (the worker's next request finds no compile in flight).
// On a port, whose one worker served the compile.
func TestCompileCancel(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	eachBackend(t, srv, compileLM, func(t *testing.T, c *dspgo.Client) {
		if c.Adapter().Name() != "port" {
			t.Skip("get_stats must reach the worker that served the compile")
		}
		prog, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature(produceSig)})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		called := make(chan struct{})
		var once sync.Once
		done := make(chan error, 1)
		go func() {
			_, err := c.Compile(ctx, prog, trainset, func(ctx context.Context, _ dspgo.Example, _ map[string]any) (float64, error) {
				once.Do(func() { close(called) })
				<-ctx.Done() // the metric holds the optimizer until the compile ends
				return 0, ctx.Err()
			})
			done <- err
		}()
		<-called
		cancel()
		select {
		case err := <-done:
			assert.Equal(t, adapter.CodeCanceled, adapter.CodeOf(err), "%v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("Compile did not return after its context ended")
		}
		seen := len(srv.Requests())
		// The worker answers get_stats only once the compile's handler has
		// ended, its optimizer stopped, or reports it in flight.
		waitCtx, stop := context.WithTimeout(t.Context(), 10*time.Second)
		defer stop()
		require.True(t, poll.Until(waitCtx, func() bool {
			resp, err := c.Adapter().Call(t.Context(), adapter.Request{Command: command.GetStats})
			require.NoError(t, err)
			var stats command.StatsResult
			require.NoError(t, json.Unmarshal(resp.Result, &stats))
			return stats.InFlight == 0
		}), "the compile is still in flight on the worker")
		// The program runs; the optimizer made no LM call since.
		_, err = c.Execute(t.Context(), prog.ID, map[string]any{"food": "apple"})
		require.NoError(t, err)
		assert.Len(t, srv.Requests(), seen+1, "only the execution's LM call after the cancel")
	})
}

func TestCompileNeedsDSPy(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	testutil.VerifyNoChildren(t)
	a, err := port.New(t.Context(), port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Logger: testutil.Discard,
		Env: []string{keyEnv + "=" + secret}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close(context.Background())) })
	c := dspgo.NewClient(a)
	require.NoError(t, c.ConfigureLM(t.Context(), dspgo.LMConfig{Provider: dspgo.ProviderOpenAI, Model: "test-model", BaseURL: srv.URL(),
		APIKeyEnv: keyEnv, Engine: "native"}))
	prog, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature(produceSig)})
	require.NoError(t, err)
	if exec.Command(testutil.Python(t), "-c", "import dspy").Run() == nil {
		t.Skip("the bare interpreter imports dspy")
	}
	_, err = c.Compile(t.Context(), prog, trainset, exact)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, "dspy")
}

// miproV2 is MIPROv2 with few enough trials and candidates to take about
// a second against the test LM, which answers its instruction proposer's
// prompts too.
var miproV2 = dspgo.MIPROv2{NumTrials: 6, NumCandidates: 3, MaxBootstrappedDemos: 2, MaxLabeledDemos: 8, MinibatchSize: -1}

// TestCompileWithMIPROv2 runs MIPROv2 (optuna is in the dspy test
// environment) on a port and on a pool: the LM's proposed instruction wins.
func TestCompileWithMIPROv2(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	eachBackend(t, srv, compileLM, func(t *testing.T, c *dspgo.Client) {
		ctx := t.Context()
		prog, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature(produceSig)})
		require.NoError(t, err)
		var evaluations int
		start := time.Now()
		compiled, err := c.Compile(ctx, prog, trainset, exact, dspgo.WithValset(devset[:2]), dspgo.WithOptimizer(miproV2),
			dspgo.WithProgress(func(p dspgo.CompileProgress) {
				if p.Event == "evaluation" {
					evaluations++
				}
			}))
		took := time.Since(start)
		require.NoError(t, err)
		after, err := c.Evaluate(ctx, compiled, devset, exact)
		require.NoError(t, err)
		t.Logf("MIPROv2 on %s: %v; instructions %q, %d demos, %d evaluations reported, score after %.2f", c.Adapter().Name(),
			took.Round(time.Millisecond), compiled.Spec.Instructions, len(compiled.Spec.Demos), evaluations, after.Score)
		assert.True(t, strings.HasPrefix(compiled.Spec.Instructions, "proposed_instruction "), "the LM's proposed instruction won")
		assert.NotEmpty(t, compiled.Spec.Demos)
		assert.Positive(t, evaluations, "each trial's evaluation is reported")
		assert.Equal(t, 1.0, after.Score)
	})
}

// TestCompileIsQuiet: DSPy's prints, tqdm's progress bars and DSPy's
// narration of its steps during a compile reach the port's logger as the
// worker's debug records, never as raw stderr lines, and nothing of theirs
// is logged at info.
func TestCompileIsQuiet(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	var out testutil.SyncBuffer
	opts := dspyWorker(t)
	opts.Logger = slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := port.New(t.Context(), opts)
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			assert.NoError(t, a.Close(context.Background()))
		}
	})
	c := dspgo.NewClient(a)
	cfg := compileLM
	cfg.Provider, cfg.Engine, cfg.BaseURL, cfg.APIKeyEnv = dspgo.ProviderOpenAI, "dspy", srv.URL(), keyEnv
	require.NoError(t, c.ConfigureLM(t.Context(), cfg))
	prog, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature(produceSig)})
	require.NoError(t, err)
	for _, optimizer := range []dspgo.Optimizer{
		dspgo.BootstrapFewShot{MaxBootstrappedDemos: 2},
		dspgo.BootstrapFewShotWithRandomSearch{NumCandidatePrograms: 1, BootstrapFewShot: dspgo.BootstrapFewShot{MaxBootstrappedDemos: 1}},
		miproV2,
	} {
		_, err := c.Compile(t.Context(), prog, trainset, exact, dspgo.WithOptimizer(optimizer), dspgo.WithValset(devset[:2]))
		require.NoError(t, err, "%T", optimizer)
	}
	closed = true
	require.NoError(t, a.Close(t.Context())) // joins the reader of the worker's stderr: every line is logged

	var printed, narration int
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		msg, _ := rec["msg"].(string)
		assert.Nil(t, rec["raw"], "a stderr line that is no log record of the worker: %s", line)
		assert.NotContains(t, msg, "it/s", "a tqdm bar: %s", line)
		logger, _ := rec["logger"].(string)
		if rec["source"] == "print" || strings.HasPrefix(logger, "dspy.") {
			if rec["level"] != "WARN" { // DSPy's warnings stay warnings
				assert.Equal(t, "DEBUG", rec["level"], line)
			}
			if rec["source"] == "print" {
				printed++
			} else {
				narration++
			}
		}
	}
	assert.Positive(t, printed, "DSPy's prints are debug records")
	assert.Positive(t, narration, "DSPy's INFO records are debug records")
}

// TestSessionCompileAndEvaluate: a session handle compiles and evaluates
// its programs with its LM (WithLM), the default LM being one that no demo
// helps, and creates the compiled program in the session.
func TestSessionCompileAndEvaluate(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	eachBackend(t, srv, dspgo.LMConfig{Model: "test-model", Timeout: 20 * time.Second}, func(t *testing.T, c *dspgo.Client) {
		ctx := t.Context()
		demos := compileLM
		demos.Name, demos.Provider, demos.Engine, demos.BaseURL, demos.APIKeyEnv = "demos", dspgo.ProviderOpenAI, "dspy", srv.URL(), keyEnv
		require.NoError(t, c.ConfigureLM(ctx, demos))
		s := c.Session("optimize").WithLM("demos")
		prog, err := s.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature(produceSig)})
		require.NoError(t, err)

		before, err := s.Evaluate(ctx, prog, devset, exact)
		require.NoError(t, err)
		srv.Reset()
		compiled, err := s.Compile(ctx, prog, trainset, exact, dspgo.WithOptimizer(dspgo.BootstrapFewShot{MaxBootstrappedDemos: 4, MaxLabeledDemos: 8}))
		require.NoError(t, err)
		require.NotEmpty(t, srv.Requests())
		for _, r := range srv.Requests() {
			assert.Equal(t, demos.Model, r.Model, "the compile ran with the handle's LM")
		}
		after, err := s.Evaluate(ctx, compiled, devset, exact)
		require.NoError(t, err)
		withDefault, err := c.Evaluate(ctx, compiled, devset, exact)
		require.NoError(t, err)
		t.Logf("session: score before %.2f, after %.2f (with the default LM %.2f)", before.Score, after.Score, withDefault.Score)
		assert.Zero(t, before.Score)
		assert.Equal(t, 1.0, after.Score)
		assert.Zero(t, withDefault.Score, "Client.Evaluate runs the program with the default LM, which no demo helps")

		assert.Equal(t, "optimize", compiled.Session, "created in the session")
		_, err = s.GetProgram(ctx, compiled.ID)
		require.NoError(t, err)
		_, err = c.GetProgram(ctx, compiled.ID)
		assert.Equal(t, adapter.CodeNotFound, adapter.CodeOf(err), "not in the client's default scope")

		// A program of another scope is not the session's.
		other, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature(produceSig)})
		require.NoError(t, err)
		_, err = s.Compile(ctx, other, trainset, exact)
		assert.Equal(t, adapter.CodeNotFound, adapter.CodeOf(err), "%v", err)
		_, err = s.Evaluate(ctx, other, devset, exact)
		assert.Equal(t, adapter.CodeNotFound, adapter.CodeOf(err), "%v", err)

		require.NoError(t, s.Close(ctx))
		_, err = s.Compile(ctx, prog, trainset, exact)
		assert.ErrorIs(t, err, dspgo.ErrSessionClosed)
		_, err = s.Evaluate(ctx, prog, devset, exact)
		assert.ErrorIs(t, err, dspgo.ErrSessionClosed)
	})
}
