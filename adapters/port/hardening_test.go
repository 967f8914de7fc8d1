package port_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
)

// notUTF8 are request arguments whose JSON is valid to encoding/json but
// holds bytes that are not UTF-8, in values and keys, at the top and
// nested.
var notUTF8 = func() []string {
	var out []string
	for _, b := range []string{"\xff", "\x80", "\xc3", "\xe2\x82", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"} {
		out = append(out, `{"value":"a`+b+`"}`, `{"`+b+`":1}`, `{"value":{"list":["ok","`+b+`"]}}`)
	}
	return out
}()

// TestNotUTF8IsRefusedBeforeSending: arguments that are not UTF-8 are
// refused with CodeInvalidArgument at once, on both workers, instead of
// reaching a worker that cannot read the frame's id and so never answers
// it (the caller used to wait for its deadline).
func TestNotUTF8IsRefusedBeforeSending(t *testing.T) {
	require.Len(t, notUTF8, 21)
	for name, a := range map[string]*port.Adapter{
		"python": newPython(t, port.Options{}),
		"memory": newMemory(t, port.Options{}),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			start := time.Now()
			for _, args := range notUTF8 {
				_, err := a.Call(ctx, adapter.Request{Command: "echo", Args: json.RawMessage(args)})
				require.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%q: %v", args, err)
				assert.Contains(t, err.Error(), "not valid UTF-8")
				for _, serr := range a.Stream(ctx, adapter.Request{Command: "echo", Args: json.RawMessage(args)}) {
					assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(serr), "%q: %v", args, serr)
				}
			}
			assert.Less(t, time.Since(start), 10*time.Second, "refused at once, not at a deadline")
			require.NoError(t, a.Ping(ctx))
			assert.Zero(t, a.Worker().Restarts, "nothing reached the worker")
		})
	}
}

// TestToolResultNotUTF8: a Go tool whose result is not UTF-8 becomes an
// invalid_argument observation, at once, on both workers; the worker used
// to drop the result frame and wait for it until the deadline.
func TestToolResultNotUTF8(t *testing.T) {
	for name, a := range map[string]*port.Adapter{
		"python": newPython(t, port.Options{}),
		"memory": newMemory(t, port.Options{}),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			c := dspgo.NewClient(a, dspgo.WithTool("bad", "Answers bytes that are not UTF-8.", nil, func(context.Context, json.RawMessage) (any, error) {
				return json.RawMessage("\"caf\xe9\""), nil // Latin-1, not UTF-8
			}))
			require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Script: []dspgo.ScriptStep{{Tool: "bad", Args: map[string]any{}}}}))
			p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a"), Kind: dspgo.KindReact})
			require.NoError(t, err)
			e, err := c.ExecuteDetailed(ctx, p.ID, map[string]any{"q": "?"})
			require.NoError(t, err)
			require.Len(t, e.Trajectory, 1)
			var obs struct {
				Error struct{ Code, Message string }
			}
			require.NoError(t, json.Unmarshal(e.Trajectory[0].Observation, &obs))
			assert.Equal(t, "invalid_argument", obs.Error.Code)
			assert.Contains(t, obs.Error.Message, "not valid UTF-8")
		})
	}
}
