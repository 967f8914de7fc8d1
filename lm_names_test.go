package dspgo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/protocol"
)

// recorder keeps the requests a client sends through Call.
type recorder struct {
	adapter.Adapter
	mu   sync.Mutex
	reqs []adapter.Request
}

func (r *recorder) Call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return r.Adapter.Call(ctx, req)
}

// take returns the arguments of the requests recorded since the last
// take, decoded.
func (r *recorder) take(t *testing.T) []map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, req := range r.reqs {
		var args map[string]any
		require.NoError(t, json.Unmarshal(req.Args, &args), "%s", req.Args)
		args["command"] = req.Command
		out = append(out, args)
	}
	r.reqs = nil
	return out
}

// The backends of the in-process handler, for tests of what they do with
// named LM configurations: the mock, and a port adapter serving the same
// handler through the real framing.
var handlerBackends = map[string]func(t *testing.T) adapter.Adapter{
	"mock": func(*testing.T) adapter.Adapter { return mock.New(mock.Options{}) },
	"memory": func(t *testing.T) adapter.Adapter {
		a, err := port.New(t.Context(), port.Options{Handler: func() protocol.Handler { return mock.NewHandler(mock.HandlerOptions{}) }})
		require.NoError(t, err)
		return a
	},
}

// TestNamedLMsOnTheWire: what a client sends for named LM configurations,
// and what the mock and memory backends do with them, alike.
func TestNamedLMsOnTheWire(t *testing.T) {
	for name, open := range handlerBackends {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			a := open(t)
			t.Cleanup(func() { require.NoError(t, a.Close(context.Background())) })
			rec := &recorder{Adapter: a}
			c := dspgo.NewClient(rec)
			in := map[string]any{"question": "?"}

			require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Name: "fast", Model: "m-fast"}))
			sent := rec.take(t)
			require.Len(t, sent, 1)
			assert.Equal(t, map[string]any{"command": command.ConfigureLM, "name": "fast", "provider": "dummy", "model": "m-fast"}, sent[0])
			require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Model: "m-default"}))
			assert.NotContains(t, rec.take(t)[0], "name", "the default LM is configured without a name")

			fast, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: qa, LM: "fast"})
			require.NoError(t, err)
			plain, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: qa})
			require.NoError(t, err)
			assert.Equal(t, fast.Hash, plain.Hash)
			assert.Equal(t, "fast", fast.Spec.LM)
			rec.take(t)

			lmOf := func(what string) any {
				t.Helper()
				sent := rec.take(t)
				require.NotEmpty(t, sent, what)
				last := sent[len(sent)-1]
				assert.Equal(t, command.ExecuteProgram, last["command"], what)
				return last["lm"]
			}
			_, err = c.Execute(ctx, fast.ID, in)
			require.NoError(t, err)
			assert.Equal(t, "fast", lmOf("the program's LM"))
			_, err = c.Execute(ctx, plain.ID, in)
			require.NoError(t, err)
			assert.Nil(t, lmOf("no LM"), "an execution of the default LM names none")

			s := c.Session("s")
			sPlain, err := s.CreateProgram(ctx, dspgo.ProgramSpec{Signature: qa})
			require.NoError(t, err)
			_, err = s.WithLM("fast").Execute(ctx, sPlain.ID, in)
			require.NoError(t, err)
			assert.Equal(t, "fast", lmOf("the handle's LM"))
			_, err = s.Execute(ctx, sPlain.ID, in)
			require.NoError(t, err)
			assert.Nil(t, lmOf("the first handle's"), "WithLM leaves its receiver alone")
			for range s.WithLM("fast").ExecuteStream(ctx, sPlain.ID, in) {
			}
			assert.Equal(t, "fast", lmOf("a stream"))
			_, err = s.WithLM("fast").ExecuteDetailed(ctx, sPlain.ID, in)
			require.NoError(t, err)
			assert.Equal(t, "fast", lmOf("a detailed execution"))

			// A worker that lost the spec gets it again, with the LM.
			_, err = a.Call(ctx, adapter.Request{Command: command.DeleteProgram, Args: json.RawMessage(`{"spec_hash":"` + fast.Hash + `"}`)})
			require.NoError(t, err)
			_, err = c.Execute(ctx, fast.ID, in)
			require.NoError(t, err)
			sent = rec.take(t)
			require.Len(t, sent, 2, "the request, then the resend")
			assert.Nil(t, sent[0]["spec"])
			assert.NotNil(t, sent[1]["spec"])
			assert.Equal(t, "fast", sent[1]["lm"], "the resend names the LM too")

			// get_stats lists the names; reset drops them.
			resp, err := a.Call(ctx, adapter.Request{Command: command.GetStats})
			require.NoError(t, err)
			var stats struct {
				LM  map[string]string            `json:"lm"`
				LMs map[string]map[string]string `json:"lms"`
			}
			require.NoError(t, json.Unmarshal(resp.Result, &stats))
			assert.Equal(t, map[string]string{"provider": "dummy", "model": "m-default"}, stats.LM)
			assert.Equal(t, map[string]map[string]string{"fast": {"provider": "dummy", "model": "m-fast"}}, stats.LMs)
			_, err = a.Call(ctx, adapter.Request{Command: command.Reset})
			require.NoError(t, err)
			_, err = c.Execute(ctx, fast.ID, in)
			assert.Equal(t, adapter.CodeNotFound, adapter.CodeOf(err), "%v", err)
			assert.ErrorContains(t, err, `LM "fast" is not configured`)
			_, err = c.Execute(ctx, plain.ID, in)
			assert.NoError(t, err, "the default LM is always there")

			// The mock and the memory worker run the dummy provider only,
			// named or not.
			err = c.ConfigureLM(ctx, dspgo.LMConfig{Name: "real", Provider: dspgo.ProviderOpenAI, Model: "gpt"})
			assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
		})
	}
}

