package dspgo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// Execute runs the program on inputs and returns its outputs converted to
// their declared types (string, int64, float64, bool, []T, map[string]T,
// map[int64]T for dict[int, T], []any for a fixed tuple, and any for Any,
// Optional and Union: docs/protocol.md, "Input conversion").
// An input with a Default may be left out and takes it, and an Optional
// one may be left out (docs/protocol.md, "Input conversion"); any other
// missing input, an unknown one, or one of the wrong type is
// CodeInvalidArgument naming the field; an output the backend did not
// produce is an error, never a placeholder.
func (c *Client) Execute(ctx context.Context, programID string, inputs map[string]any) (map[string]any, error) {
	return c.execute(ctx, "", "", programID, inputs)
}

// ExecuteDetailed runs a program as Execute does and also returns the
// trajectory of a KindReact program, the worker that ran it and the
// language model's token usage.
func (c *Client) ExecuteDetailed(ctx context.Context, programID string, inputs map[string]any) (*Execution, error) {
	return c.executeDetailed(ctx, "", "", programID, inputs)
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

// Step is one tool call of a KindReact program's loop, the command set's
// command.Step:
//
//	type Step struct {
//		Tool        string          // the tool's name
//		Args        json.RawMessage // the JSON object of arguments the model chose
//		Observation json.RawMessage // the tool's JSON result, or {"error": {"code", "message"}}
//	}
type Step = command.Step

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

func (c *Client) execute(ctx context.Context, session, lm, id string, inputs map[string]any) (map[string]any, error) {
	e, err := c.run(ctx, session, lm, id, inputs)
	return e.Outputs, err
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

// prepare looks the program up and encodes the request of an execution
// through a handle whose LM is lm; it returns the program, the request,
// the encoded inputs and the name of the LM configuration it runs with.
func (c *Client) prepare(ctx context.Context, session, lm, id string, inputs map[string]any) (*Program, adapter.Request, []byte, string, error) {
	const op = command.ExecuteProgram
	if err := ctx.Err(); err != nil {
		return nil, adapter.Request{}, nil, "", adapter.Wrap(err, c.a.Name(), op)
	}
	p, _, err := c.lookup(session, op, id)
	if err != nil {
		return nil, adapter.Request{}, nil, "", err
	}
	if path, problem := checkInputs(inputs); path != "" {
		return nil, adapter.Request{}, nil, "", c.errorf(adapter.CodeInvalidArgument, op, "%s: %s", path, problem)
	}
	converted, err := p.compiled.Inputs(inputs)
	if err != nil {
		return nil, adapter.Request{}, nil, "", adapter.Wrap(err, c.a.Name(), op)
	}
	rawInputs, err := json.Marshal(program.PyFloatsMap(converted))
	if err != nil {
		return nil, adapter.Request{}, nil, "", c.errorf(adapter.CodeInvalidArgument, op, "inputs: %v", err)
	}
	lm = p.lm(lm)
	req := adapter.Request{Command: op, Session: session, Args: p.executeArgs(rawInputs, false, lm)}
	if p.compiled.Spec.Kind == command.KindReact && len(c.opts.tools) > 0 {
		req.Tools = c.opts.tools
	}
	return p, req, rawInputs, lm, nil
}

// result decodes execute_program's result into the typed outputs and
// the usage and, for a react program, the trajectory; all but Worker.
func (c *Client) result(p *Program, raw json.RawMessage) (Execution, error) {
	const op = command.ExecuteProgram
	var result executeResult
	if err := decodeResult(raw, &result); err != nil || result.Outputs == nil {
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

// executeResult is the part of execute_program's result the client reads.
type executeResult struct {
	Outputs    map[string]any `json:"outputs"`
	Trajectory []Step         `json:"trajectory"`
	Usage      *command.Usage `json:"usage"` // allocated only when present
}

// resultDecoder is a JSON decoder with exact numbers (json.Number) over a
// reader that is pointed at each result in turn. A decoder keeps its
// buffer and its scanner's stack from one result to the next, so a reused
// one saves their allocations on every execution.
type resultDecoder struct {
	src bytes.Reader
	dec *json.Decoder
}

// resultDecoders holds decoders that ended at the end of their last
// result, with no error, after a result of at most maxPooledResult bytes
// (so that a pooled decoder's buffer stays small).
var resultDecoders = sync.Pool{New: func() any {
	d := new(resultDecoder)
	d.dec = json.NewDecoder(&d.src)
	d.dec.UseNumber()
	return d
}}

const maxPooledResult = 64 << 10

// decodeResult decodes one result, numbers kept exact for the
// conversion; bytes after the first JSON value are ignored, as a
// json.Decoder's first Decode ignores them.
func decodeResult(raw []byte, v *executeResult) error {
	d := resultDecoders.Get().(*resultDecoder)
	d.src.Reset(raw)
	start := d.dec.InputOffset() // counts every result the decoder read
	err := d.dec.Decode(v)
	// A decoder is reused only when it read all of raw and nothing is
	// left in its buffer: a decoder that stopped early (an error, or data
	// after the value) would read the rest as the start of the next
	// result. Dropped ones are made anew.
	if err == nil && len(raw) <= maxPooledResult && d.src.Len() == 0 && d.dec.InputOffset()-start == int64(len(raw)) {
		resultDecoders.Put(d)
	}
	return err
}

// isSpecNotFound reports whether err is a worker's refusal of an execute
// whose spec it has not compiled. It tests err != nil first: the target
// of errors.As escapes, and nil is the common case.
func isSpecNotFound(err error) bool {
	if err == nil {
		return false
	}
	var e *adapter.Error
	return errors.As(err, &e) && e.Remote != nil && e.Remote.Type == command.SpecNotFoundType && adapter.CodeOf(err) == adapter.CodeNotFound
}
