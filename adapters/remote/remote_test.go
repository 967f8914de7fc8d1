package remote_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/adapters/remote/embedded"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/internal/wait"
)

func TestMain(m *testing.M) {
	if os.Getenv(hostEnv) != "" {
		os.Exit(hostMain())
	}
	goleak.VerifyTestMain(m)
}

// startServer runs an embedded NATS server on a free port for the test.
func startServer(t testing.TB) *embedded.Server {
	t.Helper()
	s, err := embedded.Start(context.Background(), embedded.Options{Port: -1, StoreDir: t.TempDir(), NoAuth: true})
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	return s
}

// connect opens a connection closed at the end of the test.
func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := remote.Dial(context.Background(), remote.DialOptions{URL: url, Name: t.Name(), AllowNoAuth: true})
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// serveMock serves a fresh mock on a host in this process, connected to url
// (one server, or a cluster's comma-separated list), drained at the
// end of the test.
func serveMock(t testing.TB, url string, opts remote.HostOptions) (*remote.Host, *mock.Adapter) {
	t.Helper()
	m := mock.New(mock.Options{})
	nc := connect(t, url)
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 100 * time.Millisecond
	}
	h, err := remote.Serve(ctxT(t, time.Minute), nc, m, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, h.Close(context.Background()))
		require.NoError(t, m.Close(context.Background()))
	})
	return h, m
}

// newRemote opens a remote adapter closed at the end of the test.
func newRemote(t testing.TB, url string, opts remote.Options) *remote.Adapter {
	t.Helper()
	opts.Conn = connect(t, url)
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 100 * time.Millisecond
	}
	a, err := remote.New(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	return a
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dummyProgram sets every host's LM to the dummy answering after delayMs
// and creates the program "q -> a": a client over a, and the program.
func dummyProgram(t testing.TB, ctx context.Context, a *remote.Adapter, delayMs int) (*dspgo.Client, *dspgo.Program) {
	t.Helper()
	args := json.RawMessage(`{"provider":"dummy","delay_ms":` + strconv.Itoa(delayMs) + `}`)
	require.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: args}))
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
	require.NoError(t, err)
	return c, p
}

func TestRoundTripThroughOneHost(t *testing.T) {
	s := startServer(t)
	h, _ := serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1"})
	a := newRemote(t, s.ClientURL(), remote.Options{})
	ctx := ctxT(t, 10*time.Second)

	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
	require.NoError(t, err)
	out, err := c.Execute(ctx, p.ID, map[string]any{"question": "What is NATS?"})
	require.NoError(t, err)
	assert.Contains(t, out["answer"], "answer ")

	resp, err := a.Call(ctx, adapter.Request{Command: "ping"})
	require.NoError(t, err)
	assert.Contains(t, resp.Worker, h.ID())
	assert.Equal(t, uint64(2), a.Stats().Calls-1, "create, execute, ping")
	assert.Equal(t, uint64(3), h.Stats().Calls)
}

func TestNoHostIsUnavailable(t *testing.T) {
	s := startServer(t)
	a := newRemote(t, s.ClientURL(), remote.Options{})
	_, err := a.Call(ctxT(t, 5*time.Second), adapter.Request{Command: "ping"})
	require.Error(t, err)
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), "no worker host")
}

func TestDeadlineAndCancel(t *testing.T) {
	s := startServer(t)
	_, m := serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1"})
	a := newRemote(t, s.ClientURL(), remote.Options{})
	c, p := dummyProgram(t, ctxT(t, 5*time.Second), a, 60000)

	// The deadline travels with the call: the caller gets
	// CodeDeadlineExceeded, the host's call ends too.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := c.Execute(ctx, p.ID, map[string]any{"q": "x"})
	cancel()
	assert.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err), "%v", err)

	// Cancelling reaches the host once it has said it works on the call
	// (a heartbeat, seen here by a connection of the test's own; see
	// TestCancelReachesAHostNotYetKnown for a call cancelled before).
	beats := make(chan *nats.Msg, 64)
	watch := connect(t, s.ClientURL())
	_, err = watch.ChanSubscribe("_INBOX.>", beats)
	require.NoError(t, err)
	require.NoError(t, watch.Flush())
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Execute(ctx, p.ID, map[string]any{"q": "y"}); done <- err }()
	waitCtx := ctxT(t, 10*time.Second)
	for beat := false; !beat; {
		select {
		case m := <-beats:
			beat = m.Header.Get("Dspgo-Status") == "working"
		case <-waitCtx.Done():
			t.Fatal("no heartbeat")
		}
	}
	cancel()
	err = <-done
	assert.Equal(t, adapter.CodeCanceled, adapter.CodeOf(err), "%v", err)
	require.True(t, wait.Until(ctxT(t, 5*time.Second), func() bool { return inFlight(m) == 0 }), "the host's call was cancelled")
}

