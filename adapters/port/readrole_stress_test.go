package port_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/protocol"
)

// stressHandler is the in-memory worker of the reading role's stress
// test: echo (after a delay, padded to a size, so that replies arrive in
// pieces), stream (n chunks), tool (one call to the host's tool "same"),
// and deaf, which answers when deaf closes, whatever the request's
// context says (as a worker stuck in C code).
type stressHandler struct{ deaf <-chan struct{} }

type stressArgs struct {
	V     string `json:"v"`
	Pad   int    `json:"pad"`
	Delay int    `json:"delay_us"`
	N     int    `json:"n"`
}

func (h stressHandler) Handle(ctx context.Context, req protocol.Request) protocol.Response {
	switch req.Command {
	case protocol.CmdPing:
		return protocol.Response{ID: req.ID, Success: true,
			Result: json.RawMessage(`{"protocol_version":1,"worker_id":"stress","features":["stream","call"]}`)}
	case "deaf":
		<-h.deaf
		return protocol.Response{ID: req.ID, Success: true, Result: json.RawMessage(`"deaf"`)}
	}
	var args stressArgs
	_ = json.Unmarshal(req.Args, &args)
	fail := func(err error) protocol.Response {
		return protocol.Response{ID: req.ID, Error: &protocol.ErrorBody{Code: "canceled", Message: err.Error()}}
	}
	select {
	case <-time.After(time.Duration(args.Delay) * time.Microsecond):
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	var result any
	switch req.Command {
	case "echo":
		result = map[string]string{"v": args.V, "pad": strings.Repeat("x", args.Pad)}
	case "stream":
		emit := protocol.EmitFrom(ctx)
		for i := range args.N {
			if err := emit(json.RawMessage(fmt.Sprintf(`"%s/%d"`, args.V, i))); err != nil {
				return fail(err)
			}
		}
		result = map[string]string{"v": args.V}
	case "tool":
		out, err := protocol.ToolCallerFrom(ctx)(ctx, "same", req.Args)
		if err != nil {
			return fail(err)
		}
		result = out
	}
	raw, _ := json.Marshal(result)
	return protocol.Response{ID: req.ID, Success: true, Result: raw}
}

// sameTool answers the worker's call with its arguments.
type sameTool struct{}

func (sameTool) CallTool(_ context.Context, _ string, args json.RawMessage) (json.RawMessage, error) {
	return args, nil
}

// stressCall runs one random call (echo small or large, a stream read whole
// or left early, a tool call) and checks that what it got is its own.
func stressCall(ctx context.Context, a *port.Adapter, rnd *rand.Rand, v string) error {
	args := stressArgs{V: v, Delay: rnd.IntN(300)}
	if rnd.IntN(4) == 0 {
		args.Pad = 20_000 + rnd.IntN(200_000) // in pieces through the pipe
	}
	switch rnd.IntN(4) {
	case 0:
		args.N = 1 + rnd.IntN(40)
		raw, _ := json.Marshal(args)
		stopAt := -1
		if rnd.IntN(3) == 0 {
			stopAt = rnd.IntN(args.N)
		}
		seq := 0
		for ck, err := range a.Stream(ctx, adapter.Request{Command: "stream", Args: raw}) {
			switch {
			case err != nil:
				return err
			case ck.Response != nil:
				if seq != args.N || string(ck.Response.Result) != fmt.Sprintf(`{"v":%q}`, v) {
					return fmt.Errorf("stream %s: %d chunks and %s", v, seq, ck.Response.Result)
				}
				return nil
			case string(ck.Data) != fmt.Sprintf(`"%s/%d"`, v, seq):
				return fmt.Errorf("stream %s: chunk %d is %s", v, seq, ck.Data)
			}
			if seq == stopAt {
				return nil // leaves the stream early
			}
			seq++
		}
		return fmt.Errorf("stream %s ended with no result", v)
	case 1:
		raw, _ := json.Marshal(args)
		resp, err := a.Call(ctx, adapter.Request{Command: "tool", Args: raw, Tools: sameTool{}})
		if err == nil && string(resp.Result) != string(raw) {
			return fmt.Errorf("tool %s: got %s", v, resp.Result)
		}
		return err
	}
	raw, _ := json.Marshal(args)
	resp, err := a.Call(ctx, adapter.Request{Command: "echo", Args: raw})
	if err != nil {
		return err
	}
	var got map[string]string
	if jerr := json.Unmarshal(resp.Result, &got); jerr != nil || got["v"] != v || len(got["pad"]) != args.Pad {
		return fmt.Errorf("echo %s: got a reply of %d bytes for %q", v, len(resp.Result), got["v"])
	}
	return nil
}

// closeLogged closes a and fails t unless it closes cleanly. A Close that
// takes over 5 s (the in-memory worker's handlers have not all returned)
// logs every goroutine's stack first: the worker runs in this process, so
// the dump shows what it waits for. (Under -race on a loaded machine, a
// rare run has needed the SIGKILL after the stop grace; none of the runs
// on an idle machine has.)
func closeLogged(t *testing.T, a *port.Adapter) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- a.Close(context.Background()) }()
	select {
	case err := <-done:
		require.NoError(t, err)
		return
	case <-time.After(5 * time.Second):
	}
	buf := make([]byte, 8<<20)
	t.Logf("Close has taken 5 s; the goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	require.NoError(t, <-done)
}

