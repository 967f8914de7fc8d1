package pool_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/internal/wait"
	"github.com/dspgo/dspgo/protocol"
)

// hungAfter bounds every chaos call: one that takes longer counts as hung.
const hungAfter = 30 * time.Second

// tally counts one scenario's outcomes.
type tally struct {
	name      string
	attempted atomic.Int64
	succeeded atomic.Int64
	hung      atomic.Int64
	killed    atomic.Int64
	mu        sync.Mutex
	failed    map[string]int
	restarts  uint64
	leftProcs int
	leftGo    int
	leftFDs   int
}

// call runs one call under the hang bound and counts its outcome.
func (ty *tally) call(f func(ctx context.Context) error) {
	ty.attempted.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), hungAfter)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	switch {
	case err == nil:
		ty.succeeded.Add(1)
	case time.Since(start) >= hungAfter:
		ty.hung.Add(1)
	default:
		ty.mu.Lock()
		if ty.failed == nil {
			ty.failed = map[string]int{}
		}
		ty.failed[adapter.CodeOf(err).String()]++
		ty.mu.Unlock()
	}
}

// assertFailedOnly asserts that some calls succeeded and that every failure
// has one of the codes allowed.
func (ty *tally) assertFailedOnly(t *testing.T, why string, allowed ...string) {
	t.Helper()
	failures := ty.failures()
	ty.mu.Lock()
	defer ty.mu.Unlock()
	for code := range ty.failed {
		assert.Contains(t, allowed, code, "%s: %s", why, failures)
	}
	assert.Positive(t, ty.succeeded.Load())
}

