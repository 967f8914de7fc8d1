package pool_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/internal/wait"
)

func newPool(t *testing.T, opts pool.Options) *pool.Pool {
	t.Helper()
	testutil.VerifyNoChildren(t)
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	p, err := pool.New(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close(context.Background())) })
	return p
}

func sleepCall(ctx context.Context, p adapter.Adapter, seconds float64) error {
	_, err := p.Call(ctx, adapter.Request{Command: "sleep", Args: json.RawMessage(fmt.Sprintf(`{"seconds":%g}`, seconds))})
	return err
}

// The seed's scenario: 6 concurrent callers on 2 workers.
func TestSixCallersOnTwoWorkers(t *testing.T) {
	t.Run("the checkout timeout allows", func(t *testing.T) {
		opts := pythonOptions(t, 2)
		opts.WorkerConcurrency, opts.CheckoutTimeout = 1, 10*time.Second
		p := newPool(t, opts)
		errs := make(chan error, 6)
		for range 6 {
			go func() { errs <- sleepCall(t.Context(), p, 0.1) }()
		}
		for range 6 {
			assert.NoError(t, <-errs)
		}
		st := p.Stats()
		assert.GreaterOrEqual(t, st.WaitCount, uint64(4), "four callers had to queue")
		assert.Zero(t, st.CheckoutTimeouts)
	})
	t.Run("the checkout timeout does not allow", func(t *testing.T) {
		opts := pythonOptions(t, 2)
		opts.WorkerConcurrency, opts.CheckoutTimeout = 1, 50*time.Millisecond
		p := newPool(t, opts)
		errs := make(chan error, 6)
		for range 6 {
			go func() { errs <- sleepCall(t.Context(), p, 1) }()
		}
		var ok, timedOut int
		for range 6 {
			err := <-errs
			if err == nil {
				ok++
				continue
			}
			timedOut++
			assert.ErrorIs(t, err, pool.ErrCheckoutTimeout)
			assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err))
			assert.Regexp(t, `no worker free after \d+ms \(checkout timeout 50ms\): 2 of 2 workers busy with 1 calls each, 0 starting or restarting, \d+ callers queued`, err.Error())
		}
		assert.Equal(t, 2, ok)
		assert.Equal(t, 4, timedOut)
		assert.EqualValues(t, 4, p.Stats().CheckoutTimeouts)
	})
}

func TestCloseWakesWaitersAndLetsCallsFinish(t *testing.T) {
	opts := pythonOptions(t, 2)
	opts.WorkerConcurrency = 2
	p := newPool(t, opts)
	inflight := make(chan error, 4)
	for range 4 {
		go func() { inflight <- sleepCall(context.Background(), p, 0.5) }()
	}
	testutil.WaitFor(t, "4 in flight", func() bool { return p.Stats().InFlight == 4 })
	type result struct {
		err error
		at  time.Time
	}
	waiting := make(chan result, 50)
	for range 50 {
		go func() { err := sleepCall(context.Background(), p, 0.01); waiting <- result{err, time.Now()} }()
	}
	testutil.WaitFor(t, "50 waiting", func() bool { return p.Stats().Waiting == 50 })

	closed := make(chan error)
	start := time.Now()
	go func() { closed <- p.Close(context.Background()) }()
	for range 50 {
		r := <-waiting
		assert.ErrorIs(t, r.err, adapter.ErrClosed)
		assert.Less(t, r.at.Sub(start), 100*time.Millisecond, "woken at once")
	}
	for range 4 {
		assert.NoError(t, <-inflight, "calls in flight finish")
	}
	assert.NoError(t, <-closed)
	assert.NoError(t, p.Close(context.Background()), "a second Close returns the same")
	_, err := p.Call(t.Context(), adapter.Request{Command: "ping"})
	assert.ErrorIs(t, err, adapter.ErrClosed)
}

