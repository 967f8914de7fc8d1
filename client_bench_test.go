package dspgo_test

import (
	"context"
	"testing"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapters/mock"
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