func inFlight(m *mock.Adapter) int {
	s, _ := adapter.StatsOf(m)
	return s.InFlight
}

func TestAffinity(t *testing.T) {
	s := startServer(t)
	h1, _ := serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1"})
	serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h2"})
	ctx := ctxT(t, 10*time.Second)

	for _, mode := range []adapter.Affinity{adapter.AffinityPrefer, adapter.AffinityStrict} {
		a := newRemote(t, s.ClientURL(), remote.Options{Affinity: mode})
		first, err := a.Call(ctx, adapter.Request{Command: "ping", Session: "s-" + string(mode)})
		require.NoError(t, err)
		for range 20 {
			resp, err := a.Call(ctx, adapter.Request{Command: "ping", Session: "s-" + string(mode)})
			require.NoError(t, err)
			assert.Equal(t, host(first.Worker), host(resp.Worker), "%s: a session stays on its host", mode)
		}
	}
	// Drain h1 in the middle: prefer moves its sessions, strict fails them.
	prefer := newRemote(t, s.ClientURL(), remote.Options{Affinity: adapter.AffinityPrefer})
	strict := newRemote(t, s.ClientURL(), remote.Options{Affinity: adapter.AffinityStrict})
	var onH1 []string
	for i := 0; len(onH1) < 2 && i < 200; i++ {
		sess := "t-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		r1, err := prefer.Call(ctx, adapter.Request{Command: "ping", Session: sess})
		require.NoError(t, err)
		r2, err := strict.Call(ctx, adapter.Request{Command: "ping", Session: sess})
		require.NoError(t, err)
		if host(r1.Worker) == h1.ID() && host(r2.Worker) == h1.ID() {
			onH1 = append(onH1, sess)
		}
	}
	require.Len(t, onH1, 2)
	require.NoError(t, h1.Close(ctx))
	resp, err := prefer.Call(ctx, adapter.Request{Command: "ping", Session: onH1[0]})
	require.NoError(t, err)
	assert.Equal(t, "h2", host(resp.Worker))
	_, err = strict.Call(ctx, adapter.Request{Command: "ping", Session: onH1[0]})
	require.Error(t, err)
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), "gone")
}

func host(worker string) string {
	for i := range len(worker) {
		if worker[i] == '/' {
			return worker[:i]
		}
	}
	return worker
}

func TestDrainFinishesCallsInFlight(t *testing.T) {
	s := startServer(t)
	h, _ := serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1"})
	a := newRemote(t, s.ClientURL(), remote.Options{})
	ctx := ctxT(t, 10*time.Second)
	c, p := dummyProgram(t, ctx, a, 300)

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Execute(ctx, p.ID, map[string]any{"q": string(rune('a' + i))})
			errs <- err
		}()
	}
	require.True(t, wait.Until(ctx, func() bool { return h.Stats().InFlight == 4 }))
	require.NoError(t, h.Close(ctx))
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err, "a call in flight when the host drains is finished")
	}
	_, err := a.Call(ctx, adapter.Request{Command: "ping"})
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err), "after the drain, the host takes nothing")
}

func TestLateReplyIsDropped(t *testing.T) {
	s := startServer(t)
	serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1"})
	a := newRemote(t, s.ClientURL(), remote.Options{})
	ctx := ctxT(t, 10*time.Second)
	c, p := dummyProgram(t, ctx, a, 150)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err := c.Execute(short, p.ID, map[string]any{"q": "slow"})
	cancel()
	require.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err))
	// The next caller gets its own answer, never the late one.
	ref := mock.New(mock.Options{})
	defer ref.Close(ctx)
	rc := dspgo.NewClient(ref)
	rp, err := rc.CreateProgram(ctx, dspgo.ProgramSpec{ID: p.ID, Signature: p.Spec.Signature})
	require.NoError(t, err)
	for _, q := range []string{"a", "b", "c"} {
		want, err := rc.Execute(ctx, rp.ID, map[string]any{"q": q})
		require.NoError(t, err)
		got, err := c.Execute(ctx, p.ID, map[string]any{"q": q})
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
}

