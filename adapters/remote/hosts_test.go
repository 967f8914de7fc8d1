package remote_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
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
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/conformance"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/internal/wait"
	"github.com/dspgo/dspgo/protocol"
)

// The test binary doubles as a worker host: started with hostEnv set to
// a NATS URL, it serves a pool of in-memory workers until SIGTERM, as
// "dspgo workers" does with Python workers.
const (
	hostEnv   = "DSPGO_REMOTE_TEST_HOST"
	hostIDEnv = "DSPGO_REMOTE_TEST_HOST_ID"
	beatEnv   = "DSPGO_REMOTE_TEST_BEAT_MS"
	userEnv   = "DSPGO_REMOTE_TEST_USER"     // the host's NATS user, if any
	passEnv   = "DSPGO_REMOTE_TEST_PASSWORD" // and its password
)

func hostMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	nc, err := remote.Dial(ctx, remote.DialOptions{URL: os.Getenv(hostEnv), Name: "test-host", User: os.Getenv(userEnv), Password: os.Getenv(passEnv),
		AllowNoAuth: os.Getenv(userEnv) == ""})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	p, err := pool.New(ctx, pool.Options{Size: 2, WorkerConcurrency: 8, Logger: testutil.Discard,
		Worker: port.Options{Handler: func() protocol.Handler { return mock.NewHandler(mock.HandlerOptions{}) }}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer p.Close(context.Background())
	beat, _ := strconv.Atoi(os.Getenv(beatEnv))
	h, err := remote.Serve(ctx, nc, p, remote.HostOptions{ID: os.Getenv(hostIDEnv), Heartbeat: time.Duration(beat) * time.Millisecond,
		Stats: func() any { return p.Stats() }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("serving") // the parent waits for this line
	<-ctx.Done()
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Close(closeCtx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// hostProc is a worker host in a process of its own.
type hostProc struct {
	id  string
	cmd *exec.Cmd
	out chan error // the process's end
}

// startHost starts a worker host process and waits until it serves;
// env adds variables to its environment.
func startHost(t testing.TB, url, id string, env ...string) *hostProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), hostEnv+"="+url, hostIDEnv+"="+id, beatEnv+"=100"), env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	h := &hostProc{id: id, cmd: cmd, out: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 64)
		n, _ := stdout.Read(buf)
		if string(buf[:n]) == "serving\n" {
			close(ready)
		}
		for {
			if _, err := stdout.Read(buf); err != nil {
				break
			}
		}
		h.out <- cmd.Wait()
		close(h.out)
	}()
	t.Cleanup(func() { h.stop(t) })
	select {
	case <-ready:
	case err := <-h.out:
		t.Fatalf("host %s exited before serving: %v", id, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("host %s did not start serving within 30s", id)
	}
	return h
}

// stop drains the host with SIGTERM and waits for its clean exit.
func (h *hostProc) stop(t testing.TB) {
	if h.cmd.ProcessState != nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	err, ok := <-h.out
	if ok {
		require.NoError(t, err, "host %s exits 0 after draining", h.id)
	}
}

// kill SIGKILLs the host and waits until it is gone.
func (h *hostProc) kill() {
	_ = h.cmd.Process.Kill()
	<-h.out
}

// hostSet is a set of host processes on one server that tests can kill
// and replace.
type hostSet struct {
	t     testing.TB
	url   string
	mu    sync.Mutex
	hosts []*hostProc
	n     int
	env   []string // each host's extra variables
}

func newHostSet(t testing.TB, url string, n int, env ...string) *hostSet {
	s := &hostSet{t: t, url: url, env: env}
	for range n {
		s.add()
	}
	return s
}

func (s *hostSet) add() *hostProc {
	s.mu.Lock()
	s.n++
	id := fmt.Sprintf("host-%d", s.n)
	s.mu.Unlock()
	h := startHost(s.t, s.url, id, s.env...)
	s.mu.Lock()
	s.hosts = append(s.hosts, h)
	s.mu.Unlock()
	return h
}

// killOne SIGKILLs the oldest live host and returns it.
func (s *hostSet) killOne() *hostProc {
	s.mu.Lock()
	h := s.hosts[0]
	s.hosts = s.hosts[1:]
	s.mu.Unlock()
	h.kill()
	return h
}

func TestConformanceTwoHostProcesses(t *testing.T) {
	testutil.VerifyNoChildren(t)
	srv := startServer(t)
	hosts := newHostSet(t, srv.ClientURL(), 2)
	conformance.Run(t, conformance.Harness{
		Name: "remote/2-hosts",
		New: func(ctx context.Context) (adapter.Adapter, error) {
			nc, err := remote.Dial(ctx, remote.DialOptions{URL: srv.ClientURL(), AllowNoAuth: true})
			if err != nil {
				return nil, err
			}
			a, err := remote.New(ctx, remote.Options{Conn: nc, Heartbeat: 100 * time.Millisecond, OnClose: nc.Close})
			if err != nil {
				nc.Close()
				return nil, err
			}
			// Every case starts from the default LM, on every host.
			if err := a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy"}`)}); err != nil {
				_ = a.Close(ctx)
				return nil, err
			}
			return a, nil
		},
		Faults: &conformance.Faults{
			Crash:   func(context.Context, adapter.Adapter) error { hosts.killOne(); return nil },
			Recover: func(context.Context, adapter.Adapter) error { hosts.add(); return nil },
		},
	})
}

// TestHostKilledUnderLoad SIGKILLs one of two hosts while 16 callers keep
// executing: every call returns (none waits for its deadline); the only
// failures are CodeUnavailable, at most one per caller (its call in
// flight on the dead host); every other call succeeds on the survivor.
func TestHostKilledUnderLoad(t *testing.T) {
	testutil.VerifyNoChildren(t)
	srv := startServer(t)
	hosts := newHostSet(t, srv.ClientURL(), 2)
	a := newRemote(t, srv.ClientURL(), remote.Options{})
	ctx := ctxT(t, 60*time.Second)
	c, p := dummyProgram(t, ctx, a, 20)

	const callers, perCaller = 16, 40
	var served [2]atomic.Int64 // calls that succeeded before and after the kill
	var killed atomic.Bool
	type failure struct {
		caller int
		err    error
	}
	failures := make(chan failure, callers*perCaller)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perCaller {
				callCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
				after := killed.Load()
				_, err := c.Execute(callCtx, p.ID, map[string]any{"q": fmt.Sprint(i, "/", j)})
				cancel()
				switch {
				case err != nil:
					failures <- failure{i, err}
				case after:
					served[1].Add(1)
				default:
					served[0].Add(1)
				}
			}
		}()
	}
	require.True(t, wait.Until(ctx, func() bool { return served[0].Load() >= 64 }))
	hosts.killOne()
	killed.Store(true)
	wg.Wait()
	close(failures)

	perCallerFailures := map[int]int{}
	for f := range failures {
		assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(f.err), "caller %d: %v", f.caller, f.err)
		perCallerFailures[f.caller]++
	}
	for caller, n := range perCallerFailures {
		assert.LessOrEqual(t, n, 1, "caller %d lost more than its call in flight", caller)
	}
	assert.Equal(t, int64(callers*perCaller), served[0].Load()+served[1].Load()+int64(len(perCallerFailures)), "every call returned")
	assert.Positive(t, served[1].Load(), "the survivor served the calls after the kill")
	t.Logf("before the kill: %d served; after: %d served, %d CodeUnavailable", served[0].Load(), served[1].Load(), len(perCallerFailures))
}

