package port_test

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
)

// benchWorkers starts one adapter of each kind for a benchmark.
func benchWorkers(b *testing.B) map[string]*port.Adapter {
	b.Helper()
	out := map[string]*port.Adapter{}
	for _, kind := range []string{"memory", "python"} {
		opts := port.Options{Logger: quiet, MaxConcurrency: 16}
		if kind == "memory" {
			opts.Handler = memoryHandler
		} else {
			opts.Python, opts.WorkerDir, opts.Diagnostics = testutil.Python(b), testutil.PythonDir(), true
		}
		a, err := port.New(context.Background(), opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = a.Close(context.Background()) })
		out[kind] = a
	}
	return out
}

// cpuNanos is this process's user and system CPU time: the host's cost,
// without the worker's.
func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// reportCPU reports the host CPU per operation since start.
func reportCPU(b *testing.B, start int64) {
	b.ReportMetric(float64(cpuNanos()-start)/float64(b.N), "host-cpu-ns/op")
}

func BenchmarkPortPing(b *testing.B) {
	for _, kind := range []string{"memory", "python"} {
		a := benchWorkers(b)[kind]
		req := adapter.Request{Command: "ping"}
		b.Run(kind+"/sequential", func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuNanos()
			for b.Loop() {
				if _, err := a.Call(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
		b.Run(kind+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			cpu := cpuNanos()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := a.Call(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportCPU(b, cpu)
		})
	}
}

func BenchmarkPortExecute(b *testing.B) {
	for _, kind := range []string{"memory", "python"} {
		a := benchWorkers(b)[kind]
		c := dspgo.NewClient(a)
		p, err := c.CreateProgram(context.Background(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
		if err != nil {
			b.Skipf("%s: %v", kind, err)
		}
		in := map[string]any{"question": "What is Go?"}
		b.Run(kind+"/sequential", func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuNanos()
			for b.Loop() {
				if _, err := c.Execute(context.Background(), p.ID, in); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
		b.Run(kind+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if _, err := c.Execute(context.Background(), p.ID, map[string]any{"question": fmt.Sprint(i)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkPortStream measures streamed chunks: one op is one chunk of a
// 1,000-chunk stream_count stream with the default window of 16, credit
// granted as the loop takes them.
func BenchmarkPortStream(b *testing.B) {
	for _, kind := range []string{"memory", "python"} {
		a := benchWorkers(b)[kind]
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuNanos()
			left := b.N
			for left > 0 {
				n := min(left, 1000)
				req := adapter.Request{Command: "stream_count", Args: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}
				for _, err := range a.Stream(context.Background(), req) {
					if err != nil {
						b.Fatal(err)
					}
				}
				left -= n
			}
			reportCPU(b, cpu)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "chunks/s")
		})
	}
}