func TestOverPayloadLimit(t *testing.T) {
	s, err := embedded.Start(context.Background(), embedded.Options{Port: -1, StoreDir: t.TempDir(), NoAuth: true, MaxPayload: 64 << 10})
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1"})
	a := newRemote(t, s.ClientURL(), remote.Options{})
	big, _ := json.Marshal(map[string]string{"value": string(make([]byte, 100<<10))})
	_, err = a.Call(ctxT(t, 5*time.Second), adapter.Request{Command: "ping", Args: big})
	assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err), "%v", err)
	assert.Equal(t, int(a.Capabilities().MaxFrameBytes), 64<<10)
	_, err = a.Call(ctxT(t, 5*time.Second), adapter.Request{Command: "ping"})
	assert.NoError(t, err, "the adapter stays usable")
}

func TestOptionsAreChecked(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s.ClientURL())
	ctx := context.Background()
	_, err := remote.New(ctx, remote.Options{})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	_, err = remote.New(ctx, remote.Options{Conn: nc, Prefix: "bad prefix"})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	_, err = remote.New(ctx, remote.Options{Conn: nc, Affinity: "sometimes"})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	_, err = remote.Serve(ctx, nc, mock.New(mock.Options{}), remote.HostOptions{ID: "a.b"})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	_, err = remote.Dial(ctx, remote.DialOptions{})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	_, err = remote.Dial(ctx, remote.DialOptions{URL: "nats://127.0.0.1:1", ConnectTimeout: 200 * time.Millisecond})
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err))
}

