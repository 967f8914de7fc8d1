package python_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/lmtest"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/testutil"
)

// The dspy engine through the real DSPy library (the interpreter of the
// dspy test environment), on a port worker and on a pool, against the
// test LM server.

const (
	keyEnv = "DSPGO_TEST_LM_KEY"
	secret = "sk-dspgo-test-0123456789abcdef"
)

// dspyBackends are the backends the dspy engine is proven on.
var dspyBackends = backendsOf(dspyWorker)

// backendsOf is a port and a pool of 2 of the workers worker describes,
// each closed at the end of its test.
func backendsOf(worker func(t *testing.T) port.Options) map[string]func(t *testing.T) adapter.Adapter {
	return map[string]func(t *testing.T) adapter.Adapter{
		"port": func(t *testing.T) adapter.Adapter {
			a, err := port.New(t.Context(), worker(t))
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, a.Close(context.Background())) })
			return a
		},
		"pool": func(t *testing.T) adapter.Adapter {
			p, err := pool.New(t.Context(), pool.Options{Worker: worker(t), Size: 2, Logger: testutil.Discard})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, p.Close(context.Background())) })
			return p
		},
	}
}

// dspyWorker is a worker on the dspy interpreter whose environment holds
// the test key.
func dspyWorker(t *testing.T) port.Options {
	testutil.VerifyNoChildren(t)
	return port.Options{Python: testutil.DSPyPython(t), WorkerDir: testutil.PythonDir(), Env: []string{keyEnv + "=" + secret},
		Logger: testutil.Discard}
}

// eachBackend runs f on every backend of dspyBackends with the dspy
// engine configured for the model (directives included) on srv.
func eachBackend(t *testing.T, srv *lmtest.Server, lm dspgo.LMConfig, f func(t *testing.T, c *dspgo.Client), opts ...dspgo.Option) {
	for name, open := range dspyBackends {
		t.Run(name, func(t *testing.T) {
			c := dspgo.NewClient(open(t), opts...)
			cfg := lm
			cfg.Provider, cfg.Engine, cfg.BaseURL, cfg.APIKeyEnv = dspgo.ProviderOpenAI, "dspy", srv.URL(), keyEnv
			if cfg.Model == "" {
				cfg.Model = "test-model"
			}
			require.NoError(t, c.ConfigureLM(t.Context(), cfg))
			srv.Reset()
			f(t, c)
		})
	}
}

// typedSignature has an output of every type dspgo's signatures support.
const typedSignature = "question: str, n: int -> answer: str, count: int, score: float, ok: bool, tags: list[str], " +
	"ids: list[int], weights: dict[str, float], level: Literal['low', 'mid', 'high'], nested: list[dict[str, bool]]"

// expected returns the outputs the test LM server gives the signature's
// outputs (after the str outputs named by prefix), typed as Execute
// returns them.
func expected(t *testing.T, sig dspgo.Signature, prefix ...string) map[string]any {
	t.Helper()
	var fields []dspgo.Field
	for _, name := range prefix {
		fields = append(fields, dspgo.Field{Name: name, Type: "str"})
	}
	want := map[string]any{}
	for _, f := range append(fields, sig.Outputs...) {
		v, err := lmtest.Value(f.Name, f.Type)
		require.NoError(t, err)
		typ, err := program.ParseType(f.Type)
		require.NoError(t, err)
		want[f.Name], err = typ.Convert(v, f.Name)
		require.NoError(t, err)
	}
	return want
}

