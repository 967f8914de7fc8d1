package remote_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/internal/wait"
)

// stallingMock is a mock whose Stats can be made to block: the host's
// heartbeats, which announce the backend's stats each period after
// sending the calls' heartbeats, then stop for as long, while its calls
// go on. It stands for a host that a busy machine does not schedule for
// longer than its callers' patience.
type stallingMock struct {
	*mock.Adapter
	mu    sync.Mutex
	skip  int           // Stats calls let through before the stall
	stall chan struct{} // when set and skip is 0, Stats waits for it to close
}

func (m *stallingMock) Stats() adapter.Stats {
	m.mu.Lock()
	c := m.stall
	if c != nil && m.skip > 0 {
		m.skip--
		c = nil
	}
	m.mu.Unlock()
	if c != nil {
		<-c
	}
	return m.Adapter.Stats()
}

// stallAfter makes the Stats calls after the next n wait until release.
func (m *stallingMock) stallAfter(n int) (release func()) {
	c := make(chan struct{})
	m.mu.Lock()
	m.skip, m.stall = n, c
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			m.stall = nil
			m.mu.Unlock()
			close(c)
		})
	}
}

// A host whose heartbeats stop (here, for two seconds: longer than the
// caller waits for a host that answers none of its probes) while it
// still serves the call is not given up: the caller probes it, the host
// says it has the call, and the call ends with its result.
func TestHostThatMissesHeartbeatsIsProbedNotGivenUp(t *testing.T) {
	s := startServer(t)
	m := &stallingMock{Adapter: mock.New(mock.Options{})}
	t.Cleanup(func() { _ = m.Adapter.Close(context.Background()) })
	h, err := remote.Serve(ctxT(t, time.Minute), connect(t, s.ClientURL()), m, remote.HostOptions{ID: "h1", Heartbeat: 100 * time.Millisecond})
	require.NoError(t, err)
	var release func()
	t.Cleanup(func() {
		if release != nil {
			release()
		}
		require.NoError(t, h.Close(context.Background()))
	})
	a := newRemote(t, s.ClientURL(), remote.Options{})
	ctx := ctxT(t, 30*time.Second)
	c, p := dummyProgram(t, ctx, a, 2500)

	done := make(chan error, 1)
	go func() { _, err := c.Execute(ctx, p.ID, map[string]any{"q": "x"}); done <- err }()
	require.True(t, wait.Until(ctx, func() bool { return h.Stats().InFlight == 1 }))
	// The tick after next sends the call's first heartbeat (a call is
	// due half a period after it started), so the caller knows its host;
	// then the host's heartbeats stop.
	release = m.stallAfter(1)
	time.AfterFunc(2*time.Second, release)
	assert.NoError(t, <-done, "the host was alive and serving the call")
}