// TestBroadcastWithoutHostIsRecorded: a broadcast made before any host
// exists is kept for the hosts to come; a command that is not a broadcast
// is refused.
func TestBroadcastWithoutHostIsRecorded(t *testing.T) {
	s := startServer(t)
	a := newRemote(t, s.ClientURL(), remote.Options{})
	ctx := ctxT(t, 10*time.Second)
	require.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"recorded"}`)}))
	for _, cmd := range []string{"no_such_command", "bad.name", "shutdown", "reset"} {
		err := a.Broadcast(ctx, adapter.Request{Command: cmd, Args: json.RawMessage(`{}`)})
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "only configure_lm is a broadcast: %v", err)
	}

	serveMock(t, s.ClientURL(), remote.HostOptions{ID: "late"})
	resp, err := a.Call(ctx, adapter.Request{Command: "get_stats"})
	require.NoError(t, err)
	var stats struct{ LM struct{ Model string } }
	require.NoError(t, json.Unmarshal(resp.Result, &stats))
	assert.Equal(t, "recorded", stats.LM.Model)
}

func TestHostIDsAreUnique(t *testing.T) {
	s := startServer(t)
	serveMock(t, s.ClientURL(), remote.HostOptions{ID: "twin"})
	m := mock.New(mock.Options{})
	defer m.Close(context.Background())
	_, err := remote.Serve(ctxT(t, 10*time.Second), connect(t, s.ClientURL()), m, remote.HostOptions{ID: "twin"})
	assert.Equal(t, adapter.CodeAlreadyExists, adapter.CodeOf(err), "%v", err)
}

// A consumer slower than the heartbeat's patience is not a silent host:
// the stream goes on.
func TestSlowStreamConsumerIsNotASilentHost(t *testing.T) {
	s := startServer(t)
	serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1"})
	a := newRemote(t, s.ClientURL(), remote.Options{})
	ctx := ctxT(t, 30*time.Second)
	n := 0
	for c, err := range a.Stream(ctx, adapter.Request{Command: "stream_count", Args: json.RawMessage(`{"n":4}`)}) {
		require.NoError(t, err)
		if c.Response != nil {
			break
		}
		n++
		<-time.After(400 * time.Millisecond) // longer than three 100 ms heartbeats
	}
	assert.Equal(t, 4, n)
}

// TestHostBoundsTheBytesInFlight: a host holds at most
// HostOptions.MaxInFlightBytes of requests: past it a request is refused
// at once, resource_exhausted, while the calls it holds go on; one
// request is always taken; and a second call with the reply subject of
// one in flight is refused, not taken over.
func TestHostBoundsTheBytesInFlight(t *testing.T) {
	s := startServer(t)
	h, _ := serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1", MaxInFlightBytes: 4096})
	a := newRemote(t, s.ClientURL(), remote.Options{})
	ctx := ctxT(t, 30*time.Second)
	c, p := dummyProgram(t, ctx, a, 60_000)

	slow, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Execute(slow, p.ID, map[string]any{"q": strings.Repeat("a", 3000)})
		done <- err
	}()
	testutil.WaitFor(t, "the host holds the first call", func() bool { return h.Stats().InFlight == 1 })

	_, err := c.Execute(ctx, p.ID, map[string]any{"q": strings.Repeat("b", 2000)})
	assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, `host "h1" holds`)
	assert.ErrorContains(t, err, "would pass its limit of 4096")

	raw := connect(t, s.ClientURL())
	big := nats.NewMsg("dspgo.call")
	big.Header.Set("Dspgo-Command", "ping")
	big.Header.Set("X-Padding", strings.Repeat("h", 2000)) // the host keeps the headers too
	r, err := raw.RequestMsgWithContext(ctx, big)
	require.NoError(t, err)
	assert.Equal(t, "resource_exhausted", r.Header.Get("Dspgo-Error"), "%s", r.Data)

	cancel()
	assert.Equal(t, adapter.CodeCanceled, adapter.CodeOf(<-done))
	testutil.WaitFor(t, "the host let the call go", func() bool { return h.Stats().InFlight == 0 })
	_, err = c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a"), Instructions: strings.Repeat("c", 8000)})
	require.NoError(t, err, "one request is taken whatever its size")

	nc := connect(t, s.ClientURL())
	reply := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(reply)
	require.NoError(t, err)
	for range 2 {
		m := nats.NewMsg("dspgo.call")
		m.Reply = reply
		m.Header.Set("Dspgo-Command", "execute_program")
		m.Data = []byte(`{"spec_hash":"` + p.Hash + `","inputs":{"q":"?"}}`)
		require.NoError(t, nc.PublishMsg(m))
	}
	reply1 := func() *nats.Msg { // the next reply that is not a heartbeat
		for {
			m, err := sub.NextMsg(10 * time.Second)
			require.NoError(t, err)
			if m.Header.Get("Dspgo-Status") == "" {
				return m
			}
		}
	}
	first := reply1()
	assert.Equal(t, "invalid_argument", first.Header.Get("Dspgo-Error"), "%s", first.Data)
	assert.Contains(t, string(first.Data), "a call with this reply subject is in flight")
	require.NoError(t, nc.Publish("dspgo.host.h1.cancel", []byte(reply)))
	assert.Equal(t, "canceled", reply1().Header.Get("Dspgo-Error"), "the first call was not taken over: its cancel ends it")
}

// TestHostLetsGoOfAnAnsweredCall: a call's bytes stop counting before its
// reply goes out, so a caller that sends its next request as soon as it
// has a reply is never refused for the call it was answered (each request
// here is more than half the host's limit).
func TestHostLetsGoOfAnAnsweredCall(t *testing.T) {
	s := startServer(t)
	serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1", MaxInFlightBytes: 4096})
	a := newRemote(t, s.ClientURL(), remote.Options{})
	ctx := ctxT(t, 60*time.Second)
	c, p := dummyProgram(t, ctx, a, 0)
	in := map[string]any{"q": strings.Repeat("a", 3000)}
	for i := range 300 {
		_, err := c.Execute(ctx, p.ID, in)
		require.NoError(t, err, "call %d", i)
	}

	// A client that sends its next request on the reply subject of the
	// call it was just answered is not refused for it either.
	nc := connect(t, s.ClientURL())
	reply := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(reply)
	require.NoError(t, err)
	for i := range 300 {
		m := nats.NewMsg("dspgo.call")
		m.Reply = reply
		m.Header.Set("Dspgo-Command", "ping")
		require.NoError(t, nc.PublishMsg(m))
		r, err := sub.NextMsg(10 * time.Second)
		require.NoError(t, err)
		require.Empty(t, r.Header.Get("Dspgo-Error"), "call %d: %s", i, r.Data)
	}
}

// TestHostBoundsCallsWaitingForTheState: a call waits for the shared
// state to reach the revision its caller names; after a second the host
// asks whether that revision was written and refuses one that was not,
// invalid_argument, and after a while (a minute; here shortened) fails
// the call unavailable. Each call counts 8 KiB toward
// HostOptions.MaxInFlightBytes beside its request, so that many small
// calls are bounded as large ones are (a caller naming a revision that
// never comes held a goroutine per call, without end, each counting its
// few bytes only).
func TestHostBoundsCallsWaitingForTheState(t *testing.T) {
	s := startServer(t)
	h, _ := serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1", MaxInFlightBytes: 64 << 10})
	nc := connect(t, s.ClientURL())
	prefix := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(prefix + ".*")
	require.NoError(t, err)
	send := func(calls int) map[string]int {
		t.Helper()
		for i := range calls {
			m := nats.NewMsg("dspgo.call")
			m.Reply = prefix + "." + strconv.Itoa(i)
			m.Header.Set("Dspgo-Command", "ping")
			m.Header.Set("Dspgo-State-Rev", "18446744073709551615") // a revision never written
			require.NoError(t, nc.PublishMsg(m))
		}
		codes := map[string]int{}
		for answered := 0; answered < calls; {
			m, err := sub.NextMsg(30 * time.Second)
			require.NoError(t, err, "%v", codes)
			if m.Header.Get("Dspgo-Status") != "" {
				continue // a heartbeat
			}
			answered++
			code := m.Header.Get("Dspgo-Error")
			codes[code]++
			switch code {
			case "invalid_argument":
				assert.Contains(t, string(m.Data), "the shared state has no revision 18446744073709551615 (its last is ")
			case "unavailable":
				assert.Contains(t, string(m.Data), `host \"h1\": the shared state did not reach revision 18446744073709551615 within 300ms`)
			}
		}
		testutil.WaitFor(t, "the host let the calls go", func() bool { return h.Stats().InFlight == 0 })
		return codes
	}

	codes := send(50)
	assert.Equal(t, 50, codes["resource_exhausted"]+codes["invalid_argument"], "%v", codes)
	assert.Positive(t, codes["invalid_argument"], "one call is always taken")
	assert.LessOrEqual(t, codes["invalid_argument"], (64<<10)/(8<<10), "no more calls than 8 KiB each allow")

	remote.SetStateWait(h, 300*time.Millisecond) // before the host asks
	assert.Equal(t, map[string]int{"unavailable": 1}, send(1))
}

