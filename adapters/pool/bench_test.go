package pool_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
)

func benchPool(b *testing.B, opts pool.Options) *pool.Pool {
	b.Helper()
	opts.Logger = quiet
	p, err := pool.New(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// BenchmarkPoolPing measures ping throughput through a pool of Python
// workers, with 4 calls in flight per worker.
func BenchmarkPoolPing(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprint("workers=", n), func(b *testing.B) {
			p := benchPool(b, pythonOptions(b, n))
			req := adapter.Request{Command: "ping"}
			b.SetParallelism(4 * n)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := p.Call(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkPoolExecute measures execute throughput (dummy LM) through a
// pool of Python workers.
func BenchmarkPoolExecute(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprint("workers=", n), func(b *testing.B) {
			c := dspgo.NewClient(benchPool(b, pythonOptions(b, n)))
			prog, err := c.CreateProgram(context.Background(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
			if err != nil {
				b.Fatal(err)
			}
			in := map[string]any{"question": "What is Go?"}
			b.SetParallelism(4 * n)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Execute(context.Background(), prog.ID, in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkPoolOverhead compares one in-memory worker called directly
// through its port adapter and through a pool of one: the difference is
// the pool's own cost per call.
func BenchmarkPoolOverhead(b *testing.B) {
	req := adapter.Request{Command: "ping"}
	b.Run("port", func(b *testing.B) {
		a, err := port.New(context.Background(), port.Options{Handler: memoryHandler, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		defer a.Close(context.Background())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Call(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pool", func(b *testing.B) {
		p := benchPool(b, pool.Options{Size: 1, HealthInterval: -1, Worker: port.Options{Handler: memoryHandler}})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Call(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
