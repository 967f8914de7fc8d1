package dspgo_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/command"
)

// benchClient returns a client over the mock and a created program.
func benchClient(b *testing.B) (*dspgo.Client, *dspgo.Program) {
	b.Helper()
	a := mock.New(mock.Options{})
	b.Cleanup(func() { _ = a.Close(context.Background()) })
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(context.Background(), dspgo.ProgramSpec{Signature: qa})
	if err != nil {
		b.Fatal(err)
	}
	return c, p
}

// The client's own cost per execution over the in-process mock: Execute,
// ExecuteDetailed and a streamed execution.
func BenchmarkClient(b *testing.B) {
	c, p := benchClient(b)
	in := map[string]any{"question": "What is Go?"}
	ctx := context.Background()
	b.Run("Execute", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Execute(ctx, p.ID, in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ExecuteDetailed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.ExecuteDetailed(ctx, p.ID, in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ExecuteStream", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, err := range c.ExecuteStream(ctx, p.ID, in) {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// cannedExecute answers every execute_program with the same result, and
// passes the other commands to the adapter it wraps.
type cannedExecute struct {
	adapter.Adapter
	result json.RawMessage
}

func (c cannedExecute) Call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	if req.Command == command.ExecuteProgram {
		return adapter.Response{Result: c.result}, nil
	}
	return c.Adapter.Call(ctx, req)
}

// The client's own cost per Execute, with nothing behind it: an adapter
// that answers at once with a result it already holds (the typed work the
// suite's raw baseline skips: converting and encoding the inputs,
// decoding and converting the outputs).
func BenchmarkClientOverhead(b *testing.B) {
	m := mock.New(mock.Options{})
	b.Cleanup(func() { _ = m.Close(context.Background()) })
	c := dspgo.NewClient(cannedExecute{Adapter: m, result: json.RawMessage(`{"outputs":{"answer":"an answer"},"spec_hash":"h"}`)})
	p, err := c.CreateProgram(context.Background(), dspgo.ProgramSpec{Signature: qa})
	if err != nil {
		b.Fatal(err)
	}
	in := map[string]any{"question": "What is Go?"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Execute(ctx, p.ID, in); err != nil {
			b.Fatal(err)
		}
	}
}