func TestDSPyEnginePredictAndChainOfThought(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	sig := dspgo.MustParseSignature(typedSignature)
	sig.Inputs[0].Description = "the question to answer"
	eachBackend(t, srv, dspgo.LMConfig{Model: "typed-model", Temperature: ptr(0.4), MaxTokens: 512, Timeout: 20 * time.Second},
		func(t *testing.T, c *dspgo.Client) {
			ctx := t.Context()
			inputs := map[string]any{"question": "What is Go?", "n": 3}
			for _, kind := range []string{dspgo.KindPredict, dspgo.KindChainOfThought} {
				prog, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig, Kind: kind, Instructions: "Answer as a pirate would."})
				require.NoError(t, err)
				run, err := c.ExecuteDetailed(ctx, prog.ID, inputs)
				require.NoError(t, err, kind)
				var prefix []string
				if kind == dspgo.KindChainOfThought {
					prefix = []string{"reasoning"}
				}
				assert.Equal(t, expected(t, sig, prefix...), run.Outputs, kind)
				assert.IsType(t, float64(0), run.Outputs["score"])
				assert.Positive(t, run.Usage.Prompt, "usage from DSPy's usage tracking")
				assert.Equal(t, run.Usage.Prompt+run.Usage.Completion, run.Usage.Total)
			}
			reqs := srv.Requests()
			require.Len(t, reqs, 2, "one LM call each; the cache is off")
			for _, r := range reqs {
				assert.Equal(t, lmtest.FormatChat, r.Format, "DSPy's ChatAdapter wrote the prompt")
				assert.Equal(t, "typed-model", r.Model)
				require.NotNil(t, r.Temperature)
				assert.Equal(t, 0.4, *r.Temperature)
				require.NotNil(t, r.MaxTokens)
				assert.Equal(t, 512, *r.MaxTokens)
				assert.Equal(t, "Bearer "+secret, r.Authorization, "the key from the worker's environment")
				prompt := promptText(r)
				assert.Contains(t, prompt, "Answer as a pirate would.", "instructions reach the prompt")
				assert.Contains(t, prompt, "the question to answer", "descriptions reach the prompt")
			}
		})
}

func TestDSPyEngineReactCallsGoTools(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	var calls []string
	weather := dspgo.WithTool("weather", "Today's forecast for a city.",
		map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}},
		func(_ context.Context, args json.RawMessage) (any, error) {
			var a struct{ City string }
			if err := json.Unmarshal(args, &a); err != nil {
				return nil, err
			}
			calls = append(calls, a.City)
			return map[string]any{"city": a.City, "sky": "clear"}, nil
		})
	eachBackend(t, srv, dspgo.LMConfig{}, func(t *testing.T, c *dspgo.Client) {
		calls = nil
		ctx := t.Context()
		sig := dspgo.MustParseSignature("city -> forecast, warm: bool")
		agent, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig, Kind: dspgo.KindReact, MaxIters: 3})
		require.NoError(t, err)
		run, err := c.ExecuteDetailed(ctx, agent.ID, map[string]any{"city": "Oslo"})
		require.NoError(t, err)
		assert.Equal(t, expected(t, sig), run.Outputs)
		require.Len(t, run.Trajectory, 1)
		assert.Equal(t, "weather", run.Trajectory[0].Tool)
		assert.JSONEq(t, fmt.Sprintf(`{"city": %q, "sky": "clear"}`, calls[0]), string(run.Trajectory[0].Observation))
		assert.Len(t, calls, 1, "the Go tool ran once")
		var steps int
		for _, r := range srv.Requests() {
			if strings.Contains(promptText(r), "weather") {
				steps++
			}
		}
		assert.GreaterOrEqual(t, steps, 2, "dspy.ReAct saw the tool, and its observation came back")
	}, weather)
}

func TestDSPyEngineErrorsHaveCodes(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	cases := []struct {
		model string
		code  adapter.Code
		names string // a word the message must hold
	}{
		{"m+status=401", adapter.CodeFailedPrecondition, "401"},
		{"m+status=429,retry_after=0", adapter.CodeResourceExhausted, "429"},
		{"m+garbage", adapter.CodeInternal, "answer"},
	}
	for _, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			eachBackend(t, srv, dspgo.LMConfig{Model: tc.model}, func(t *testing.T, c *dspgo.Client) {
				prog, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer, n: int")})
				require.NoError(t, err)
				_, err = c.Execute(t.Context(), prog.ID, map[string]any{"question": "?"})
				require.Error(t, err)
				assert.Equal(t, tc.code, adapter.CodeOf(err), "%v", err)
				assert.Contains(t, err.Error(), tc.names)
				assert.NotContains(t, err.Error(), secret)
				if tc.code == adapter.CodeResourceExhausted {
					assert.Greater(t, len(srv.Requests()), 1, "retried before giving up")
				}
			})
		})
	}
}