// fakeHost serves the deployment's call subject (default prefix and
// queue group) as host id with a raw connection: onCall gets each call;
// onProbe each probe, which comes on the host's cancel subject (ctl).
func fakeHost(t *testing.T, url, id string, onCall, onProbe func(nc *nats.Conn, m *nats.Msg)) (nc *nats.Conn, ctl *nats.Subscription) {
	t.Helper()
	nc = connect(t, url)
	calls, err := nc.QueueSubscribe("dspgo.call", "dspgo-workers", func(m *nats.Msg) { onCall(nc, m) })
	require.NoError(t, err)
	// Gone from the queue group once the test ends (before the connection
	// closes, which the server learns of only later): a later test's call
	// must not go to this host.
	t.Cleanup(func() { _ = calls.Unsubscribe(); _ = nc.Flush() })
	ctl, err = nc.Subscribe("dspgo.host."+id+".cancel", func(m *nats.Msg) {
		if m.Header.Get("Dspgo-Probe") != "" {
			onProbe(nc, m)
		}
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return nc, ctl
}

// status answers m (on subject) with a status message of host id.
func status(nc *nats.Conn, subject, id, value string) {
	r := nats.NewMsg(subject)
	r.Header.Set("Dspgo-Status", value)
	r.Header.Set("Dspgo-Host", id)
	r.Header.Set("Dspgo-Heartbeat-Ms", "100")
	_ = nc.PublishMsg(r)
}

// A call whose host falls silent is settled by a probe of that host:
// the host says it has no such call (its reply was lost), or nothing
// serves its subject any more (it is gone), or it does not answer at
// all (it is cut off); a host that says it still works on the call is
// waited for, heartbeats or not. An answer from another host counts for
// nothing.
func TestSilentHostIsProbed(t *testing.T) {
	s := startServer(t)
	for _, tc := range []struct {
		name    string
		onProbe func(nc *nats.Conn, m *nats.Msg, sub *nats.Subscription)
		want    string // the error's words; empty: the call succeeds
	}{
		{"unknown", func(nc *nats.Conn, m *nats.Msg, _ *nats.Subscription) { status(nc, m.Reply, "fake", "unknown") }, "no longer has the call"},
		{"gone", nil, "is gone"},
		{"cut-off", func(*nats.Conn, *nats.Msg, *nats.Subscription) {}, "did not answer 3 probes"},
		// An answer in another host's name is no answer: only the host
		// that spoke of the call can say it no longer has it.
		{"other-host", func(nc *nats.Conn, m *nats.Msg, _ *nats.Subscription) { status(nc, m.Reply, "other", "unknown") }, "did not answer 3 probes"},
		{"working", func(nc *nats.Conn, m *nats.Msg, _ *nats.Subscription) { status(nc, m.Reply, "fake", "working") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sub *nats.Subscription
			var subMu sync.Mutex
			onCall := func(nc *nats.Conn, m *nats.Msg) {
				status(nc, m.Reply, "fake", "working") // one heartbeat: the caller knows the host
				if tc.onProbe == nil {
					subMu.Lock()
					_ = sub.Unsubscribe() // the host's own subjects go
					subMu.Unlock()
					_ = nc.Flush()
				}
				if tc.want == "" {
					time.AfterFunc(time.Second, func() {
						r := nats.NewMsg(m.Reply)
						r.Header.Set("Dspgo-Host", "fake")
						r.Data = []byte(`{}`)
						_ = nc.PublishMsg(r)
					})
				}
			}
			subMu.Lock()
			_, sub = fakeHost(t, s.ClientURL(), "fake", onCall, func(nc *nats.Conn, m *nats.Msg) { tc.onProbe(nc, m, nil) })
			subMu.Unlock()
			a := newRemote(t, s.ClientURL(), remote.Options{})
			start := time.Now()
			_, err := a.Call(ctxT(t, 20*time.Second), adapter.Request{Command: "ping"})
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err), "%v", err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Less(t, time.Since(start), 10*time.Second, "never the call's deadline")
		})
	}
}

// A call cancelled before its host has said a word (no heartbeat yet,
// so the caller does not know which host took it) is still cancelled on
// that host: the host's first heartbeat for a call its caller left is
// answered with a cancellation.
func TestCancelReachesAHostNotYetKnown(t *testing.T) {
	s := startServer(t)
	h, _ := serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1", Heartbeat: time.Second})
	a := newRemote(t, s.ClientURL(), remote.Options{Heartbeat: time.Second})
	ctx := ctxT(t, 30*time.Second)
	c, p := dummyProgram(t, ctx, a, 60000)

	callCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := c.Execute(callCtx, p.ID, map[string]any{"q": "x"}); done <- err }()
	require.True(t, wait.Until(ctx, func() bool { return h.Stats().InFlight == 1 }))
	cancel() // the host's first heartbeat is half a second away
	err := <-done
	assert.Equal(t, adapter.CodeCanceled, adapter.CodeOf(err), "%v", err)
	// The LM would take a minute; the host stops at its first heartbeat.
	stopped, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	assert.True(t, wait.Until(stopped, func() bool { return h.Stats().InFlight == 0 }), "the host's call was cancelled")
}

// holdingProxy forwards TCP connections to a server; while holding, it
// accepts new connections and forwards nothing on them: a client
// reconnecting through it waits in its handshake.
type holdingProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	hold   bool
	held   chan struct{} // a connection was held
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *holdingProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &holdingProxy{l: l, target: target, held: make(chan struct{}, 16)}
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			hold := p.hold
			p.mu.Unlock()
			if hold {
				select {
				case p.held <- struct{}{}:
				default:
				}
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, s)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(s, c); _ = s.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, s); _ = c.Close() })
		}
	})
	t.Cleanup(p.close)
	return p
}

func (p *holdingProxy) url() string { return "nats://" + p.l.Addr().String() }

// cut closes every connection, and holds the next ones when hold is set.
func (p *holdingProxy) cut(hold bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = hold
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *holdingProxy) close() {
	_ = p.l.Close()
	p.cut(false)
	p.wg.Wait()
}