func TestLazyAndEager(t *testing.T) {
	opts := pythonOptions(t, 3)
	opts.Lazy = true
	lazy := newPool(t, opts)
	st := lazy.Stats()
	assert.True(t, st.Lazy)
	assert.Zero(t, st.Workers, "a lazy pool starts no worker in New")
	_, err := lazy.Call(t.Context(), adapter.Request{Command: "ping"})
	require.NoError(t, err)
	assert.Equal(t, 1, lazy.Stats().Workers, "one call, one worker")

	eager := newPool(t, pythonOptions(t, 3))
	st = eager.Stats()
	assert.False(t, st.Lazy)
	assert.Equal(t, 3, st.Ready, "an eager pool is at Size when New returns")
}

func TestProgramsRunOnEveryWorker(t *testing.T) {
	opts := pythonOptions(t, 3)
	opts.Affinity, opts.WorkerConcurrency = adapter.AffinityNone, 1
	p := newPool(t, opts)
	c := dspgo.NewClient(p)
	prog, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
	require.NoError(t, err)
	// A warm worker keeps sequential calls; a cold one learns the spec once.
	before := spNotFound(t, p)
	for range 5 {
		_, err := c.Execute(t.Context(), prog.ID, map[string]any{"question": "same"})
		require.NoError(t, err)
	}
	assert.Equal(t, before, spNotFound(t, p), "sequential executes never bounce between workers")
	require.NoError(t, err)
	// Calls long enough to overlap, so that 30 at once need every worker
	// (a 100 µs call can finish before the next goroutine starts).
	require.NoError(t, c.ConfigureLM(t.Context(), dspgo.LMConfig{Delay: 20 * time.Millisecond}))
	var wg sync.WaitGroup
	outs := make([]map[string]any, 30)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			outs[i], err = c.Execute(t.Context(), prog.ID, map[string]any{"question": "same"})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	for _, out := range outs {
		assert.Equal(t, outs[0], out)
	}
	for _, w := range p.Workers() {
		assert.Positive(t, workerStats(t, w).Calls["execute_program"], "worker %s ran the program", w.Worker().ID)
	}
}

// spNotFound counts execute_program calls the workers failed, which are
// the SpecNotFound answers that make the client resend a spec.
func spNotFound(t *testing.T, p *pool.Pool) int {
	t.Helper()
	n := 0
	for _, w := range p.Workers() {
		st := workerStats(t, w)
		n += st.Failures
	}
	return n
}

type workerStatsResult struct {
	Failures int
	Calls    map[string]int
	LM       struct{ Model string }
}

func workerStats(t *testing.T, w *port.Adapter) workerStatsResult {
	t.Helper()
	resp, err := w.Call(t.Context(), adapter.Request{Command: "get_stats"})
	require.NoError(t, err)
	var st workerStatsResult
	require.NoError(t, json.Unmarshal(resp.Result, &st))
	return st
}

func TestConfigureLMReachesLaterWorkers(t *testing.T) {
	opts := pythonOptions(t, 3)
	opts.Lazy, opts.WorkerConcurrency = true, 1
	p := newPool(t, opts)
	require.NoError(t, dspgo.NewClient(p).ConfigureLM(t.Context(), dspgo.LMConfig{Model: "late"}))
	// Three calls held in flight until the pool has started a worker for
	// each (one call per worker), however long starting takes.
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.Equal(t, adapter.CodeCanceled, adapter.CodeOf(sleepCall(ctx, p, 60)))
		}()
	}
	waitCtx, stop := context.WithTimeout(t.Context(), time.Minute)
	defer stop()
	started := wait.Until(waitCtx, func() bool { return len(p.Workers()) == 3 })
	cancel()
	wg.Wait()
	require.True(t, started, "three workers started after the broadcast")
	for _, w := range p.Workers() {
		assert.Equal(t, "late", workerStats(t, w).LM.Model, "worker %s", w.Worker().ID)
	}
	assert.EqualValues(t, 1, p.Stats().Broadcasts)
}

