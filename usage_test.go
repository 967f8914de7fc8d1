package dspgo_test

import (
	"context"
	"encoding/json"
	"iter"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/command"
)

// withUsage adds a usage object to an execute_program result, as a
// worker calling a real LM reports it.
func withUsage(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	var result map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &result))
	result["usage"] = json.RawMessage(`{"prompt_tokens":120,"completion_tokens":30,"total_tokens":150}`)
	b, err := json.Marshal(result)
	require.NoError(t, err)
	return b
}

// usageAdapter is the mock whose execute_program results carry usage. It
// does not stream: ExecuteStream falls back to Call.
type usageAdapter struct {
	adapter.Adapter
	t *testing.T
}

func (u usageAdapter) Call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	resp, err := u.Adapter.Call(ctx, req)
	if err == nil && req.Command == command.ExecuteProgram {
		resp.Result = withUsage(u.t, resp.Result)
	}
	return resp, err
}

// streamingUsageAdapter streams too, with usage in the final response.
type streamingUsageAdapter struct {
	usageAdapter
	s adapter.Streamer
}

func (u streamingUsageAdapter) Stream(ctx context.Context, req adapter.Request) iter.Seq2[adapter.Chunk, error] {
	return func(yield func(adapter.Chunk, error) bool) {
		for ch, err := range u.s.Stream(ctx, req) {
			if err == nil && ch.Response != nil {
				resp := *ch.Response
				resp.Result = withUsage(u.t, resp.Result)
				ch.Response = &resp
			}
			if !yield(ch, err) {
				return
			}
		}
	}
}

func usageClient(t *testing.T, streams bool) (*dspgo.Client, *dspgo.Program) {
	t.Helper()
	m := mock.New(mock.Options{})
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	var a adapter.Adapter = usageAdapter{Adapter: m, t: t}
	if streams {
		a = streamingUsageAdapter{usageAdapter: usageAdapter{Adapter: m, t: t}, s: m}
	}
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: qa})
	require.NoError(t, err)
	return c, p
}

// lastPart ranges over a stream and returns its last part.
func lastPart(t *testing.T, parts iter.Seq2[dspgo.StreamPart, error]) dspgo.StreamPart {
	t.Helper()
	var last dspgo.StreamPart
	for part, err := range parts {
		require.NoError(t, err)
		if part.Outputs == nil {
			assert.Zero(t, part.Usage, "only the last part carries usage")
		}
		last = part
	}
	require.NotNil(t, last.Outputs)
	return last
}

func TestUsageReachesExecutionAndLastStreamPart(t *testing.T) {
	want := dspgo.Usage{Prompt: 120, Completion: 30, Total: 150}
	in := map[string]any{"question": "?"}
	for _, streams := range []bool{true, false} {
		c, p := usageClient(t, streams)
		e, err := c.ExecuteDetailed(t.Context(), p.ID, in)
		require.NoError(t, err)
		assert.Equal(t, want, e.Usage)
		assert.Contains(t, e.Outputs, "answer")
		assert.Equal(t, want, lastPart(t, c.ExecuteStream(t.Context(), p.ID, in)).Usage, "streams: %v", streams)

		s := c.Session("s")
		_, err = s.CreateProgram(t.Context(), dspgo.ProgramSpec{ID: "p", Signature: qa})
		require.NoError(t, err)
		e, err = s.ExecuteDetailed(t.Context(), "p", in)
		require.NoError(t, err)
		assert.Equal(t, want, e.Usage, "in a session too")
	}
}

// The mock, like the Python worker's dummy provider, makes no LM call and
// reports no usage: zero.
func TestNoUsageIsZero(t *testing.T) {
	c, _ := newClient(t)
	p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: qa})
	require.NoError(t, err)
	in := map[string]any{"question": "?"}
	e, err := c.ExecuteDetailed(t.Context(), p.ID, in)
	require.NoError(t, err)
	assert.Zero(t, e.Usage)
	assert.Zero(t, lastPart(t, c.ExecuteStream(t.Context(), p.ID, in)).Usage)

	m := mock.New(mock.Options{})
	defer m.Close(context.Background())
	resp, err := m.Call(t.Context(), adapter.Request{Command: command.ExecuteProgram,
		Args: json.RawMessage(`{"spec_hash":"` + p.Hash + `","spec":{"signature":{"inputs":[{"name":"question"}],"outputs":[{"name":"answer"}]}},"inputs":{"question":"?"}}`)})
	require.NoError(t, err)
	assert.NotContains(t, string(resp.Result), "usage", "absent from the result, not zero")
}

// LMConfig.Cache travels in configure_lm's arguments only when set, and
// the mock accepts it.
func TestConfigureLMSendsCache(t *testing.T) {
	c, m := newClient(t)
	require.NoError(t, c.ConfigureLM(t.Context(), dspgo.LMConfig{}))
	require.NoError(t, c.ConfigureLM(t.Context(), dspgo.LMConfig{Cache: true}))
	var args []map[string]any
	for _, call := range m.Calls() {
		if call.Command == command.ConfigureLM {
			require.Equal(t, adapter.CodeOK, call.Code)
			var a map[string]any
			require.NoError(t, json.Unmarshal(call.Args, &a))
			args = append(args, a)
		}
	}
	require.Len(t, args, 2)
	assert.NotContains(t, args[0], "cache", "false is left out: the worker's default")
	assert.Equal(t, true, args[1]["cache"])
}