// A call ends by its deadline even while the caller's connection is
// reconnecting to a server that accepted it but has not answered its
// handshake, during which nats.go holds every publish of the connection
// (for up to the connection's timeout, here 5 s): nothing on a call's way
// waits on the connection without also waiting on the call's context,
// and telling a host to cancel never waits at all.
func TestDeadlineHoldsWhileTheConnectionReconnects(t *testing.T) {
	s := startServer(t)
	serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1"})
	px := startProxy(t, s.ClientURL()[len("nats://"):])
	nc, err := remote.Dial(context.Background(), remote.DialOptions{URL: px.url(), ConnectTimeout: 5 * time.Second, AllowNoAuth: true})
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	t.Cleanup(func() { px.cut(false) }) // before nc.Close, which would wait for the handshake
	a, err := remote.New(context.Background(), remote.Options{Conn: nc, Heartbeat: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	ctx := ctxT(t, 30*time.Second)
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
	require.NoError(t, err)

	// A stream whose host has spoken (a chunk came) is left while the
	// connection reconnects: the host is told to cancel without the
	// caller waiting for the connection. The stream's deadline travels,
	// so the host, which the cancellation may never reach, ends it by then.
	streamCtx, cancelStream := context.WithTimeout(ctx, 3*time.Second)
	defer cancelStream()
	var left time.Time
	for _, err := range a.Stream(streamCtx, adapter.Request{Command: "stream_count", Args: json.RawMessage(`{"n":64}`)}) {
		require.NoError(t, err)
		px.cut(true)
		select {
		case <-px.held: // the client is in its handshake, holding its connection's lock
		case <-ctx.Done():
			t.Fatal("the client did not reconnect")
		}
		left = time.Now()
		break
	}
	assert.Less(t, time.Since(left), time.Second, "leaving a stream waited for the connection (the handshake waits 5 s)")

	const deadline = 300 * time.Millisecond
	late := func(what string, call func(context.Context) error) {
		callCtx, cancel := context.WithTimeout(ctx, deadline)
		defer cancel()
		start := time.Now()
		err := call(callCtx)
		took := time.Since(start)
		assert.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err), "%s: %v", what, err)
		assert.Less(t, took, deadline+time.Second, "%s: ended %v after its start, its deadline %v (the handshake waits 5 s)", what, took, deadline)
	}
	late("ping", func(ctx context.Context) error { return c.Ping(ctx) })
	late("execute", func(ctx context.Context) error { _, err := c.Execute(ctx, p.ID, map[string]any{"q": "x"}); return err })
	late("stream", func(ctx context.Context) error {
		var last error
		for _, err := range c.ExecuteStream(ctx, p.ID, map[string]any{"q": "x"}) {
			last = err
		}
		return last
	})
}

// A draining host takes no new calls but still takes the cancellations
// and the stream credit of the calls it finishes: a stream longer than
// its credit ends whole, and a call its caller cancels stops, so the
// drain ends.
func TestDrainingHostTakesCancelsAndCredit(t *testing.T) {
	s := startServer(t)
	h, _ := serveMock(t, s.ClientURL(), remote.HostOptions{ID: "h1"})
	a := newRemote(t, s.ClientURL(), remote.Options{})
	ctx := ctxT(t, 60*time.Second)
	c, p := dummyProgram(t, ctx, a, 60000)

	// A stream of 4 windows, whose reader holds its first chunk until
	// the drain has begun (so the host needs credit while it drains), and
	// an execution that would take a minute.
	const chunks = 4 * remote.DefaultStreamWindow
	streamed := make(chan int, 1)
	firstChunk, drainBegun := make(chan struct{}), make(chan struct{})
	go func() {
		n := 0
		for ch, err := range a.Stream(ctx, adapter.Request{Command: "stream_count", Args: json.RawMessage(`{"n":` + strconv.Itoa(chunks) + `}`)}) {
			if err != nil || ch.Response != nil {
				break
			}
			if n++; n == 1 {
				close(firstChunk)
				select {
				case <-drainBegun:
				case <-ctx.Done():
				}
			}
		}
		streamed <- n
	}()
	callCtx, cancel := context.WithCancel(ctx)
	executed := make(chan error, 1)
	go func() { _, err := c.Execute(callCtx, p.ID, map[string]any{"q": "x"}); executed <- err }()
	require.True(t, wait.Until(ctx, func() bool { return h.Stats().InFlight == 2 }))
	<-firstChunk

	closed := make(chan error, 1)
	go func() { closed <- h.Close(ctx) }()
	require.True(t, wait.Until(ctx, func() bool { // the drain has begun: the host takes no new call
		_, err := a.Call(ctx, adapter.Request{Command: "ping"})
		return adapter.CodeOf(err) == adapter.CodeUnavailable
	}))
	close(drainBegun)
	cancel()
	assert.Equal(t, adapter.CodeCanceled, adapter.CodeOf(<-executed))
	assert.Equal(t, chunks, <-streamed, "the stream ended whole")
	select {
	case err := <-closed:
		assert.NoError(t, err, "the drain ended")
	case <-time.After(20 * time.Second):
		t.Fatal("the drain did not end: a cancellation or credit did not reach the draining host")
	}
}

