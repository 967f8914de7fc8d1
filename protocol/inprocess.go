package protocol

import (
	"context"
	"encoding/json"
)

// An in-process Handler (see Handler) reaches what a worker process
// reaches through its frame stream, sending chunks and calling host
// tools, through its request's context.

// Emit sends one chunk of a streamed request. An error means the stream
// is over (the consumer left, or the request ended): the producer stops
// and returns it.
type Emit func(data json.RawMessage) error

// ToolCaller calls a host tool for the request being handled. A failure
// the host reports is a *ToolError.
type ToolCaller func(ctx context.Context, tool string, args json.RawMessage) (json.RawMessage, error)

// ToolError is a host tool's failure, as the host reported it.
type ToolError struct {
	// Body is the host's error object.
	Body ErrorBody
}

// Error returns the host's message.
func (e *ToolError) Error() string { return e.Body.Code + ": " + e.Body.Message }

type (
	emitKey       struct{}
	toolCallerKey struct{}
)

// WithEmit returns ctx for a streamed request: the handler sends its
// chunks with emit.
func WithEmit(ctx context.Context, emit Emit) context.Context {
	return context.WithValue(ctx, emitKey{}, emit)
}

// EmitFrom returns the request's Emit; nil when it does not stream.
func EmitFrom(ctx context.Context) Emit {
	e, _ := ctx.Value(emitKey{}).(Emit)
	return e
}

// WithToolCaller returns ctx for a request whose handler may call host
// tools through call.
func WithToolCaller(ctx context.Context, call ToolCaller) context.Context {
	return context.WithValue(ctx, toolCallerKey{}, call)
}

// ToolCallerFrom returns the request's ToolCaller; nil when the host
// offers no tools.
func ToolCallerFrom(ctx context.Context) ToolCaller {
	c, _ := ctx.Value(toolCallerKey{}).(ToolCaller)
	return c
}
