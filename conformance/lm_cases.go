package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
)

// Named LM configurations (LMConfig.Name, ProgramSpec.LM, Session.WithLM).
// The dummy LM's outputs do not depend on its configuration, so the cases
// tell the configurations apart by what does: a delay, a react script.

// lmNeverConfigured is a name no case configures: remote hosts outlive
// the adapters of the cases and keep the names they were given.
const lmNeverConfigured = "never-configured"

// slowLM delays every execution far past the short deadline of
// executions that must not wait for it.
const slowLM = 30 * time.Second

func caseNamedLMs(t TB, env *Env) {
	ctx, c := env.Ctx, env.Client
	in := map[string]any{"question": "?"}
	spec := func(lm string) dspgo.ProgramSpec {
		return dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer"), LM: lm}
	}
	runs := func(run func(context.Context) (map[string]any, error), p *dspgo.Program, what string) {
		t.Helper()
		out, err := run(ctx)
		require.NoError(t, err, what)
		assert.Equal(t, expected(t, p, in), out, what)
	}
	waits := func(run func(context.Context) (map[string]any, error), what string) {
		t.Helper()
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := run(short)
		requireCode(t, adapter.CodeDeadlineExceeded, err, "%s runs with the slow configuration", what)
	}
	exec := func(p *dspgo.Program) func(context.Context) (map[string]any, error) {
		return func(ctx context.Context) (map[string]any, error) { return c.Execute(ctx, p.ID, in) }
	}
	execOn := func(h *dspgo.Session, p *dspgo.Program) func(context.Context) (map[string]any, error) {
		return func(ctx context.Context) (map[string]any, error) { return h.Execute(ctx, p.ID, in) }
	}

	require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Name: "slow", Delay: slowLM}))
	require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Name: "quick"}))
	plain, err := c.CreateProgram(ctx, spec(""))
	require.NoError(t, err)
	slow, err := c.CreateProgram(ctx, spec("slow"))
	require.NoError(t, err)
	quick, err := c.CreateProgram(ctx, spec("quick"))
	require.NoError(t, err)
	assert.Equal(t, plain.Hash, slow.Hash, "the LM is not part of the spec's hash")
	assert.Equal(t, "slow", slow.Spec.LM)

	runs(exec(plain), plain, "a program naming no LM runs with the default")
	runs(exec(quick), quick, "a program runs with the configuration it names")
	waits(exec(slow), "a program naming the slow LM")

	// A session handle's LM is for the programs that name none; a
	// program's own LM stays its own.
	s := c.Session("named-lms")
	sPlain, err := s.CreateProgram(ctx, spec(""))
	require.NoError(t, err)
	sQuick, err := s.CreateProgram(ctx, spec("quick"))
	require.NoError(t, err)
	slowHandle := s.WithLM("slow")
	assert.Equal(t, "slow", slowHandle.LM())
	waits(execOn(slowHandle, sPlain), "a handle's LM")
	runs(execOn(slowHandle, sQuick), sQuick, "a program's own LM over its handle's")
	runs(execOn(s, sPlain), sPlain, "the other handle keeps the default")

	// A new default leaves the named configurations alone, and a name's
	// new configuration replaces only its own.
	require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Delay: slowLM}))
	waits(exec(plain), "a program naming no LM, after the default changed,")
	runs(exec(quick), quick, "the named configuration outlives a new default")
	runs(execOn(s.WithLM("quick"), sPlain), sPlain, "a handle naming the quick LM")
	require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Name: "slow"}))
	runs(exec(slow), slow, "the slow name, configured anew")
	require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{}))
	runs(exec(plain), plain, "the default, configured anew")

	// Every worker reports the names.
	resp, err := env.Adapter.Call(ctx, adapter.Request{Command: command.GetStats})
	require.NoError(t, err)
	var stats struct {
		LMs map[string]struct{ Provider string } `json:"lms"`
	}
	require.NoError(t, json.Unmarshal(resp.Result, &stats))
	assert.Equal(t, "dummy", stats.LMs["slow"].Provider)
	assert.Equal(t, "dummy", stats.LMs["quick"].Provider)

	// A name no configuration has is CodeNotFound naming it, from a
	// program or from a handle.
	unknown, err := c.CreateProgram(ctx, spec(lmNeverConfigured))
	require.NoError(t, err, "a program may name an LM configured later")
	_, err = c.Execute(ctx, unknown.ID, in)
	requireCode(t, adapter.CodeNotFound, err)
	assert.ErrorContains(t, err, lmNeverConfigured)
	_, err = s.WithLM(lmNeverConfigured).Execute(ctx, sPlain.ID, in)
	requireCode(t, adapter.CodeNotFound, err)
	assert.ErrorContains(t, err, lmNeverConfigured)

	// A bad name is CodeInvalidArgument, from the client and from the
	// backend alike.
	requireCode(t, adapter.CodeInvalidArgument, c.ConfigureLM(ctx, dspgo.LMConfig{Name: "a b"}))
	_, err = c.CreateProgram(ctx, spec("a.b"))
	requireCode(t, adapter.CodeInvalidArgument, err)
	_, err = s.WithLM("a b").Execute(ctx, sPlain.ID, in)
	requireCode(t, adapter.CodeInvalidArgument, err)
	for _, args := range []string{`{"provider":"dummy","name":"a b"}`, `{"provider":"dummy","name":3}`} {
		_, err := env.Adapter.Call(ctx, adapter.Request{Command: command.ConfigureLM, Args: json.RawMessage(args)})
		requireCode(t, adapter.CodeInvalidArgument, err, "%s", args)
	}
	args, err := json.Marshal(map[string]any{"spec_hash": plain.Hash, "inputs": in, "lm": 3})
	require.NoError(t, err)
	_, err = env.Adapter.Call(ctx, adapter.Request{Command: command.ExecuteProgram, Args: args})
	requireCode(t, adapter.CodeInvalidArgument, err)
}