// A host that has announced itself but that the caller's server cannot
// reach yet (in a cluster, its subscription gets to the other servers a
// moment after it serves, and again after it reconnects) is waited for,
// a moment: the call, which reached no one, goes again.
func TestAnnouncedHostNotYetReachableIsWaitedFor(t *testing.T) {
	s := startServer(t)
	// Periods long enough that the announcement stays fresh, and the
	// caller waits, however slowly a loaded machine starts the host.
	a := newRemote(t, s.ClientURL(), remote.Options{Heartbeat: 10 * time.Second})
	nc := connect(t, s.ClientURL())
	ann, err := json.Marshal(remote.Announcement{Host: "h1", Workers: 1, HeartbeatMs: 10000})
	require.NoError(t, err)
	ctx := ctxT(t, 30*time.Second)
	require.True(t, wait.Until(ctx, func() bool {
		// Again until the caller lists it, as a host does every period:
		// the first may reach the server before the caller's subscription.
		require.NoError(t, nc.Publish("dspgo.announce", ann))
		return len(a.Hosts()) == 1
	}))

	// The host's subscription comes after the call has begun.
	m := mock.New(mock.Options{})
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	hostConn := connect(t, s.ClientURL())
	hosts := make(chan *remote.Host, 1)
	go func() {
		if !wait.Until(ctx, func() bool { return a.Stats().InFlight == 1 }) {
			hosts <- nil
			return
		}
		h, err := remote.Serve(ctx, hostConn, m, remote.HostOptions{ID: "h1", Heartbeat: time.Second})
		assert.NoError(t, err)
		hosts <- h
	}()
	resp, err := a.Call(ctx, adapter.Request{Command: "ping"})
	if h := <-hosts; h != nil {
		t.Cleanup(func() { require.NoError(t, h.Close(context.Background())) })
	}
	require.NoError(t, err)
	assert.Equal(t, "h1", host(resp.Worker))
}

// Chunks of a stream lost on the way (NATS drops messages only while a
// connection is down) end the stream with CodeUnavailable, as a lost
// reply does; a chunk the host sends twice is its own error, internal.
func TestStreamThatLostChunksIsUnavailable(t *testing.T) {
	s := startServer(t)
	chunk := func(nc *nats.Conn, reply string, seq int) {
		m := nats.NewMsg(reply)
		m.Header.Set("Dspgo-Status", "chunk")
		m.Header.Set("Dspgo-Host", "fake")
		m.Header.Set("Dspgo-Seq", strconv.Itoa(seq))
		m.Data = []byte(`{}`)
		_ = nc.PublishMsg(m)
	}
	for _, tc := range []struct {
		name string
		send func(nc *nats.Conn, reply string)
		want adapter.Code
	}{
		{"gap", func(nc *nats.Conn, reply string) { chunk(nc, reply, 2) }, adapter.CodeUnavailable},
		{"count", func(nc *nats.Conn, reply string) {
			m := nats.NewMsg(reply)
			m.Header.Set("Dspgo-Host", "fake")
			m.Header.Set("Dspgo-Chunks", "3")
			m.Data = []byte(`{}`)
			_ = nc.PublishMsg(m)
		}, adapter.CodeUnavailable},
		{"repeat", func(nc *nats.Conn, reply string) { chunk(nc, reply, 0); chunk(nc, reply, 0) }, adapter.CodeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeHost(t, s.ClientURL(), "fake", func(nc *nats.Conn, m *nats.Msg) { tc.send(nc, m.Reply) }, func(*nats.Conn, *nats.Msg) {})
			a := newRemote(t, s.ClientURL(), remote.Options{})
			var last error
			for _, err := range a.Stream(ctxT(t, 10*time.Second), adapter.Request{Command: "ping"}) {
				last = err
			}
			require.Error(t, last)
			assert.Equal(t, tc.want, adapter.CodeOf(last), "%v", last)
		})
	}
}