// TestResetKeepsWhatCallersShare: a caller's reset drops the workers'
// compiled specs, but the host restores what every caller shares: its own
// LM (HostOptions.Restore) and the broadcasts of the shared state, so
// another caller's LM configuration is as it was.
func TestResetKeepsWhatCallersShare(t *testing.T) {
	s := startServer(t)
	var m *mock.Adapter
	var restored atomic.Int32
	hold := make(chan struct{}) // closed: Restore goes on at once
	close(hold)
	var holdMu sync.Mutex
	_, m = serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1", Restore: func(ctx context.Context) error {
		holdMu.Lock()
		wait := hold
		holdMu.Unlock()
		<-wait
		defer restored.Add(1)
		return dspgo.NewClient(m).ConfigureLM(ctx, dspgo.LMConfig{Model: "the-host's"})
	}})
	ctx := ctxT(t, 30*time.Second)
	require.NoError(t, dspgo.NewClient(m).ConfigureLM(ctx, dspgo.LMConfig{Model: "the-host's"}))
	alice, bob := dspgo.NewClient(newRemote(t, s.ClientURL(), remote.Options{})), newRemote(t, s.ClientURL(), remote.Options{})
	require.NoError(t, alice.ConfigureLM(ctx, dspgo.LMConfig{Name: "fast", Model: "alice's"}))
	session := alice.Session("alice")
	p, err := session.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
	require.NoError(t, err)
	stats := func() (lm string, lms map[string]string) {
		resp, err := bob.Call(ctx, adapter.Request{Command: "get_stats"})
		require.NoError(t, err)
		var st struct {
			LM  struct{ Model string }            `json:"lm"`
			LMs map[string]struct{ Model string } `json:"lms"`
		}
		require.NoError(t, json.Unmarshal(resp.Result, &st))
		lms = map[string]string{}
		for name, c := range st.LMs {
			lms[name] = c.Model
		}
		return st.LM.Model, lms
	}

	_, err = bob.Call(ctx, adapter.Request{Command: "reset"})
	require.NoError(t, err)
	assert.Equal(t, int32(1), restored.Load())
	lm, lms := stats()
	assert.Equal(t, "the-host's", lm, "the host's own LM, not the dummy's")
	assert.Equal(t, map[string]string{"fast": "alice's"}, lms, "alice's named LM")
	_, err = session.WithLM("fast").Execute(ctx, p.ID, map[string]any{"q": "?"})
	require.NoError(t, err, "alice's program and LM, after bob's reset")

	// A caller that gives up on its reset does not stop the restoring.
	holdMu.Lock()
	hold = make(chan struct{})
	holdMu.Unlock()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = bob.Call(short, adapter.Request{Command: "reset"})
	assert.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err), "%v", err)
	close(hold)
	testutil.WaitFor(t, "the host restored after the caller left", func() bool { return restored.Load() == 2 })
	testutil.WaitFor(t, "alice's named LM is back", func() bool { _, lms := stats(); return lms["fast"] == "alice's" })
	lm, _ = stats()
	assert.Equal(t, "the-host's", lm)
}

