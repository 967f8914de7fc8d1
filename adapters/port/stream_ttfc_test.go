package port_test

import (
	"context"
	"testing"
	"time"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/internal/lmtest"
)

// ttfcChunkDelay is the slow test LM's wait before each piece of its
// stream.
const ttfcChunkDelay = 20 * time.Millisecond

// BenchmarkTimeToFirstChunk measures, on the native and on the dspy
// engine, how long an ExecuteStream of a chain_of_thought program with
// several outputs takes to its first part (ms/first-chunk) and to its last
// (ms/total), against a test LM that waits ttfcChunkDelay before each
// piece of its reply. The reply is 38 pieces (760 ms of waits); the
// reasoning's first word is the 6th (120 ms). Both engines hand each
// output's text on as the LM sends it, so the first chunk comes soon
// after that piece, long before the LM's last one: every iteration checks
// that the LM was still sending its reply when the first part arrived.
// One execution without a stream (which the test LM answers at once)
// warms the worker up before the timed ones.
func BenchmarkTimeToFirstChunk(b *testing.B) {
	srv := lmtest.New(b, lmtest.Options{ChunkDelay: ttfcChunkDelay})
	spec := dspgo.ProgramSpec{
		ID:        "ttfc",
		Signature: dspgo.MustParseSignature("question -> answer, keywords: list[str], confidence: float"),
		Kind:      dspgo.KindChainOfThought,
	}
	inputs := map[string]any{"question": "How fast is the first chunk?"}

	for _, engine := range []string{"native", "dspy"} {
		b.Run(engine, func(b *testing.B) {
			c := newEngineClient(b, srv, engine)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			p, err := c.CreateProgram(ctx, spec)
			if err != nil {
				b.Fatal(err)
			}
			// stream runs one execution: the time to its first part and to
			// its last, and whether the LM's request was still in flight
			// when the first part arrived.
			stream := func() (first, total time.Duration, early bool) {
				start := time.Now()
				n := 0
				for _, err := range c.ExecuteStream(ctx, p.ID, inputs) {
					if err != nil {
						b.Fatal(err)
					}
					if n++; n == 1 {
						first = time.Since(start)
						reqs := srv.Requests()
						early = len(reqs) > 0 && !reqs[len(reqs)-1].Done
					}
				}
				total = time.Since(start)
				if n < 2 {
					b.Fatalf("%s: the stream had %d parts", engine, n)
				}
				return first, total, early
			}
			// Warm-up: a reply that is not streamed comes at once.
			if _, err := c.Execute(ctx, p.ID, inputs); err != nil {
				b.Fatal(err)
			}

			var first, total time.Duration
			late := 0
			for b.Loop() {
				f, tt, early := stream()
				first += f
				total += tt
				if !early {
					late++
				}
			}
			if late > 0 {
				b.Errorf("%s: in %d of %d executions the LM had sent its whole reply before the first part arrived", engine, late, b.N)
			}
			b.ReportMetric(float64(first.Microseconds())/1e3/float64(b.N), "ms/first-chunk")
			b.ReportMetric(float64(total.Microseconds())/1e3/float64(b.N), "ms/total")
		})
	}
}