// caseNamedLMsConcurrent runs two react programs with two scripted LMs at
// once: each execution follows its own program's script, on every worker.
func caseNamedLMsConcurrent(t TB, env *Env) {
	ctx := env.Ctx
	c := dspgo.NewClient(env.Adapter, dspgo.WithTool("step", "Returns its arguments.", nil,
		func(_ context.Context, args json.RawMessage) (any, error) { return args, nil }))
	script := func(name string, n int) []dspgo.ScriptStep {
		steps := make([]dspgo.ScriptStep, n)
		for i := range steps {
			steps[i] = dspgo.ScriptStep{Tool: "step", Args: map[string]any{"lm": name, "i": i}}
		}
		return steps
	}
	steps := map[string]int{"one": 1, "two": 2}
	programs := map[string]*dspgo.Program{}
	for name, n := range steps {
		require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Name: name, Script: script(name, n)}))
		p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer"), Kind: dspgo.KindReact, LM: name})
		require.NoError(t, err)
		programs[name] = p
	}
	// check uses assert only: it runs on the goroutines too.
	check := func(name string, e *dspgo.Execution, in map[string]any, want map[string]any) {
		t.Helper()
		assert.Equal(t, want, e.Outputs)
		if assert.Len(t, e.Trajectory, steps[name], "%s's script", name) {
			for i, step := range e.Trajectory {
				assert.JSONEq(t, fmt.Sprintf(`{"lm":%q,"i":%d}`, name, i), string(step.Args))
			}
		}
	}

	var wg sync.WaitGroup
	for i := range 16 {
		name := []string{"one", "two"}[i%2]
		in := map[string]any{"question": fmt.Sprintf("q%d", i)}
		want := expected(t, programs[name], in) // here: expected may stop the test
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := c.ExecuteDetailed(ctx, programs[name].ID, in)
			if assert.NoError(t, err, name) {
				check(name, e, in, want)
			}
		}()
	}
	wg.Wait()

	// A stream runs with its program's configuration too.
	in := map[string]any{"question": "streamed"}
	var last dspgo.StreamPart
	for part, err := range c.ExecuteStream(ctx, programs["two"].ID, in) {
		require.NoError(t, err)
		last = part
	}
	check("two", &dspgo.Execution{Outputs: last.Outputs, Trajectory: last.Trajectory}, in, expected(t, programs["two"], in))
}