func TestCrashStorm(t *testing.T) {
	opts := pythonOptions(t, 8)
	opts.WorkerConcurrency = 2
	opts.Restart = port.RestartPolicy{Min: 5 * time.Millisecond, Max: 50 * time.Millisecond, MaxRestarts: 10000}
	p := newPool(t, opts)
	c := dspgo.NewClient(p)
	prog, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
	require.NoError(t, err)

	stop := make(chan struct{})
	var ok, unavailable, calls atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				_, err := c.Execute(ctx, prog.ID, map[string]any{"question": fmt.Sprint(g, "-", i)})
				cancel()
				calls.Add(1)
				switch adapter.CodeOf(err) {
				case adapter.CodeOK:
					ok.Add(1)
				case adapter.CodeUnavailable:
					unavailable.Add(1)
				default:
					t.Errorf("a call failed with %v", err)
				}
			}
		}()
	}
	var pids []int
	deadline := time.Now().Add(3 * time.Second)
	for tick := time.NewTicker(50 * time.Millisecond); time.Now().Before(deadline); <-tick.C {
		workers := p.Workers()
		for range 2 {
			info := workers[rand.IntN(len(workers))].Worker()
			if info.PID != 0 {
				pids = append(pids, info.PID)
				_ = syscall.Kill(info.PID, syscall.SIGKILL)
			}
		}
	}
	close(stop)
	wg.Wait() // every call returned: none hangs
	t.Logf("crash storm: %d calls, %d ok, %d unavailable, %d kills", calls.Load(), ok.Load(), unavailable.Load(), len(pids))
	assert.Positive(t, ok.Load())
	testutil.WaitFor(t, "back to 8 ready workers", func() bool { return p.Stats().Ready == 8 })
	for _, pid := range pids {
		assert.False(t, testutil.Alive(pid), "killed worker %d is reaped", pid)
	}
	assert.Positive(t, p.Stats().Crashes)
}

func TestHungWorkerIsReplaced(t *testing.T) {
	opts := pythonOptions(t, 2)
	opts.HealthInterval, opts.HealthTimeout = 50*time.Millisecond, 200*time.Millisecond
	opts.Restart = port.RestartPolicy{Min: time.Millisecond}
	p := newPool(t, opts)
	victim := p.Workers()[0]
	pid := victim.Worker().PID
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP), "a worker that stops answering")
	testutil.WaitFor(t, "the health check replaces it", func() bool {
		info := victim.Worker()
		return info.State == "ready" && info.PID != pid
	})
	assert.Positive(t, p.Stats().HealthFailures)
	testutil.WaitFor(t, "the stopped process is reaped", func() bool { return !testutil.Alive(pid) })
}

func TestRecycling(t *testing.T) {
	cases := map[string]func(*pool.Options){
		"max_calls": func(o *pool.Options) { o.Recycle.MaxCalls = 3 },
		"max_age": func(o *pool.Options) {
			o.Recycle.MaxAge, o.Recycle.MaxAgeJitter = 150*time.Millisecond, 50*time.Millisecond
		},
		"max_idle":      func(o *pool.Options) { o.Recycle.MaxIdle = 100 * time.Millisecond },
		"max_rss":       func(o *pool.Options) { o.Recycle.MaxRSSBytes, o.HealthInterval = 1, 20*time.Millisecond },
		"overflow_idle": func(o *pool.Options) { o.MaxOverflow, o.OverflowIdle, o.WorkerConcurrency = 1, 100*time.Millisecond, 1 },
	}
	for reason, set := range cases {
		t.Run(reason, func(t *testing.T) {
			opts := pythonOptions(t, 1)
			set(&opts)
			p := newPool(t, opts)
			first := p.Workers()[0].Worker().PID
			if reason == "overflow_idle" {
				var wg sync.WaitGroup
				for range 2 {
					wg.Add(1)
					go func() { defer wg.Done(); assert.NoError(t, sleepCall(t.Context(), p, 0.3)) }()
				}
				testutil.WaitFor(t, "an overflow worker starts", func() bool { return p.Stats().Workers == 2 })
				wg.Wait()
				testutil.WaitFor(t, "the idle overflow worker is reaped", func() bool {
					return p.Stats().Recycled["overflow_idle"] == 1 && p.Stats().Workers == 1
				})
				return
			}
			for range 4 {
				_, err := p.Call(t.Context(), adapter.Request{Command: "ping"})
				require.NoError(t, err)
			}
			testutil.WaitFor(t, "the worker is recycled and replaced", func() bool {
				st := p.Stats()
				return st.Recycled[reason] >= 1 && st.Ready == 1 && p.Workers()[0].Worker().PID != first
			})
			testutil.WaitFor(t, "the old process is gone", func() bool { return !testutil.Alive(first) })
		})
	}
}