// TestBadLMNamesNeverReachTheBackend: a bad name is CodeInvalidArgument
// from the client, before any request.
func TestBadLMNamesNeverReachTheBackend(t *testing.T) {
	ctx := t.Context()
	a := mock.New(mock.Options{})
	defer a.Close(ctx)
	rec := &recorder{Adapter: a}
	c := dspgo.NewClient(rec)

	err := c.ConfigureLM(ctx, dspgo.LMConfig{Name: "a b"})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, `name "a b" may hold only letters, digits, '_' and '-' (at most 64)`)
	_, err = c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: qa, LM: "a.b"})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, `lm "a.b" may hold only`)

	s := c.Session("s")
	p, err := s.CreateProgram(ctx, dspgo.ProgramSpec{Signature: qa})
	require.NoError(t, err)
	rec.take(t)
	bad := s.WithLM("x/y")
	assert.Equal(t, "x/y", bad.LM())
	_, err = bad.Execute(ctx, p.ID, map[string]any{"question": "?"})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, `execute_program: lm "x/y" may hold only`)
	_, err = bad.ListPrograms(ctx)
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "every call on the handle")
	assert.Empty(t, rec.take(t), "nothing was sent")

	// A configuration every worker would refuse never reaches the backend
	// either: a pool with no worker yet records a broadcast unchecked.
	err = c.ConfigureLM(ctx, dspgo.LMConfig{Temperature: ptrTo(9.0), Provider: dspgo.ProviderOpenAI})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "temperature 9 is outside [0, 2]")
	assert.ErrorContains(t, err, "model is required for the openai provider")
	assert.Empty(t, rec.take(t), "nothing was sent")
}

func ptrTo[T any](v T) *T { return &v }

// TestWithLMSharesTheSession: handles made by WithLM share the session's
// programs and its Close.
func TestWithLMSharesTheSession(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	s := c.Session("shared")
	fast := s.WithLM("fast")
	assert.Equal(t, "", s.LM())
	assert.Equal(t, "shared", fast.ID())
	p, err := fast.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: qa})
	require.NoError(t, err)
	got, err := s.GetProgram(ctx, "p")
	require.NoError(t, err)
	assert.Same(t, p, got)
	assert.Equal(t, "", got.Spec.LM, "the handle's LM is not the program's")

	require.NoError(t, s.Close(ctx))
	_, err = fast.Execute(ctx, "p", map[string]any{"question": "?"})
	assert.ErrorIs(t, err, dspgo.ErrSessionClosed)
	_, err = s.WithLM("").ListPrograms(ctx)
	assert.ErrorIs(t, err, dspgo.ErrSessionClosed, "a handle made after Close is closed too")
}

// TestNamedLMsAreBounded: a worker keeps at most program.MaxNamedLMs named
// LM configurations, the mock and a Python worker alike: one more name is
// CodeResourceExhausted, a known name is replaced all the same, and reset
// drops them.
func TestNamedLMsAreBounded(t *testing.T) {
	ctx := t.Context()
	for i, c := range mockAndPython(t) {
		t.Run([]string{"mock", "python"}[i], func(t *testing.T) {
			for n := range program.MaxNamedLMs {
				require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Name: fmt.Sprintf("n%d", n), Model: "m"}))
			}
			err := c.ConfigureLM(ctx, dspgo.LMConfig{Name: "one_more", Model: "m"})
			assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err), "%v", err)
			assert.ErrorContains(t, err, fmt.Sprintf(`a worker keeps at most %d named LM configurations: "one_more" would be one more (reset drops them)`, program.MaxNamedLMs))
			require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Name: "n0", Model: "again"}))
			_, err = c.Adapter().Call(ctx, adapter.Request{Command: command.Reset})
			require.NoError(t, err)
			require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Name: "one_more", Model: "m"}))
		})
	}
}
