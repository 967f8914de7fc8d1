package python_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/lmtest"
	"github.com/dspgo/dspgo/internal/testutil"
)

// TestNamedLMsOnAPool: two programs on one pool, each naming its own LM
// configuration (two models on the test LM server), executed at once:
// every LM request carries its program's model, and a program naming none
// runs with the default. Workers that start after the configurations
// (lazily, as recycled replacements, and restarted after a kill) serve
// every name, from the pool's and the port's replayed broadcasts.
func TestNamedLMsOnAPool(t *testing.T) {
	for _, engine := range []string{"native", "dspy"} {
		t.Run(engine, func(t *testing.T) {
			testutil.VerifyNoChildren(t)
			python := testutil.Python(t)
			if engine == "dspy" {
				python = testutil.DSPyPython(t)
			}
			srv := lmtest.New(t, lmtest.Options{})
			p, err := pool.New(t.Context(), pool.Options{
				Size: 2, Lazy: true, Recycle: pool.Recycle{MaxCalls: 3}, Logger: testutil.Discard,
				Worker: port.Options{Python: python, WorkerDir: testutil.PythonDir(), Env: []string{keyEnv + "=" + secret}, Logger: testutil.Discard},
			})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, p.Close(context.Background())) })
			assert.Zero(t, p.Stats().Workers, "a lazy pool starts no worker before its first call")

			c := dspgo.NewClient(p)
			ctx := t.Context()
			models := map[string]string{"": "model-default", "alpha": "model-alpha", "beta": "model-beta"}
			for name, model := range models {
				require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Name: name, Provider: dspgo.ProviderOpenAI, Model: model,
					BaseURL: srv.URL(), APIKeyEnv: keyEnv, Engine: engine}))
			}
			programs := map[string]*dspgo.Program{}
			for name := range models {
				prog, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer"), LM: name})
				require.NoError(t, err)
				programs[name] = prog
			}

			// run executes every program n times at once, each on its own
			// question, and checks the model of each LM request.
			round := 0
			run := func(n int) {
				t.Helper()
				round++
				srv.Reset()
				want := map[string]string{} // question → model
				var wg sync.WaitGroup
				for i := range n {
					for name, prog := range programs {
						question := fmt.Sprintf("round-%d-%s-%d", round, name, i)
						want[question] = models[name]
						wg.Add(1)
						go func() {
							defer wg.Done()
							out, err := c.Execute(ctx, prog.ID, map[string]any{"question": question})
							if assert.NoError(t, err, question) {
								assert.NotEmpty(t, out["answer"])
							}
						}()
					}
				}
				wg.Wait()
				got := map[string]string{}
				for _, r := range srv.Requests() {
					text := promptText(r)
					for question := range want {
						if strings.Contains(text, question) { // no question holds another: n < 10
							assert.NotContains(t, got, question, "one LM request per execution")
							got[question] = r.Model
						}
					}
				}
				assert.Equal(t, want, got, "each request carries its program's model")
			}

			run(4) // 12 executions on workers started lazily and recycled every 3 calls
			s := p.Stats()
			assert.Positive(t, s.Recycled["max_calls"], "workers were replaced while the round ran")

			// Every worker may have been recycled: a call starts one.
			require.NoError(t, c.Ping(ctx))
			killed := map[*port.Adapter]int{}
			for _, w := range p.Workers() {
				killed[w] = w.Worker().PID
				w.Kill() // restarted by its port adapter, which replays its broadcasts
			}
			require.NotEmpty(t, killed)
			// Polled with a deadline: calls sent before a worker's death is
			// seen would fail with CodeUnavailable, as they may.
			require.Eventually(t, func() bool {
				for w, pid := range killed {
					if info := w.Worker(); info.State != "closed" && (info.State != "ready" || info.PID == pid) {
						return false
					}
				}
				return true
			}, 30*time.Second, 5*time.Millisecond, "the killed workers restarted")
			run(2)

			// An execution naming no configuration is not_found naming it.
			missing, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer"), LM: "gamma"})
			require.NoError(t, err)
			_, err = c.Execute(ctx, missing.ID, map[string]any{"question": "?"})
			assert.Equal(t, adapter.CodeNotFound, adapter.CodeOf(err), "%v", err)
			assert.ErrorContains(t, err, `"gamma"`)
		})
	}
}
