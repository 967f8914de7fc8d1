package pool_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
)

// TestNamedLMsReachLaterWorkers: the default LM and two named ones,
// configured before any worker of a lazy pool runs, reach every worker it
// starts, and a worker restarted after a kill; configuring a name again
// replaces that name only; a configuration the workers refuse is not
// replayed.
func TestNamedLMsReachLaterWorkers(t *testing.T) {
	for name, worker := range map[string]func(t *testing.T) port.Options{
		"python": func(t *testing.T) port.Options { return pythonOptions(t, 1).Worker },
		"memory": func(*testing.T) port.Options { return port.Options{Handler: memoryHandler} },
	} {
		t.Run(name, func(t *testing.T) {
			p := newPool(t, pool.Options{Size: 3, Lazy: true, WorkerConcurrency: 1, Worker: worker(t)})
			ctx := t.Context()
			configure := func(args string) error {
				return p.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(args)})
			}
			for _, args := range []string{`{"provider":"dummy","model":"default-1"}`, `{"provider":"dummy","model":"alpha-1","name":"alpha"}`,
				`{"provider":"dummy","model":"beta-1","name":"beta"}`, `{"provider":"dummy","model":"default-2","name":""}`,
				`{"provider":"dummy","model":"alpha-2","name":"alpha"}`} {
				require.NoError(t, configure(args))
			}
			want := lmStats{LM: lmOf{"dummy", "default-2"}, LMs: map[string]lmOf{"alpha": {"dummy", "alpha-2"}, "beta": {"dummy", "beta-1"}}}

			var wg sync.WaitGroup
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := p.Call(ctx, adapter.Request{Command: "ping"})
					assert.NoError(t, err)
				}()
			}
			wg.Wait()
			require.NotEmpty(t, p.Workers())
			for _, w := range p.Workers() {
				assert.Equal(t, want, workerLMs(t, w), "worker %s", w.Worker().ID)
			}

			// Refused by the workers, so not recorded for the next ones.
			err := configure(`{"provider":"dummy","model":"refused","name":"beta","temperature":9}`)
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", err)

			w := p.Workers()[0]
			before := w.Worker().Restarts
			w.Kill()
			testutil.WaitFor(t, "the killed worker restarted", func() bool {
				info := w.Worker()
				return info.Restarts > before && info.State == "ready"
			})
			assert.Equal(t, want, workerLMs(t, w), "the restarted worker %s", w.Worker().ID)
		})
	}
}

type lmOf struct{ Provider, Model string }

type lmStats struct {
	LM  lmOf            `json:"lm"`
	LMs map[string]lmOf `json:"lms"`
}

func workerLMs(t *testing.T, w *port.Adapter) lmStats {
	t.Helper()
	resp, err := w.Call(t.Context(), adapter.Request{Command: "get_stats"})
	require.NoError(t, err)
	var st lmStats
	require.NoError(t, json.Unmarshal(resp.Result, &st))
	return st
}

// TestBroadcastWithNoWorkerIsChecked: a lazy pool before its first call
// runs a broadcast on a worker it starts for it, so one the workers refuse
// is refused now (as a port refuses it) instead of recorded unchecked,
// where it failed every later worker's start; the pool serves on.
func TestBroadcastWithNoWorkerIsChecked(t *testing.T) {
	p := newPool(t, pool.Options{Size: 2, Lazy: true, Worker: port.Options{Handler: memoryHandler}})
	ctx := t.Context()
	err := p.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"x","name":"fast","temperature":9}`)})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", err)
	require.NoError(t, p.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"kept","name":"good"}`)}))
	_, err = p.Call(ctx, adapter.Request{Command: "ping"})
	require.NoError(t, err)
	assert.Zero(t, p.Stats().StartFailures)
	for _, w := range p.Workers() {
		lms := workerLMs(t, w)
		assert.Equal(t, lmOf{"dummy", "kept"}, lms.LMs["good"], "worker %s", w.Worker().ID)
		assert.NotContains(t, lms.LMs, "fast")
	}
}

// TestARefusedBroadcastKeepsThePreviousOne: a configuration refused while
// no worker runs leaves the one it would have replaced in force, on the
// workers started later too.
func TestARefusedBroadcastKeepsThePreviousOne(t *testing.T) {
	p := newPool(t, pool.Options{Size: 1, Lazy: true, Recycle: pool.Recycle{MaxCalls: 1}, Worker: port.Options{Handler: memoryHandler}})
	ctx := t.Context()
	configure := func(args string) error {
		return p.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(args)})
	}
	require.NoError(t, configure(`{"provider":"dummy","model":"good","name":"fast"}`))
	_, err := p.Call(ctx, adapter.Request{Command: "ping"})
	require.NoError(t, err)
	testutil.WaitFor(t, "the worker retired after its one call", func() bool { return len(p.Workers()) == 0 })

	err = configure(`{"provider":"dummy","model":"bad","name":"fast","temperature":9}`)
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", err)
	for i := range 2 { // each call on a worker of its own (one call each)
		resp, err := p.Call(ctx, adapter.Request{Command: "get_stats"})
		require.NoError(t, err)
		var st lmStats
		require.NoError(t, json.Unmarshal(resp.Result, &st))
		assert.Equal(t, lmOf{"dummy", "good"}, st.LMs["fast"], "worker %d after the refusal", i)
	}
}

// TestConcurrentBroadcastsStartOneWorker: broadcasts that find no worker
// ready check on one worker, started once, not one each.
func TestConcurrentBroadcastsStartOneWorker(t *testing.T) {
	p := newPool(t, pool.Options{Size: 1, MaxOverflow: 3, Lazy: true, Worker: port.Options{Handler: memoryHandler}})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := fmt.Sprintf(`{"provider":"dummy","model":"m%d","name":"lm%d"}`, i, i)
			assert.NoError(t, p.Broadcast(t.Context(), adapter.Request{Command: "configure_lm", Args: json.RawMessage(args)}))
		}()
	}
	wg.Wait()
	assert.Len(t, p.Workers(), 1)
	assert.Len(t, workerLMs(t, p.Workers()[0]).LMs, 4)
}
