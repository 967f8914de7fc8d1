package mock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/wire"
	"github.com/dspgo/dspgo/protocol"
)

// withTools returns ctx carrying the host tools a request handled by a
// Handler in process may call (a react program's tools).
func withTools(ctx context.Context, t adapter.Tools) context.Context {
	if t == nil {
		return ctx
	}
	return protocol.WithToolCaller(ctx, func(ctx context.Context, tool string, args json.RawMessage) (json.RawMessage, error) {
		result, err := adapter.CallTool(ctx, t, tool, args)
		if err != nil {
			return nil, err
		}
		// The result goes through the codec as it would to a worker: one
		// it refuses (not UTF-8, say) is the tool's error, as on a worker.
		if _, cerr := protocol.AppendResponse(nil, &protocol.Response{Kind: protocol.KindResult, Success: true, Result: result}, 0); cerr != nil {
			return nil, adapter.Errorf(adapter.CodeInvalidArgument, "the result of tool %q cannot be sent to the worker: %v", tool, cerr)
		}
		return result, nil
	})
}

// errStopped: the consumer left the stream.
var errStopped = adapter.Errorf(adapter.CodeCanceled, "the consumer stopped reading the stream")

// Stream runs req as Call does, and for execute_program yields the dummy
// LM's chunks ({"field", "delta"}) before the final result. Each chunk
// goes through the codec as it would from a worker. The producer runs
// only as the consumer takes chunks.
func (a *Adapter) Stream(ctx context.Context, req adapter.Request) iter.Seq2[adapter.Chunk, error] {
	return func(yield func(adapter.Chunk, error) bool) {
		var seq uint64
		stopped := false
		emit := func(data json.RawMessage) error {
			if err := ctx.Err(); err != nil {
				return err // no chunk after the deadline or a cancel
			}
			frame, err := protocol.AppendChunk(nil, &protocol.Chunk{Seq: seq, Data: data}, a.max)
			if err != nil {
				return a.codecError(err, req.Command)
			}
			m, err := protocol.DecodeWorkerMessage(frame[protocol.HeaderSize:])
			if err != nil {
				return a.codecError(err, req.Command)
			}
			if !yield(adapter.Chunk{Seq: seq, Data: m.Chunk.Data}, nil) {
				stopped = true
				return errStopped
			}
			seq++
			return nil
		}
		resp, err := a.Call(protocol.WithEmit(ctx, emit), req)
		if stopped {
			return
		}
		if err != nil {
			yield(adapter.Chunk{}, err)
			return
		}
		yield(adapter.Chunk{Seq: seq, Response: &resp}, nil)
	}
}

// react runs the dummy provider's react loop: step i takes the script's
// step i; a finish step, the end of the script or maxIters ends it. A
// tool's error is its observation; the request's own end stops the loop.
func (h *Handler) react(ctx context.Context, script []command.ScriptStep, maxIters int) ([]command.Step, error) {
	call := protocol.ToolCallerFrom(ctx)
	trajectory := []command.Step{}
	for i := 0; i < maxIters && i < len(script); i++ {
		step := script[i]
		if step.Finish {
			break
		}
		var obs json.RawMessage
		var err error
		if call == nil {
			err = adapter.Errorf(adapter.CodeFailedPrecondition, "tool %q: the request carries no tools", step.Tool)
		} else {
			obs, err = call(ctx, step.Tool, step.Args)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			body := wire.Body(err)
			if te := (*protocol.ToolError)(nil); errors.As(err, &te) {
				body = &te.Body
			}
			obs, _ = json.Marshal(map[string]any{"error": map[string]string{"code": body.Code, "message": body.Message}})
		}
		trajectory = append(trajectory, command.Step{Tool: step.Tool, Args: step.Args, Observation: obs})
	}
	return trajectory, nil
}

// stream emits the dummy chunks of outputs when the request streams,
// failing after failAfter of them when it is set.
func stream(ctx context.Context, c *program.Compiled, outputs map[string]any, failAfter *int) error {
	emit := protocol.EmitFrom(ctx)
	if emit == nil {
		return nil
	}
	chunks, err := c.DummyChunks(outputs)
	if err != nil {
		return err
	}
	for i, ch := range chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		if failAfter != nil && i >= *failAfter {
			return adapter.Errorf(adapter.CodeInternal, "the dummy LM failed after %d chunks (fail_after_chunks)", i)
		}
		data, _ := json.Marshal(ch)
		if err := emit(data); err != nil {
			return err
		}
	}
	return nil
}

// checkTools validates execute_program's tools and max_iters, naming the
// bad field.
func checkTools(args *command.ExecuteArgs) (maxIters int, err error) {
	seen := map[string]bool{}
	for i, t := range args.Tools {
		switch {
		case t.Name == "":
			return 0, adapter.Errorf(adapter.CodeInvalidArgument, "tools[%d].name must be a non-empty string", i)
		case seen[t.Name]:
			return 0, adapter.Errorf(adapter.CodeInvalidArgument, "tools[%d].name %q is used twice", i, t.Name)
		case len(t.Schema) > 0 && t.Schema[0] != '{' && string(t.Schema) != "null":
			return 0, adapter.Errorf(adapter.CodeInvalidArgument, "tools[%d].schema must be an object", i)
		}
		seen[t.Name] = true
	}
	if args.MaxIters == nil {
		return command.DefaultMaxIters, nil
	}
	if n := *args.MaxIters; n < 1 || n > command.MaxIters {
		return 0, adapter.Errorf(adapter.CodeInvalidArgument, "max_iters must be from 1 to %d, got %d", command.MaxIters, n)
	}
	return *args.MaxIters, nil
}

// streamCount streams the integers 0 to n-1 and returns {"count": n};
// with fail_at it fails before yielding that one, as a producer that
// raises would.
func (h *Handler) streamCount(ctx context.Context, raw json.RawMessage) (any, error) {
	var args struct {
		N      int  `json:"n"`
		FailAt *int `json:"fail_at"`
	}
	if err := decodeArgs(raw, &args); err != nil {
		return nil, err
	}
	if args.N < 0 {
		return nil, adapter.Errorf(adapter.CodeInvalidArgument, "n must not be negative")
	}
	emit := protocol.EmitFrom(ctx)
	for i := range args.N {
		if args.FailAt != nil && i == *args.FailAt {
			return nil, &adapter.Error{Code: adapter.CodeInternal, Remote: &adapter.RemoteError{
				Code: adapter.CodeInternal, Type: "RuntimeError", Message: fmt.Sprintf("stream_count failed at %d", i)}}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if emit != nil {
			if err := emit(json.RawMessage(strconv.Itoa(i))); err != nil {
				return nil, err
			}
		}
	}
	return map[string]int{"count": args.N}, nil
}
