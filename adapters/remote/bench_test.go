package remote_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/internal/testutil"
)

// BenchmarkHosts measures calls per second through 1 and 2 worker host
// processes (each a pool of 2 in-memory workers taking 8 calls each):
// "ping" is bound by CPU (the machine's, shared by hosts, server and
// callers), "lm_bound" by the hosts' capacity, each call waiting 10 ms as
// for a language model. 64 callers.
func BenchmarkHosts(b *testing.B) {
	for _, load := range []struct {
		name, lm string
	}{{"ping", `{"provider":"dummy"}`}, {"lm_bound", `{"provider":"dummy","delay_ms":10}`}} {
		for _, n := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/hosts=%d", load.name, n), func(b *testing.B) {
				testutil.VerifyNoChildren(b)
				srv := startServer(b)
				newHostSet(b, srv.ClientURL(), n)
				a := newRemote(b, srv.ClientURL(), remote.Options{})
				ctx := context.Background()
				if err := a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(load.lm)}); err != nil {
					b.Fatal(err)
				}
				c := dspgo.NewClient(a)
				p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
				if err != nil {
					b.Fatal(err)
				}
				call := func() error {
					if load.name == "ping" {
						return c.Ping(ctx)
					}
					_, err := c.Execute(ctx, p.ID, map[string]any{"q": "x"})
					return err
				}
				b.SetParallelism(32) // 64 callers on 2 cores
				start := time.Now()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := call(); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
			})
		}
	}
}
