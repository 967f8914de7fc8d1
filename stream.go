package dspgo

import (
	"bytes"
	"context"
	"encoding/json"
	"iter"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// KindReact runs a ReAct loop: the language model calls the client's
// tools (WithTool), reads their results, and answers when it is done or
// after ProgramSpec.MaxIters calls.
const KindReact = program.KindReact

// StreamPart is one element of ExecuteStream: a piece of one output's
// text as the language model produces it, or, last, the whole result.
type StreamPart struct {
	// Field is the output the piece belongs to; empty in the last part.
	Field string
	// Delta is the piece of text; the deltas of a field, concatenated, are
	// its value's text (a str value itself, any other type its JSON).
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

// Step is one tool call of a KindReact program's loop.
type Step struct {
	// Tool is the tool's name.
	Tool string `json:"tool"`
	// Args is the JSON object of arguments the model chose.
	Args json.RawMessage `json:"args"`
	// Observation is the tool's JSON result, or {"error": {"code",
	// "message"}} when it failed.
	Observation json.RawMessage `json:"observation"`
}

// Execution is the whole result of ExecuteDetailed.
type Execution struct {
	// Outputs are the typed outputs, as Execute returns them.
	Outputs map[string]any
	// Trajectory lists a KindReact program's tool calls; nil for other
	// kinds.
	Trajectory []Step
	// Worker is the worker that ran the program, when the adapter says.
	Worker string
	// Usage is the language model's tokens over every LM call the
	// execution made. Zero means the backend reported none: the dummy
	// provider, which makes no LM call, replies served from the worker's
	// LM cache (LMConfig.Cache), or a backend that does not count tokens.
	Usage Usage
}

// Usage counts a language model's tokens, summed over the LM calls of one
// execution. Each field is as the backend reported it; zero means the
// backend reported none.
type Usage struct {
	// Prompt is the tokens sent to the model. Zero means none reported.
	Prompt int
	// Completion is the tokens the model produced. Zero means none
	// reported.
	Completion int
	// Total is all tokens, as the backend counts them (normally Prompt
	// plus Completion). Zero means none reported.
	Total int
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

// ExecuteDetailed runs a program as Execute does and also returns the
// trajectory of a KindReact program, the worker that ran it and the
// language model's token usage.
func (c *Client) ExecuteDetailed(ctx context.Context, programID string, inputs map[string]any) (*Execution, error) {
	return c.executeDetailed(ctx, "", "", programID, inputs)
}

// ExecuteStream runs the session's program as a stream (see
// Client.ExecuteStream).
func (s *Session) ExecuteStream(ctx context.Context, programID string, inputs map[string]any) iter.Seq2[StreamPart, error] {
	if err := s.check(command.ExecuteProgram); err != nil {
		return func(yield func(StreamPart, error) bool) { yield(StreamPart{}, err) }
	}
	return s.c.executeStream(ctx, s.id, s.lm, programID, inputs)
}

// ExecuteDetailed runs the session's program (see Client.ExecuteDetailed).
func (s *Session) ExecuteDetailed(ctx context.Context, programID string, inputs map[string]any) (*Execution, error) {
	if err := s.check(command.ExecuteProgram); err != nil {
		return nil, err
	}
	return s.c.executeDetailed(ctx, s.id, s.lm, programID, inputs)
}

// prepare looks the program up and encodes the request of an execution
// through a handle whose LM is lm; it returns the program, the request,
// the encoded inputs and the name of the LM configuration it runs with.
func (c *Client) prepare(ctx context.Context, session, lm, id string, inputs map[string]any) (*Program, adapter.Request, []byte, string, error) {
	const op = command.ExecuteProgram
	if err := ctx.Err(); err != nil {
		return nil, adapter.Request{}, nil, "", adapter.Wrap(err, c.a.Name(), op)
	}
	p, err := c.lookup(session, op, id)
	if err != nil {
		return nil, adapter.Request{}, nil, "", err
	}
	if path, bad := checkUTF8(inputs); path != "" {
		return nil, adapter.Request{}, nil, "", c.errorf(adapter.CodeInvalidArgument, op, "%s: %s is not valid UTF-8", path, bad)
	}
	converted, err := p.compiled.Inputs(inputs)
	if err != nil {
		return nil, adapter.Request{}, nil, "", adapter.Wrap(err, c.a.Name(), op)
	}
	rawInputs, err := json.Marshal(converted)
	if err != nil {
		return nil, adapter.Request{}, nil, "", c.errorf(adapter.CodeInvalidArgument, op, "inputs: %v", err)
	}
	lm = p.lm(lm)
	req := adapter.Request{Command: op, Session: session, Args: p.executeArgs(rawInputs, false, lm)}
	if p.compiled.Spec.Kind == program.KindReact && len(c.opts.tools) > 0 {
		req.Tools = c.opts.tools
	}
	return p, req, rawInputs, lm, nil
}

// result decodes execute_program's result into the typed outputs and
// the usage and, for a react program, the trajectory; all but Worker.
func (c *Client) result(p *Program, raw json.RawMessage) (Execution, error) {
	const op = command.ExecuteProgram
	// One pass over the result, numbers kept exact for the conversion.
	var result struct {
		Outputs    map[string]any `json:"outputs"`
		Trajectory []Step         `json:"trajectory"`
		Usage      *program.Usage `json:"usage"` // allocated only when present
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&result); err != nil || result.Outputs == nil {
		return Execution{}, c.errorf(adapter.CodeInternal, op, "malformed result from the backend: %.200s", raw)
	}
	out, err := p.compiled.Outputs(result.Outputs)
	if err != nil {
		return Execution{}, adapter.Wrap(err, c.a.Name(), op)
	}
	e := Execution{Outputs: out, Trajectory: result.Trajectory}
	if u := result.Usage; u != nil {
		e.Usage = Usage{Prompt: u.PromptTokens, Completion: u.CompletionTokens, Total: u.TotalTokens}
	}
	return e, nil
}

func (c *Client) executeDetailed(ctx context.Context, session, lm, id string, inputs map[string]any) (*Execution, error) {
	e, err := c.run(ctx, session, lm, id, inputs)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// run executes a program: the request, the resend of the spec to a
// worker that lacks it, and the typed result. The Execution is returned
// by value, so Execute allocates none.
func (c *Client) run(ctx context.Context, session, lm, id string, inputs map[string]any) (Execution, error) {
	p, req, rawInputs, lm, err := c.prepare(ctx, session, lm, id, inputs)
	if err != nil {
		return Execution{}, err
	}
	resp, err := c.a.Call(ctx, req)
	if isSpecNotFound(err) {
		// The worker has not compiled this spec (a new or restarted
		// worker): send it along.
		req.Args = p.executeArgs(rawInputs, true, lm)
		resp, err = c.a.Call(ctx, req)
	}
	if err != nil {
		return Execution{}, err
	}
	e, err := c.result(p, resp.Result)
	if err != nil {
		return Execution{}, err
	}
	e.Worker = resp.Worker
	return e, nil
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
					var d program.StreamDelta
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