// TestHostWarnsOfAnOldStateBucket: a bucket made by an earlier version
// (nats.go's own key-value bucket: rollups allowed, no bounds) is served
// as it is, with a warning that says how to have it made anew.
func TestHostWarnsOfAnOldStateBucket(t *testing.T) {
	s := startServer(t)
	js, err := jetstream.New(connect(t, s.ClientURL()))
	require.NoError(t, err)
	ctx := ctxT(t, 30*time.Second)
	_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "dspgo_state", History: 1})
	require.NoError(t, err)
	logs := &testutil.SyncBuffer{}
	serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1", Logger: slog.New(slog.NewTextHandler(logs, nil))})
	assert.Contains(t, logs.String(), "the shared state bucket was made by an earlier version: it allows rollups and purges, or has no bounds")
	assert.Contains(t, logs.String(), "nats kv rm dspgo_state")

	fresh, freshLogs := startServer(t), &testutil.SyncBuffer{}
	serveMock(t, fresh.ClientURL(), remote.HostOptions{ID: "h2", Logger: slog.New(slog.NewTextHandler(freshLogs, nil))})
	assert.NotContains(t, freshLogs.String(), "earlier version", "a bucket the host made")
}

// TestHostAnswersAFloodOfDiscoversOnce: a host answers callers'
// discovers at once, 64 in a burst, but a flood of them costs one
// announcement per 100 ms (each caller hears every announcement: 50,000
// discovers were 50,000 announcements to every caller of every host).
func TestHostAnswersAFloodOfDiscoversOnce(t *testing.T) {
	s := startServer(t)
	serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1", Heartbeat: time.Hour})
	nc := connect(t, s.ClientURL())
	anns, err := nc.SubscribeSync("dspgo.announce")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	start := time.Now()
	require.NoError(t, nc.Publish("dspgo.discover", nil))
	_, err = anns.NextMsg(10 * time.Second)
	require.NoError(t, err, "the first discover is answered")
	for range 2000 {
		require.NoError(t, nc.Publish("dspgo.discover", nil))
	}
	require.NoError(t, nc.Flush())
	_, err = anns.NextMsg(10 * time.Second)
	require.NoError(t, err, "the flood is answered too")
	// Whatever the flood left pending goes out within a gap.
	for {
		if _, err := anns.NextMsg(300 * time.Millisecond); err != nil {
			break
		}
	}
	msgs, err := anns.Delivered()
	require.NoError(t, err)
	// The host's first announcement, when it starts, a burst of 64, and
	// one per gap begun since the test's start.
	most := int64(time.Since(start)/(100*time.Millisecond)) + 2 + 64
	assert.LessOrEqual(t, msgs, most, "one announcement per gap, not one per discover")
}