func TestRecyclingDrainsFirst(t *testing.T) {
	opts := pythonOptions(t, 1)
	opts.Recycle.MaxAge = 100 * time.Millisecond
	p := newPool(t, opts)
	first := p.Workers()[0].Worker().PID
	require.NoError(t, sleepCall(t.Context(), p, 0.4), "a call outliving the worker's age still finishes")
	testutil.WaitFor(t, "replaced after the call", func() bool {
		ws := p.Workers()
		return len(ws) == 1 && ws[0].Worker().PID != first
	})
}

func TestAffinity(t *testing.T) {
	served := func(p *pool.Pool, session string) string {
		resp, err := p.Call(t.Context(), adapter.Request{Command: "ping", Session: session})
		require.NoError(t, err)
		return resp.Worker
	}
	t.Run("prefer", func(t *testing.T) {
		p := newPool(t, pool.Options{Size: 3, Logger: quiet, Worker: port.Options{Handler: memoryHandler}})
		for _, s := range []string{"a", "b", "c"} {
			first := served(p, s)
			for range 5 {
				assert.Equal(t, first, served(p, s), "session %s goes back to its worker", s)
			}
		}
	})
	t.Run("none", func(t *testing.T) {
		opts := pythonOptions(t, 3)
		opts.Affinity, opts.WorkerConcurrency = adapter.AffinityNone, 1
		p := newPool(t, opts)
		first := served(p, "a")
		assert.Equal(t, first, served(p, "a"), "sequential calls stay on the warm worker")
		// Overlapping calls of one session spread over the least loaded.
		var mu sync.Mutex
		seen := map[string]bool{}
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := p.Call(t.Context(), adapter.Request{Command: "sleep", Session: "a", Args: json.RawMessage(`{"seconds":0.2}`)})
				assert.NoError(t, err)
				mu.Lock()
				seen[resp.Worker] = true
				mu.Unlock()
			}()
		}
		wg.Wait()
		assert.Len(t, seen, 3, "no affinity: the session's overlapping calls use every worker")
	})
	t.Run("strict", func(t *testing.T) {
		opts := pythonOptions(t, 2)
		opts.Affinity, opts.WorkerConcurrency = adapter.AffinityStrict, 1
		opts.Recycle.MaxCalls = 4
		p := newPool(t, opts)
		w := served(p, "s")
		done := make(chan error)
		go func() {
			_, err := p.Call(t.Context(), adapter.Request{Command: "sleep", Session: "s", Args: json.RawMessage(`{"seconds":0.2}`)})
			done <- err
		}()
		testutil.WaitFor(t, "the session's worker is busy", func() bool { return p.Stats().InFlight == 1 })
		assert.Equal(t, w, served(p, "s"), "strict waits for the busy worker rather than use the idle one")
		require.NoError(t, <-done)
		// The fourth call retires the worker: the session is told.
		assert.Equal(t, w, served(p, "s"))
		_, err := p.Call(t.Context(), adapter.Request{Command: "ping", Session: "s"})
		assert.ErrorIs(t, err, pool.ErrSessionWorkerGone)
		assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err))
		assert.NotEqual(t, w, served(p, "s"), "then binds anew")
	})
}