// TestLateHostServesEarlierState: a host that joins after a program was
// created and the LM configured serves both, from the shared state,
// though the host that took them is gone.
func TestLateHostServesEarlierState(t *testing.T) {
	testutil.VerifyNoChildren(t)
	srv := startServer(t)
	hosts := newHostSet(t, srv.ClientURL(), 1)
	a := newRemote(t, srv.ClientURL(), remote.Options{})
	ctx := ctxT(t, 60*time.Second)
	require.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"configured-before-join"}`)}))
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
	require.NoError(t, err)
	want, err := c.Execute(ctx, p.ID, map[string]any{"q": "x"})
	require.NoError(t, err)

	late := hosts.add()
	first := hosts.killOne()
	require.NotEqual(t, first.id, late.id)

	// Name the spec by hash only, as a client that never sent it to the
	// late host would: the host finds it in the shared state.
	args, _ := json.Marshal(map[string]any{"program_id": p.ID, "spec_hash": p.Hash, "inputs": map[string]any{"q": "x"}})
	resp, err := a.Call(ctx, adapter.Request{Command: "execute_program", Args: args})
	require.NoError(t, err)
	assert.Equal(t, late.id, host(resp.Worker))
	var result struct{ Outputs map[string]any }
	require.NoError(t, json.Unmarshal(resp.Result, &result))
	assert.Equal(t, want, result.Outputs)

	resp, err = a.Call(ctx, adapter.Request{Command: "get_stats"})
	require.NoError(t, err)
	var stats struct{ LM struct{ Model string } }
	require.NoError(t, json.Unmarshal(resp.Result, &stats))
	assert.Equal(t, "configured-before-join", stats.LM.Model, "the late host replayed the LM configuration")
}

// TestMicroEndpointsListHosts: "$SRV.PING.dspgo" reaches every host and
// "$SRV.STATS.dspgo" gives each host's counters and its pool's stats;
// the adapter's Hosts lists them from their announcements.
func TestMicroEndpointsListHosts(t *testing.T) {
	testutil.VerifyNoChildren(t)
	srv := startServer(t)
	newHostSet(t, srv.ClientURL(), 2)
	nc := connect(t, srv.ClientURL())
	a := newRemote(t, srv.ClientURL(), remote.Options{})
	ctx := ctxT(t, 10*time.Second)
	_, err := a.Call(ctx, adapter.Request{Command: "ping"})
	require.NoError(t, err)

	gather := func(subject string, n int) []json.RawMessage {
		inbox := nc.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		require.NoError(t, err)
		defer sub.Unsubscribe()
		require.NoError(t, nc.PublishRequest(subject, inbox, nil))
		var out []json.RawMessage
		for range n {
			m, err := sub.NextMsgWithContext(ctx)
			require.NoError(t, err)
			out = append(out, m.Data)
		}
		return out
	}
	ids := map[string]bool{}
	for _, raw := range gather("$SRV.PING.dspgo", 2) {
		var ping struct {
			Name     string
			Metadata map[string]string
		}
		require.NoError(t, json.Unmarshal(raw, &ping))
		assert.Equal(t, "dspgo", ping.Name)
		ids[ping.Metadata["host"]] = true
	}
	assert.Equal(t, map[string]bool{"host-1": true, "host-2": true}, ids)
	for _, raw := range gather("$SRV.STATS.dspgo", 2) {
		var stats struct {
			Endpoints []struct {
				Name string
				Data struct {
					Host    adapter.Stats
					Backend pool.Stats
				}
			}
		}
		require.NoError(t, json.Unmarshal(raw, &stats))
		require.NotEmpty(t, stats.Endpoints)
		assert.Equal(t, 2, stats.Endpoints[0].Data.Backend.Size, "the pool's stats: %s", raw)
		assert.Equal(t, 2, stats.Endpoints[0].Data.Backend.Workers)
	}
	require.True(t, wait.Until(ctx, func() bool { return len(a.Hosts()) == 2 }))
	assert.Equal(t, 4, a.Stats().Workers, "two hosts of two workers")
}
