package dspgo

import (
	"context"
	"encoding/json"
	"iter"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// StreamPart is one element of ExecuteStream: a piece of one output's
// text as the language model produces it, or, last, the whole result.
type StreamPart struct {
	// Field is the output the piece belongs to; empty in the last part.
	Field string
	// Delta is the piece of text; the deltas of a field, concatenated, are
	// the text its value was read from: a str value itself; for another
	// type, the text the language model wrote (True, 3.10 or 007 for true,
	// 3.1 or 7), which the dummy LM writes as the value's JSON.
	Delta string
	// Outputs is set in the last part only: the typed outputs, as Execute
	// returns them.
	Outputs map[string]any
	// Trajectory is set in the last part of a KindReact program: the
	// tools it called.
	Trajectory []Step
	// Usage is set in the last part only: the language model's tokens,
	// as in Execution. Zero means the backend reported none.
	Usage Usage
}

// ExecuteStream runs a program as Execute does and yields its outputs'
// text as the language model produces it, then one last part holding
// the typed outputs; or an error, always last. Nothing runs until the
// sequence is ranged over. Leaving the loop early cancels the execution
// on the worker. The worker produces at most a window of parts ahead of
// the loop, so a slow consumer slows the producer instead of filling
// memory. On an adapter that does not stream, each output comes whole,
// as one part, once the execution is done.
func (c *Client) ExecuteStream(ctx context.Context, programID string, inputs map[string]any) iter.Seq2[StreamPart, error] {
	return c.executeStream(ctx, "", "", programID, inputs)
}

func (c *Client) executeStream(ctx context.Context, session, lm, id string, inputs map[string]any) iter.Seq2[StreamPart, error] {
	return func(yield func(StreamPart, error) bool) {
		const op = command.ExecuteProgram
		p, req, rawInputs, lm, err := c.prepare(ctx, session, lm, id, inputs)
		if err != nil {
			yield(StreamPart{}, err)
			return
		}
		s, ok := c.a.(adapter.Streamer)
		if !ok || !c.a.Capabilities().Streaming {
			c.streamWhole(ctx, p, req, rawInputs, lm, yield)
			return
		}
		for attempt := 0; attempt < 2; attempt++ {
			started := false
			for ch, err := range s.Stream(ctx, req) {
				switch {
				case err != nil && !started && attempt == 0 && isSpecNotFound(err):
					req.Args = p.executeArgs(rawInputs, true, lm) // and stream again, with the spec
				case err != nil:
					yield(StreamPart{}, err)
					return
				case ch.Response != nil:
					e, err := c.result(p, ch.Response.Result)
					if err != nil {
						yield(StreamPart{}, err)
						return
					}
					yield(StreamPart{Outputs: e.Outputs, Trajectory: e.Trajectory, Usage: e.Usage}, nil)
					return
				default:
					started = true
					var d command.Delta
					if err := json.Unmarshal(ch.Data, &d); err != nil || d.Field == "" {
						yield(StreamPart{}, c.errorf(adapter.CodeInternal, op, "malformed chunk from the backend: %.200s", ch.Data))
						return
					}
					if !yield(StreamPart{Field: d.Field, Delta: d.Delta}, nil) {
						return
					}
				}
			}
		}
	}
}

// streamWhole serves ExecuteStream on an adapter that does not stream:
// each output whole, then the result.
func (c *Client) streamWhole(ctx context.Context, p *Program, req adapter.Request, rawInputs []byte, lm string, yield func(StreamPart, error) bool) {
	resp, err := c.a.Call(ctx, req)
	if isSpecNotFound(err) {
		req.Args = p.executeArgs(rawInputs, true, lm)
		resp, err = c.a.Call(ctx, req)
	}
	if err != nil {
		yield(StreamPart{}, err)
		return
	}
	e, err := c.result(p, resp.Result)
	if err != nil {
		yield(StreamPart{}, err)
		return
	}
	for _, f := range p.compiled.OutputFields() {
		text, _ := program.ValueText(e.Outputs[f.Name]) // the outputs came from JSON: they encode
		if !yield(StreamPart{Field: f.Name, Delta: text}, nil) {
			return
		}
	}
	yield(StreamPart{Outputs: e.Outputs, Trajectory: e.Trajectory, Usage: e.Usage}, nil)
}