// openFDs counts this process's open descriptors.
func openFDs() int {
	entries, _ := os.ReadDir("/proc/self/fd")
	return len(entries)
}

// TestReadingRoleStress: callers read their own replies in turns while
// their contexts end at random moments (deadlines and cancellations of a
// few hundred microseconds, as long as the calls themselves) and the
// worker is killed under them. Every call returns, and promptly once its
// context has ended; every reply a caller gets is its own (late replies
// are dropped by id); calls fail only with their context's code or, as
// the worker dies, CodeUnavailable; streams lose no chunk; no goroutine or
// descriptor is left. Each round ends with a quiet phase: one caller at a
// time, holding the role alone, waits for a worker that never answers, so
// only its context's end can end its wait. roleStressRounds rounds (more
// with -tags chaos).
func TestReadingRoleStress(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	fds := openFDs()
	const callers, calls = 16, 40
	var total, succeeded, kills atomic.Int64
	var worst atomic.Int64 // the longest return after a context ended, ns
	codes := sync.Map{}
	record := func(ended, returned int64) {
		if ended > 0 && returned-ended > worst.Load() {
			worst.Store(returned - ended)
		}
	}
	for round := range roleStressRounds {
		roundOver := make(chan struct{})
		a, err := port.New(t.Context(), port.Options{Logger: quiet, MaxConcurrency: 2 * callers,
			Handler:     func() protocol.Handler { return stressHandler{deaf: roundOver} },
			Restart:     port.RestartPolicy{Min: time.Microsecond, Max: time.Millisecond, MaxRestarts: 1 << 20},
			CallTimeout: time.Minute,
			// The in-memory worker stops once its handlers have; under -race
			// on a loaded machine that once took more than the default 2 s.
			StopGrace: 10 * time.Second})
		require.NoError(t, err)
		stop := make(chan struct{})
		killed := make(chan struct{})
		go func() { // the killer
			defer close(killed)
			rnd := rand.New(rand.NewPCG(uint64(round), 1))
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(2+rnd.IntN(20)) * time.Millisecond):
					a.Kill()
					kills.Add(1)
				}
			}
		}()
		var wg sync.WaitGroup
		for g := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rnd := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				for i := range calls {
					var ended atomic.Int64 // when the call's context ended, ns since the epoch
					d := time.Duration(rnd.IntN(1500)) * time.Microsecond
					ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
					var timer *time.Timer
					switch rnd.IntN(3) {
					case 0:
						cancel()
						ctx, cancel = context.WithTimeout(t.Context(), d)
						ended.Store(time.Now().Add(d).UnixNano())
					case 1:
						timer = time.AfterFunc(d, func() { ended.Store(time.Now().UnixNano()); cancel() })
					}
					err := stressCall(ctx, a, rnd, fmt.Sprintf("%d/%d/%d", round, g, i))
					returned := time.Now().UnixNano()
					if timer != nil {
						timer.Stop()
					}
					cancel()
					total.Add(1)
					code := adapter.CodeOf(err)
					switch {
					case err == nil:
						succeeded.Add(1)
					case code == adapter.CodeCanceled || code == adapter.CodeDeadlineExceeded:
						record(ended.Load(), returned)
					case code == adapter.CodeUnavailable:
					default:
						t.Errorf("call %d/%d/%d: %v", round, g, i, err)
					}
					n, _ := codes.LoadOrStore(code.String(), new(atomic.Int64))
					n.(*atomic.Int64).Add(1)
				}
			}()
		}
		wg.Wait()
		close(stop)
		<-killed

		rnd := rand.New(rand.NewPCG(uint64(round), 2))
		for range 4 { // the quiet phase
			d := time.Duration(rnd.IntN(3000)) * time.Microsecond
			start := time.Now()
			ctx, cancel := context.WithTimeout(t.Context(), d)
			_, err := a.Call(ctx, adapter.Request{Command: "deaf"})
			record(start.Add(d).UnixNano(), time.Now().UnixNano())
			cancel()
			total.Add(1)
			assert.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err), "%v", err)
		}
		close(roundOver)
		closeLogged(t, a)
	}
	var summary []string
	codes.Range(func(k, v any) bool {
		summary = append(summary, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	t.Logf("%d calls, %d succeeded, %d kills; outcomes %v; longest return after a context ended: %v",
		total.Load(), succeeded.Load(), kills.Load(), summary, time.Duration(worst.Load()))
	assert.Positive(t, succeeded.Load())
	// At once, but for the scheduler: a loaded machine (-race, make test's
	// packages side by side) once took 2.75 s. A call that waited on
	// anything but its context would take the 30 s of its fallback
	// deadline, or the minute of CallTimeout.
	assert.Less(t, time.Duration(worst.Load()), 10*time.Second, "a call whose context ended returns at once")
	assert.Equal(t, fds, openFDs(), "no descriptor left")
}