func (ty *tally) failures() string {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	var parts []string
	for code, n := range ty.failed {
		parts = append(parts, fmt.Sprintf("%s=%d", code, n))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

var chaosReport struct {
	sync.Mutex
	rows []*tally
}

func openFDs() int {
	entries, _ := os.ReadDir("/proc/self/fd")
	return len(entries)
}

// scenario runs one chaos scenario and checks that it left nothing behind:
// no hung call, no process, no goroutine, no file descriptor.
func scenario(t *testing.T, name string, run func(t *testing.T, ty *tally)) {
	t.Run(name, func(t *testing.T) {
		ty := &tally{name: name}
		goroutines := goleak.IgnoreCurrent()
		fds := openFDs()
		run(t, ty)
		// The scenario's leftovers are counted, not waited for forever.
		settle, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wait.Until(settle, func() bool { return len(testutil.Children()) == 0 })
		ty.leftProcs = len(testutil.Children())
		if err := goleak.Find(goroutines); err != nil {
			ty.leftGo = strings.Count(err.Error(), "Goroutine ")
			t.Errorf("goroutines left: %v", err)
		}
		wait.Until(settle, func() bool { return openFDs() <= fds })
		ty.leftFDs = max(0, openFDs()-fds)
		assert.Zero(t, ty.hung.Load(), "hung calls")
		assert.Zero(t, ty.leftProcs, "processes left: %v", testutil.Children())
		assert.Zero(t, ty.leftFDs, "file descriptors left")
		chaosReport.Lock()
		chaosReport.rows = append(chaosReport.rows, ty)
		chaosReport.Unlock()
	})
}

func TestChaos(t *testing.T) {
	testutil.VerifyNoChildren(t)
	python := testutil.Python(t)
	workerOpts := func() port.Options {
		return port.Options{Python: python, WorkerDir: testutil.PythonDir(), Diagnostics: true, Logger: quiet,
			Restart: port.RestartPolicy{Min: time.Millisecond, Max: 20 * time.Millisecond, MaxRestarts: 1 << 20}}
	}

	scenario(t, "crash storm", func(t *testing.T, ty *tally) {
		p, err := pool.New(t.Context(), pool.Options{Size: 4, WorkerConcurrency: 2, Logger: quiet, Worker: workerOpts()})
		require.NoError(t, err)
		c := dspgo.NewClient(p)
		prog, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
		require.NoError(t, err)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					ty.call(func(ctx context.Context) error {
						_, err := c.Execute(ctx, prog.ID, map[string]any{"q": fmt.Sprint(i)})
						return err
					})
				}
			}()
		}
		killEvery(p, ty, 20*time.Millisecond) // the storm's pace
		close(stop)
		wg.Wait()
		testutil.WaitFor(t, "back to 4 ready", func() bool { return p.Stats().Ready == 4 })
		ty.restarts = p.Stats().Restarts
		require.NoError(t, p.Close(context.Background()))
	})

	scenario(t, "stderr flood and garbage on stdout", func(t *testing.T, ty *tally) {
		p, err := pool.New(t.Context(), pool.Options{Size: 2, WorkerConcurrency: 2, Logger: quiet, Worker: workerOpts()})
		require.NoError(t, err)
		var wg sync.WaitGroup
		end := time.Now().Add(chaosDuration)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Now().Before(end); i++ {
					req := adapter.Request{Command: "echo", Args: json.RawMessage(`{"value":1}`)}
					switch {
					case g == 0 && i%5 == 0:
						req = adapter.Request{Command: "stderr_flood", Args: json.RawMessage(`{"lines":20,"line_bytes":100000}`)}
					case g == 1 && i%50 == 0:
						req = adapter.Request{Command: "garbage", Args: json.RawMessage(`{"hex":"0000000a7b7b7b7b"}`)}
						ty.killed.Add(1)
					}
					ty.call(func(ctx context.Context) error { _, err := p.Call(ctx, req); return err })
				}
			}()
		}
		wg.Wait()
		ty.restarts = p.Stats().Restarts
		require.NoError(t, p.Close(context.Background()))
	})

	scenario(t, "worker stops reading its stdin", func(t *testing.T, ty *tally) {
		opts := workerOpts()
		opts.WriteTimeout = 200 * time.Millisecond
		a, err := port.New(t.Context(), opts)
		require.NoError(t, err)
		pid := a.Worker().PID
		require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP)) // it reads nothing more
		ty.killed.Add(1)
		big := json.RawMessage(`{"value":"` + strings.Repeat("x", 1<<20) + `"}`)
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ty.call(func(ctx context.Context) error {
					_, err := a.Call(ctx, adapter.Request{Command: "echo", Args: big})
					return err
				})
			}()
		}
		wg.Wait() // the writes hit their deadline: the worker is broken and replaced
		testutil.WaitFor(t, "a new worker", func() bool { return a.Worker().State == "ready" && a.Worker().PID != pid })
		ty.call(func(ctx context.Context) error {
			_, err := a.Call(ctx, adapter.Request{Command: "echo", Args: big})
			return err
		})
		ty.restarts = a.Worker().Restarts
		require.NoError(t, a.Close(context.Background()))
	})

	scenario(t, "frames over the limit, both ways", func(t *testing.T, ty *tally) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "bigreply.py"), []byte(
			"from dspgo_worker import command\n@command('big')\ndef big(args, ctx):\n    return 'y' * 200000\n"), 0o600))
		opts := workerOpts()
		opts.MaxFrameBytes = 64 << 10
		opts.Handlers = []string{"bigreply"}
		opts.Env = []string{"PYTHONPATH=" + testutil.PythonDir() + ":" + dir}
		a, err := port.New(t.Context(), opts)
		require.NoError(t, err)
		tooBig := json.RawMessage(`{"value":"` + strings.Repeat("y", 100<<10) + `"}`)
		fits := json.RawMessage(`{"value":"` + strings.Repeat("y", 40<<10) + `"}`)
		for i := range 60 {
			req := adapter.Request{Command: "echo", Args: fits}
			switch i % 3 {
			case 0:
				req.Args = tooBig // the host refuses to send it
			case 1:
				req = adapter.Request{Command: "big"} // the worker refuses to send its reply
			}
			ty.call(func(ctx context.Context) error { _, err := a.Call(ctx, req); return err })
		}
		assert.Zero(t, a.Worker().Restarts, "limits refuse frames; they never break the worker")
		require.NoError(t, a.Close(context.Background()))
	})

	scenario(t, "start failures of every kind", func(t *testing.T, ty *tally) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "slow.py"), []byte("import time\ntime.sleep(60)\n"), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.py"), []byte("raise ImportError('broken on purpose')\n"), 0o600))
		env := []string{"PYTHONPATH=" + testutil.PythonDir() + ":" + dir}
		cases := []port.Options{
			{Python: "/nonexistent/python3"},
			{Python: python, WorkerDir: t.TempDir()},
			{Python: python, WorkerDir: testutil.PythonDir(), Handlers: []string{"broken"}, Env: env},
			{Python: python, WorkerDir: testutil.PythonDir(), Handlers: []string{"slow"}, Env: env, StartTimeout: 200 * time.Millisecond},
			{Handler: func() protocol.Handler { return versionless{} }},
			{Python: python, WorkerDir: testutil.PythonDir(), Args: []string{"--max-concurrency", "0"}},
		}
		for _, opts := range cases {
			opts.Logger = quiet
			ty.call(func(ctx context.Context) error {
				p, err := pool.New(ctx, pool.Options{Size: 2, Logger: quiet, Worker: opts})
				if err == nil {
					_ = p.Close(context.Background())
					return fmt.Errorf("a pool started with broken workers")
				}
				return err
			})
		}
		assert.Zero(t, ty.succeeded.Load(), "every start fails, with an error")
	})

	scenario(t, "close at every stage of start", func(t *testing.T, ty *tally) {
		for i := range 20 {
			delay := time.Duration(i) * 5 * time.Millisecond
			ty.call(func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, delay)
				defer cancel()
				p, err := pool.New(ctx, pool.Options{Size: 2, Logger: quiet, Worker: workerOpts()})
				if err != nil {
					return err
				}
				return p.Close(context.Background())
			})
		}
	})

	scenario(t, fmt.Sprintf("%d worker restarts", chaosRestarts), func(t *testing.T, ty *tally) {
		a, err := port.New(t.Context(), port.Options{Logger: quiet, Restart: port.RestartPolicy{Min: time.Microsecond, Max: time.Microsecond, MaxRestarts: 1 << 20},
			Handler: func() protocol.Handler { return memoryHandler() }})
		require.NoError(t, err)
		fds := openFDs()
		for i := range chaosRestarts {
			a.Kill()
			ty.killed.Add(1)
			testutil.WaitFor(t, "restarted", func() bool { return a.Worker().Restarts == uint64(i+1) && a.Worker().State == "ready" })
			ty.call(func(ctx context.Context) error { _, err := a.Call(ctx, adapter.Request{Command: "ping"}); return err })
		}
		assert.Equal(t, fds, openFDs(), "file descriptors unchanged after %d restarts", chaosRestarts)
		ty.restarts = a.Worker().Restarts
		require.NoError(t, a.Close(context.Background()))
	})

	scenario(t, "python worker restarts", func(t *testing.T, ty *tally) {
		a, err := port.New(t.Context(), workerOpts())
		require.NoError(t, err)
		fds := openFDs()
		n := max(chaosRestarts/10, 5)
		for i := range n {
			a.Kill()
			ty.killed.Add(1)
			testutil.WaitFor(t, "restarted", func() bool { return a.Worker().Restarts == uint64(i+1) && a.Worker().State == "ready" })
			ty.call(func(ctx context.Context) error { _, err := a.Call(ctx, adapter.Request{Command: "ping"}); return err })
		}
		assert.Equal(t, fds, openFDs(), "file descriptors unchanged after %d restarts", n)
		ty.restarts = a.Worker().Restarts
		require.NoError(t, a.Close(context.Background()))
	})

	scenario(t, "queue flood", func(t *testing.T, ty *tally) {
		p, err := pool.New(t.Context(), pool.Options{Size: 1, WorkerConcurrency: 1, MaxQueue: 100, Logger: quiet, Worker: workerOpts()})
		require.NoError(t, err)
		busy := make(chan struct{})
		go func() {
			ty.call(func(ctx context.Context) error {
				_, err := p.Call(ctx, adapter.Request{Command: "sleep", Args: json.RawMessage(`{"seconds":2}`)})
				return err
			})
			close(busy)
		}()
		testutil.WaitFor(t, "busy", func() bool { return p.Stats().InFlight == 1 })
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var wg sync.WaitGroup
		for range chaosFlood {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ty.call(func(ctx context.Context) error { _, err := p.Call(ctx, adapter.Request{Command: "ping"}); return err })
			}()
		}
		wg.Wait()
		runtime.ReadMemStats(&after)
		<-busy
		ty.mu.Lock()
		refused := ty.failed["resource_exhausted"]
		ty.mu.Unlock()
		assert.GreaterOrEqual(t, refused, chaosFlood-100, "a full queue answers CodeResourceExhausted at once")
		grew := int64(after.HeapInuse) - int64(before.HeapInuse)
		assert.Less(t, grew, int64(64<<20), "the flood stays within its memory budget")
		require.NoError(t, p.Close(context.Background()))
	})

	scenario(t, "streams and tools in a crash storm", func(t *testing.T, ty *tally) {
		p, err := pool.New(t.Context(), pool.Options{Size: 4, WorkerConcurrency: 2, Logger: quiet, Worker: workerOpts()})
		require.NoError(t, err)
		var toolCalls atomic.Int64
		c := dspgo.NewClient(p, dspgo.WithTool("count", "Counts its calls.", nil, func(context.Context, json.RawMessage) (any, error) {
			return toolCalls.Add(1), nil
		}))
		step := dspgo.ScriptStep{Tool: "count"}
		require.NoError(t, c.ConfigureLM(t.Context(), dspgo.LMConfig{Script: []dspgo.ScriptStep{step, step}}))
		outs := make([]string, 20)
		for i := range outs {
			outs[i] = fmt.Sprintf("o%d", i)
		}
		streamed, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> " + strings.Join(outs, ", "))})
		require.NoError(t, err)
		agent, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a"), Kind: dspgo.KindReact})
		require.NoError(t, err)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					in := map[string]any{"q": fmt.Sprint(g, "/", i)}
					if g%2 == 1 {
						ty.call(func(ctx context.Context) error {
							e, err := c.ExecuteDetailed(ctx, agent.ID, in)
							if err == nil && len(e.Trajectory) != 2 {
								return fmt.Errorf("a react run lost a step: %d", len(e.Trajectory))
							}
							return err
						})
						continue
					}
					ty.call(func(ctx context.Context) error {
						text := map[string]string{}
						var final map[string]any
						for part, err := range c.ExecuteStream(ctx, streamed.ID, in) {
							if err != nil {
								return err // the end marker: an error, last
							}
							if final != nil {
								return fmt.Errorf("a part after the outputs")
							}
							if part.Outputs != nil {
								final = part.Outputs
								continue
							}
							text[part.Field] += part.Delta
						}
						if final == nil {
							return fmt.Errorf("a stream ended without its outputs or an error")
						}
						for k, v := range final {
							if text[k] != v {
								return fmt.Errorf("field %s streamed %q, the outputs say %q", k, text[k], v)
							}
						}
						return nil
					})
				}
			}()
		}
		killEvery(p, ty, 20*time.Millisecond)
		close(stop)
		wg.Wait()
		ty.assertFailedOnly(t, "streams and tools fail only as their worker dies", "unavailable")
		testutil.WaitFor(t, "back to 4 ready", func() bool { return p.Stats().Ready == 4 })
		ty.restarts = p.Stats().Restarts
		require.NoError(t, p.Close(context.Background()))
	})

	scenario(t, "reading role: cancels and kills", func(t *testing.T, ty *tally) {
		// Each caller waits for its reply by reading the worker's stream in
		// turn with the others (the port's reading role): contexts that end
		// at random moments (deadlines and cancels of up to 2 ms, as long as
		// the calls) and workers killed under them must never hand a caller
		// another's reply, keep a caller waiting once its context has ended,
		// or fail a call with anything but its context's code or, as its
		// worker dies, CodeUnavailable.
		p, err := pool.New(t.Context(), pool.Options{Size: 2, WorkerConcurrency: 8, Logger: quiet, Worker: workerOpts()})
		require.NoError(t, err)
		var worst atomic.Int64 // the longest return after a context ended, ns
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rnd := rand.New(rand.NewPCG(uint64(g), 21))
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					value := fmt.Sprintf("%d/%d", g, i)
					if rnd.IntN(4) == 0 {
						value += strings.Repeat("x", 100_000) // a reply that arrives in pieces
					}
					d := time.Duration(rnd.IntN(2000)) * time.Microsecond
					fate := rnd.IntN(3)
					ty.call(func(ctx context.Context) error {
						var ended atomic.Int64 // when ctx ended, ns since the epoch
						ctx, cancel := context.WithCancel(ctx)
						defer cancel()
						switch fate {
						case 0:
							var cancelT context.CancelFunc
							ctx, cancelT = context.WithTimeout(ctx, d)
							defer cancelT()
							ended.Store(time.Now().Add(d).UnixNano())
						case 1:
							timer := time.AfterFunc(d, func() { ended.Store(time.Now().UnixNano()); cancel() })
							defer timer.Stop()
						}
						args, _ := json.Marshal(map[string]string{"value": value})
						resp, err := p.Call(ctx, adapter.Request{Command: "echo", Args: args})
						if code := adapter.CodeOf(err); code == adapter.CodeCanceled || code == adapter.CodeDeadlineExceeded {
							if at := ended.Load(); at > 0 && time.Now().UnixNano()-at > worst.Load() {
								worst.Store(time.Now().UnixNano() - at)
							}
						}
						if want, _ := json.Marshal(value); err == nil && string(resp.Result) != string(want) {
							return fmt.Errorf("call %s got another reply: %.40s", value, resp.Result)
						}
						return err
					})
				}
			}()
		}
		killEvery(p, ty, 30*time.Millisecond)
		close(stop)
		wg.Wait()
		ty.assertFailedOnly(t, "calls fail only as their context ends or their worker dies", "canceled", "deadline_exceeded", "unavailable")
		assert.Less(t, time.Duration(worst.Load()), 2*time.Second, "a call whose context ended returns at once")
		t.Logf("longest return after a context ended: %v", time.Duration(worst.Load()))
		testutil.WaitFor(t, "back to 2 ready", func() bool { return p.Stats().Ready == 2 })
		ty.restarts = p.Stats().Restarts
		require.NoError(t, p.Close(context.Background()))
	})

	chaosReport.Lock()
	defer chaosReport.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-34s %9s %9s %-40s %4s %6s %8s %5s %5s %4s\n", "scenario", "attempted", "succeeded", "failed by code", "hung", "killed", "restarts", "procs", "gorou", "fds")
	for _, r := range chaosReport.rows {
		fmt.Fprintf(&b, "%-34s %9d %9d %-40s %4d %6d %8d %5d %5d %4d\n", r.name, r.attempted.Load(), r.succeeded.Load(), r.failures(),
			r.hung.Load(), r.killed.Load(), r.restarts, r.leftProcs, r.leftGo, r.leftFDs)
	}
	t.Log(b.String())
}

// killEvery kills one of p's workers, at random, every pace for
// chaosDuration, counting the kills in ty.
func killEvery(p *pool.Pool, ty *tally, pace time.Duration) {
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for end := time.Now().Add(chaosDuration); time.Now().Before(end); <-tick.C {
		ws := p.Workers()
		if pid := ws[rand.IntN(len(ws))].Worker().PID; pid > 0 && syscall.Kill(pid, syscall.SIGKILL) == nil {
			ty.killed.Add(1)
		}
	}
}

// versionless answers the init ping with a protocol version of 99.
type versionless struct{}

func (versionless) Handle(_ context.Context, req protocol.Request) protocol.Response {
	return protocol.Response{ID: req.ID, Success: true, Result: json.RawMessage(`{"protocol_version":99}`)}
}