func TestMaxQueue(t *testing.T) {
	opts := pythonOptions(t, 1)
	opts.WorkerConcurrency, opts.MaxQueue = 1, 2
	p := newPool(t, opts)
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- sleepCall(t.Context(), p, 0.3) }()
	}
	testutil.WaitFor(t, "one in flight, two queued", func() bool { st := p.Stats(); return st.InFlight == 1 && st.Waiting == 2 })
	_, err := p.Call(t.Context(), adapter.Request{Command: "ping"})
	assert.ErrorIs(t, err, pool.ErrQueueFull, "refused at once")
	assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err))
	for range 3 {
		assert.NoError(t, <-errs)
	}
}

func TestCancelledWaiterLosesNothing(t *testing.T) {
	opts := pythonOptions(t, 1)
	opts.WorkerConcurrency = 1
	p := newPool(t, opts)
	busy := make(chan error)
	go func() { busy <- sleepCall(t.Context(), p, 0.3) }()
	testutil.WaitFor(t, "busy", func() bool { return p.Stats().InFlight == 1 })
	ctx, cancel := context.WithCancel(t.Context())
	gaveUp := make(chan error)
	go func() { gaveUp <- sleepCall(ctx, p, 0.1) }()
	testutil.WaitFor(t, "queued", func() bool { return p.Stats().Waiting == 1 })
	cancel()
	assert.Equal(t, adapter.CodeCanceled, adapter.CodeOf(<-gaveUp))
	assert.Zero(t, p.Stats().Waiting, "the waiter left the queue")
	require.NoError(t, <-busy)
	_, err := p.Call(t.Context(), adapter.Request{Command: "ping"})
	assert.NoError(t, err, "its slot was not lost")
	assert.Zero(t, p.Stats().InFlight)
}

// TestStress runs random operations from 2×GOMAXPROCS goroutines for
// STRESS_DURATION (default 1 s).
func TestStress(t *testing.T) {
	duration := time.Second
	if d, err := time.ParseDuration(os.Getenv("STRESS_DURATION")); err == nil {
		duration = d
	}
	opts := pythonOptions(t, 2)
	opts.MaxOverflow, opts.OverflowIdle = 1, 50*time.Millisecond
	opts.Restart = port.RestartPolicy{Min: time.Millisecond, MaxRestarts: 10000}
	p := newPool(t, opts)
	c := dspgo.NewClient(p)
	prog, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{ID: "p", Signature: dspgo.MustParseSignature("q, n: int -> a, score: float")})
	require.NoError(t, err)
	deadline := time.Now().Add(duration)
	var ops atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 * runtimeProcs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			s := c.Session("s" + strconv.Itoa(g%3))
			for i := 0; time.Now().Before(deadline); i++ {
				ops.Add(1)
				ctx, cancel := context.WithTimeout(t.Context(), time.Duration(1+r.IntN(200))*time.Millisecond)
				var err error
				switch r.IntN(10) {
				case 0:
					err = p.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy"}`)})
				case 1:
					_, err = p.Call(ctx, adapter.Request{Command: "ping"})
				case 2:
					_ = p.Stats()
				case 3:
					// None may be ready: a broadcast cut by its deadline
					// recycles the workers that may have applied it.
					if ws := p.Workers(); len(ws) > 0 && r.IntN(20) == 0 {
						ws[r.IntN(len(ws))].Kill()
					}
				case 4:
					id := fmt.Sprint("s", g, "-", i)
					if _, err = s.CreateProgram(ctx, dspgo.ProgramSpec{ID: id, Signature: dspgo.MustParseSignature("x -> y")}); err == nil {
						err = s.DeleteProgram(ctx, id)
					}
				default:
					_, err = c.Execute(ctx, prog.ID, map[string]any{"q": "x", "n": i})
				}
				cancel()
				switch adapter.CodeOf(err) {
				case adapter.CodeOK, adapter.CodeDeadlineExceeded, adapter.CodeCanceled, adapter.CodeUnavailable, adapter.CodeResourceExhausted:
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("stress: %d operations in %v", ops.Load(), duration)
	testutil.WaitFor(t, "settles", func() bool { st := p.Stats(); return st.InFlight == 0 && st.Waiting == 0 && st.Ready >= 2 })
}
