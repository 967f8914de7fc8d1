package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
)

// hardeningCases are the cases of inputs and shutdowns that used to leave
// a caller waiting or misinformed.
func hardeningCases() []Case {
	return []Case{
		{Name: "not_utf8", Doc: "Strings that are not UTF-8 are CodeInvalidArgument naming the field, at once: inputs through the client (nested too, never replaced by U+FFFD) and request arguments straight to the backend; the adapter stays usable.", Run: caseNotUTF8},
		{Name: "close_during_call", Doc: "A call (and a stream) that Close ends while it runs fails with ErrClosed saying the adapter was closed, never with the caller's CodeCanceled; Close returns.", Skip: needStats, Run: caseCloseDuringCall},
	}
}

// executeArgs returns execute_program's arguments for p with its spec and
// the raw inputs object, so that no backend needs the spec resent.
func executeArgs(t TB, p *dspgo.Program, inputs string) json.RawMessage {
	t.Helper()
	spec, err := json.Marshal(command.Spec{Signature: p.Spec.Signature, Instructions: p.Spec.Instructions, Kind: p.Spec.Kind})
	require.NoError(t, err)
	return json.RawMessage(`{"spec_hash":"` + p.Hash + `","spec":` + string(spec) + `,"inputs":` + inputs + `}`)
}

func caseNotUTF8(t TB, env *Env) {
	ctx := env.Ctx
	p := create(t, env, "question, context: list[str], meta: dict[str, str] -> answer")
	good := func() map[string]any {
		return map[string]any{"question": "q", "context": []string{"c"}, "meta": map[string]string{"k": "v"}}
	}
	for _, c := range []struct {
		set   func(map[string]any)
		names string
	}{
		{func(in map[string]any) { in["question"] = "caf\xe9" }, "input question"},
		{func(in map[string]any) { in["context"] = []string{"ok", "\xed\xa0\x80"} }, "input context[1]"},
		{func(in map[string]any) { in["meta"] = map[string]any{"k": "\xc3"} }, `input meta["k"]`},
		{func(in map[string]any) { in["meta"] = map[string]string{"\xff": "v"} }, "input meta: key"},
	} {
		in := good()
		c.set(in)
		_, err := env.Client.Execute(ctx, p.ID, in)
		requireCode(t, adapter.CodeInvalidArgument, err)
		assert.Contains(t, err.Error(), c.names)
		assert.Contains(t, err.Error(), "not valid UTF-8")
	}

	// Past the client, straight to the backend: refused at once, not left
	// for a worker that cannot read the frame's id.
	bounded, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	for _, inputs := range []string{
		`{"question":"caf` + "\xe9" + `","context":[],"meta":{}}`,
		`{"question":"q","context":["` + "\x80" + `"],"meta":{}}`,
		`{"question":"q","context":[],"meta":{"` + "\xf4\x90\x80\x80" + `":"v"}}`,
	} {
		_, err := env.Adapter.Call(bounded, adapter.Request{Command: command.ExecuteProgram, Args: executeArgs(t, p, inputs)})
		requireCode(t, adapter.CodeInvalidArgument, err, "%q", inputs)
	}
	assert.Less(t, time.Since(start), 10*time.Second, "refused at once, not at a deadline")

	out, err := env.Client.Execute(ctx, p.ID, good())
	require.NoError(t, err, "still usable")
	assert.Equal(t, expected(t, p, good()), out)
}

func caseCloseDuringCall(t TB, env *Env) {
	ctx := env.Ctx
	p := create(t, env, "question -> answer")
	// Slower than the case lasts, but not so slow that a backend which
	// goes on running it after the caller left (a remote host that had not
	// yet said it took the call) keeps it long.
	require.NoError(t, env.Client.ConfigureLM(ctx, dspgo.LMConfig{Provider: dspgo.ProviderDummy, Delay: 10 * time.Second}))
	req := adapter.Request{Command: command.ExecuteProgram, Args: executeArgs(t, p, `{"question":"slow"}`)}

	// A context of their own, not the case's, and longer than the LM's
	// delay: only Close can end these calls first.
	callCtx, cancelCalls := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelCalls()
	errs := make(chan error, 2)
	calls := 1
	go func() {
		_, err := env.Adapter.Call(callCtx, req)
		errs <- err
	}()
	if s, ok := env.Adapter.(adapter.Streamer); ok && env.Adapter.Capabilities().Streaming {
		calls++
		go func() {
			var last error
			for _, err := range s.Stream(callCtx, req) {
				last = err
			}
			errs <- last
		}()
	}
	stats := func() adapter.Stats { s, _ := adapter.StatsOf(env.Adapter); return s }
	require.Eventually(t, func() bool { return stats().InFlight >= calls }, 30*time.Second, 5*time.Millisecond, "the calls are in flight")

	closeCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = env.Adapter.Close(closeCtx)
	assert.Less(t, time.Since(start), 30*time.Second, "Close returns")
	for range calls {
		var err error
		select {
		case err = <-errs:
		case <-ctx.Done():
			t.Errorf("a call outlived Close")
			t.FailNow()
		}
		require.Error(t, err)
		assert.True(t, errors.Is(err, adapter.ErrClosed), "errors.Is(err, ErrClosed): %v", err)
		assert.NotEqual(t, adapter.CodeCanceled, adapter.CodeOf(err), "not the caller's cancellation: %v", err)
		assert.Contains(t, strings.ToLower(err.Error()), "closed", "says the adapter was closed: %v", err)
	}
}
