package dspgo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
)

// ToolFunc is a Go function that a react program's language model calls
// through the worker. args is the JSON object the model chose; the result
// is encoded as JSON and becomes the model's observation. An error keeps
// its adapter.Code (CodeUnknown when it has none) and its message becomes
// the observation; a panic is CodeInternal. ctx ends with the execution
// that called the tool (its deadline or cancellation).
type ToolFunc func(ctx context.Context, args json.RawMessage) (any, error)

// tool is one registered tool.
type tool struct {
	spec command.ToolSpec
	fn   ToolFunc
}

// WithTool registers a tool for the client's react programs: name (what
// the model calls it: letters, digits, '_' and '-'), description (what
// it does, for the model), schema (a JSON Schema object of its arguments,
// any value that encodes to one; nil means {}) and fn. Registering a name
// twice keeps the last.
func WithTool(name, description string, schema any, fn ToolFunc) Option {
	return func(o *options) {
		raw := json.RawMessage(`{}`)
		if schema != nil {
			b, err := json.Marshal(schema)
			if err != nil || len(b) == 0 || b[0] != '{' {
				o.toolErr = fmt.Errorf("tool %q: schema must encode to a JSON object (%v)", name, err)
				return
			}
			raw = b
		}
		if !validToolName(name) || fn == nil {
			o.toolErr = fmt.Errorf("tool %q: a name of letters, digits, '_' and '-' and a function are required", name)
			return
		}
		o.tools = slices.DeleteFunc(o.tools, func(t tool) bool { return t.spec.Name == name })
		o.tools = append(o.tools, tool{spec: command.ToolSpec{Name: name, Description: description, Schema: raw}, fn: fn})
	}
}

func validToolName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// toolSet is the client's tools as an adapter.Tools.
type toolSet []tool

// CallTool runs the named tool.
func (ts toolSet) CallTool(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
	i := slices.IndexFunc(ts, func(t tool) bool { return t.spec.Name == name })
	if i < 0 {
		names := make([]string, len(ts))
		for j, t := range ts {
			names[j] = t.spec.Name
		}
		return nil, adapter.Errorf(adapter.CodeNotFound, "tool %q is not registered (registered: %s)", name, strings.Join(names, ", "))
	}
	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	v, err := ts[i].fn(ctx, args)
	if err != nil {
		if e := (*adapter.Error)(nil); errors.As(err, &e) {
			return nil, err
		}
		return nil, adapter.Errorf(adapter.CodeOf(err), "%v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, adapter.Errorf(adapter.CodeInternal, "tool %q: its result does not encode as JSON: %v", name, err)
	}
	return b, nil
}

func (ts toolSet) specs() []command.ToolSpec {
	out := make([]command.ToolSpec, len(ts))
	for i, t := range ts {
		out[i] = t.spec
	}
	return out
}