func TestDSPyEngineDeadlineAndCancelCloseTheLMRequest(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	eachBackend(t, srv, dspgo.LMConfig{Model: "slow+latency=60s"}, func(t *testing.T, c *dspgo.Client) {
		prog, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
		require.NoError(t, err)

		ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
		defer cancel()
		_, err = c.Execute(ctx, prog.ID, map[string]any{"question": "?"})
		assert.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err), "%v", err)
		wait(t, func(ctx context.Context) error { _, err := srv.WaitCanceled(ctx, 1); return err }, "the LM server sees the timed-out request closed")

		ctx, cancel = context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := c.Execute(ctx, prog.ID, map[string]any{"question": "?"})
			done <- err
		}()
		wait(t, func(ctx context.Context) error { _, err := srv.WaitRequests(ctx, 2); return err }, "the second request reaches the LM")
		cancel()
		select {
		case err := <-done:
			assert.Equal(t, adapter.CodeCanceled, adapter.CodeOf(err), "%v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("a cancelled execute did not return at once")
		}
		wait(t, func(ctx context.Context) error { _, err := srv.WaitCanceled(ctx, 2); return err }, "the LM server sees the cancelled request closed")
	})
}

func TestDSPyEngineStreamsAsTheLMSends(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	eachBackend(t, srv, dspgo.LMConfig{Model: "test-model+chunk_delay=10ms"}, func(t *testing.T, c *dspgo.Client) {
		ctx := t.Context()
		sig := dspgo.MustParseSignature("question -> answer, n: int, tags: list[str]")
		prog, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig, Kind: dspgo.KindChainOfThought})
		require.NoError(t, err)
		var fields []string
		texts := map[string]string{}
		var last dspgo.StreamPart
		first := true
		for part, err := range c.ExecuteStream(ctx, prog.ID, map[string]any{"question": "?"}) {
			require.NoError(t, err)
			if first {
				first = false
				reqs := srv.Requests()
				require.Len(t, reqs, 1)
				assert.True(t, reqs[0].Stream, "the LM was asked for a stream")
				assert.False(t, reqs[0].Done, "the first part came while the LM was still sending")
			}
			if part.Outputs != nil {
				last = part
				continue
			}
			if len(fields) == 0 || fields[len(fields)-1] != part.Field {
				fields = append(fields, part.Field)
			}
			texts[part.Field] += part.Delta
		}
		assert.Equal(t, []string{"reasoning", "answer", "n", "tags"}, fields, "each output's text in output order")
		assert.Equal(t, expected(t, sig, "reasoning"), last.Outputs)
		assert.Equal(t, last.Outputs["answer"], texts["answer"])
		assert.Equal(t, last.Outputs["reasoning"], texts["reasoning"])
		assert.Positive(t, last.Usage.Total, "usage on the last part")
	})
}

func TestDSPyEngineCacheIsExplicit(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	for _, cache := range []bool{false, true} {
		t.Run(fmt.Sprint("cache=", cache), func(t *testing.T) {
			eachBackend(t, srv, dspgo.LMConfig{Model: fmt.Sprint("cache-", cache), Cache: cache}, func(t *testing.T, c *dspgo.Client) {
				ctx := t.Context()
				prog, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
				require.NoError(t, err)
				for range 3 {
					_, err := c.Execute(ctx, prog.ID, map[string]any{"question": "same"})
					require.NoError(t, err)
				}
				if !cache {
					assert.Len(t, srv.Requests(), 3, "every execution calls the LM")
					return
				}
				assert.LessOrEqual(t, len(srv.Requests()), 2, "at most one call per worker")
			})
		})
	}
}

func promptText(r lmtest.Request) string {
	var b strings.Builder
	for _, m := range r.Messages {
		b.WriteString(m.Content)
		b.WriteByte('\n')
	}
	return b.String()
}

// wait runs f with a bounded context, failing the test with what when it
// returns an error.
func wait(t *testing.T, f func(ctx context.Context) error, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	require.NoError(t, f(ctx), what)
}

func ptr[T any](v T) *T { return &v }
