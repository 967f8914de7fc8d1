// Package remote is the adapter that sends each request to worker hosts
// on other processes or machines through NATS, and the host that serves
// them.
//
// A worker host (Serve, or the CLI's "dspgo workers") runs any adapter,
// usually a local pool, and serves it as a NATS micro service named
// "dspgo": requests arrive on "<prefix>.call" through a queue group, so any
// number of hosts share the load; "<prefix>.host.<id>.call" reaches one
// host, for session affinity; "$SRV.PING.dspgo", "$SRV.INFO.dspgo" and
// "$SRV.STATS.dspgo" list the hosts with their counters.
//
// The adapter (New) is request/reply with the caller's deadline, which
// it keeps whatever the hosts and the connection do: a call returns by
// its deadline (or its cancellation) plus DeadlineMargin. A host working
// on a call longer than its heartbeat period tells the caller so, every
// period; a call whose host falls silent for three periods is probed,
// and ends with CodeUnavailable when nothing serves the host's subject
// any more (it died), when the host says it no longer has the call (its
// reply was lost), or when three probes, three periods apart, go
// unanswered (twelve periods of silence: the network parted, or the
// host's machine vanished), instead of waiting for its deadline; a busy
// machine's hiccup longer than three periods is not taken for a death. A call
// cancelled before its host has said a word is cancelled on that host at
// its first heartbeat. "No responders" is CodeUnavailable, at once when
// no host has announced itself lately, else after waiting a moment for
// the host to become reachable; a deadline CodeDeadlineExceeded. Calls
// are delivered at most once: the adapter never resends a call a host
// may have received. Streams cross NATS with credit, as they cross a
// worker's pipes, and a react program's tools run in the caller's
// process, called back through its reply inbox.
//
// State that every host must have lives in a JetStream key-value bucket,
// "<prefix>_state", not in any one process: broadcasts (the LM
// configuration) under "broadcast.<command>" (a named LM under
// "broadcast.configure_lm.<name>"), replayed by every host at
// start and applied by a watch when they change; program specs under
// "spec.<hash>", which a host that has not compiled a spec fetches
// instead of failing. A host that joins later, or restarts, has them.
//
// A deployment that others can reach authenticates every client and
// gives it one of two roles, RoleHost or RoleCaller (Permissions; Dial
// takes the credentials and sets the connection's own inbox prefix,
// InboxPrefix): a caller then cannot take calls, read other callers'
// replies, or touch the state beyond recording configure_lm. A host
// sends its API key only to the LM endpoints its own configuration
// allows (HostOptions.LMBaseURLs, LMAPIKeyEnv), answers only inboxes, and
// applies no broadcast but configure_lm. docs/scale-out.md gives the
// same roles for an external nats-server; docs/reliability.md the threat
// model.
//
// The package never starts a NATS server; package remote/embedded runs
// one in process for one machine and for tests.
package remote

// The adapter: its options, construction, capabilities, stats and Close.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/sessionmap"
)

// Name is the remote adapter's registered name.
const Name = "remote"

// Options configure the remote adapter.
type Options struct {
	// Conn is the NATS connection. Required. The adapter does not close
	// it; OnClose can.
	Conn *nats.Conn

	// Name is the adapter's name in errors and stats. Empty means
	// "remote".
	Name string

	// Prefix is the subject prefix the hosts serve under: dot-separated
	// tokens. Empty means "dspgo".
	Prefix string

	// Heartbeat is the hosts' heartbeat period, used until a host's own
	// heartbeat says its period: a call that hears nothing for three
	// periods probes its host, and is given up with CodeUnavailable when
	// the host is gone or no longer has the call, or after twelve
	// periods of silence. Set it to the hosts' value. Zero means 1 s.
	Heartbeat time.Duration

	// Affinity routes sessions among hosts: adapter.AffinityNone sends
	// every request through the queue group; adapter.AffinityPrefer sends
	// a session to the host that first served it while that host lives,
	// and through the queue group once it is gone;
	// adapter.AffinityStrict sends it only to that host, and fails with
	// CodeUnavailable once it is gone. Empty means adapter.AffinityPrefer.
	Affinity adapter.Affinity

	// CallTimeout bounds a call whose context has no deadline. Zero
	// means 2 minutes; negative means no bound.
	CallTimeout time.Duration

	// Replicas is the copies of the shared state bucket, should the
	// adapter be the one to create it (a broadcast with no host serving).
	// Zero means 1.
	Replicas int

	// Logger receives the adapter's logs. Nil discards them.
	Logger *slog.Logger

	// OnClose, when set, runs once at the end of Close, such as to close
	// a connection or an embedded server the caller made for the adapter.
	OnClose func()
}

// Adapter sends requests to worker hosts through NATS. It is safe for
// concurrent use.
type Adapter struct {
	name     string
	nc       *nats.Conn
	subj     subjects
	beat     time.Duration
	affinity adapter.Affinity
	timeout  time.Duration
	replicas int
	log      *slog.Logger
	onClose  func()
	since    time.Time

	inbox   string
	sub     *nats.Subscription
	annSub  *nats.Subscription
	deaf    atomic.Pointer[string] // a subscription the server refused (see unheard); nil while none was
	hostsMu sync.Mutex
	hosts   map[string]hostSeen
	next    atomic.Uint64

	mu       sync.Mutex
	pending  map[string]*pending
	sessions sessionmap.Map[string] // session → host id

	stateRev atomic.Uint64  // the newest broadcast written: hosts apply it before serving
	payload  int64          // the server's payload limit, read at New (see payloadLimit)
	toolRuns sync.WaitGroup // tools running for hosts
	counter  adapter.CallCounter

	done      chan struct{}
	closeOnce sync.Once
}

var _ adapter.Adapter = (*Adapter)(nil)

var _ adapter.Broadcaster = (*Adapter)(nil)

var _ adapter.Statser = (*Adapter)(nil)

var _ adapter.Streamer = (*Adapter)(nil)

// New returns a remote adapter over opts.Conn. It does not wait for any
// host: a call with none gets CodeUnavailable. When the connection is up,
// it waits one round trip to the server (at most a second), and fails
// with CodeFailedPrecondition when the server refuses its subscriptions
// (its replies' inbox, or "<prefix>.announce": the user lacks the caller
// role's permissions, or its connection another user's inbox prefix). It
// puts a handler in front of the connection's error handler
// (nats.Conn.SetErrorHandler), which still gets every error: a refused
// publish ends the calls waiting on it, and a subscription refused later
// (after a reconnection) fails the calls until the connection reconnects
// again (see Call). It chains a reconnection handler in front of the
// connection's the same way.
func New(ctx context.Context, opts Options) (*Adapter, error) {
	if opts.Conn == nil {
		return nil, errorf(adapter.CodeInvalidArgument, Name, "new", "Options.Conn is required")
	}
	if err := ctx.Err(); err != nil {
		return nil, adapter.Wrap(err, Name, "new")
	}
	a := &Adapter{
		name: opts.Name, nc: opts.Conn, subj: subjects{opts.Prefix}, beat: opts.Heartbeat,
		affinity: opts.Affinity, timeout: opts.CallTimeout, replicas: opts.Replicas, log: opts.Logger, onClose: opts.OnClose,
		since: time.Now(), pending: map[string]*pending{}, done: make(chan struct{}),
	}
	if a.name == "" {
		a.name = Name
	}
	if a.subj.prefix == "" {
		a.subj.prefix = DefaultPrefix
	}
	if err := checkPrefix(a.subj.prefix); err != nil {
		return nil, errorf(adapter.CodeInvalidArgument, a.name, "new", "%v", err)
	}
	if a.beat <= 0 {
		a.beat = DefaultHeartbeat
	}
	if a.affinity == "" {
		a.affinity = adapter.AffinityPrefer
	}
	if !a.affinity.Valid() {
		return nil, errorf(adapter.CodeInvalidArgument, a.name, "new", "affinity %q is unknown (known: none, prefer, strict)", a.affinity)
	}
	if a.timeout == 0 {
		a.timeout = 2 * time.Minute
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.payload = a.nc.MaxPayload()
	a.inbox = a.nc.NewInbox()
	if !isInbox(a.inbox) {
		return nil, errorf(adapter.CodeInvalidArgument, a.name, "new", "the connection's inbox %q must be under %q: hosts answer only inboxes (see DialOptions.InboxPrefix)", a.inbox, InboxRoot+".")
	}
	a.hosts = map[string]hostSeen{}
	a.joinRefusals() // before subscribing: the server may refuse the subscriptions
	if err := a.subscribe(ctx); err != nil {
		a.leaveRefusals()
		return nil, err
	}
	_ = a.nc.Publish(a.subj.discover(), nil) // the hosts announce themselves now, not a period later
	return a, nil
}

// replySubject is the subject of the adapter's subscription to its
// replies.
func (a *Adapter) replySubject() string { return a.inbox + ".*" }

// subscribe subscribes to the replies and the hosts' announcements, and,
// when the connection is up, waits for the server to take both (one round
// trip, at most refusalWait): a refused one fails New with
// CodeFailedPrecondition. A refusal that comes later (the connection was
// down, or reconnected) fails the calls instead, until the next
// reconnection (see unheard).
func (a *Adapter) subscribe(ctx context.Context) error {
	before := a.nc.LastError()
	sub, err := a.nc.Subscribe(a.replySubject(), a.onReply)
	if err != nil {
		return &adapter.Error{Code: adapter.CodeUnavailable, Op: "new", Adapter: a.name, Err: fmt.Errorf("subscribing to replies: %w", err)}
	}
	ann, err := a.nc.Subscribe(a.subj.announce(), a.onAnnounce)
	if err != nil {
		_ = sub.Unsubscribe()
		return &adapter.Error{Code: adapter.CodeUnavailable, Op: "new", Adapter: a.name, Err: fmt.Errorf("subscribing to host announcements: %w", err)}
	}
	a.sub, a.annSub = sub, ann
	if !a.nc.IsConnected() {
		return nil
	}
	refused, err := flushRefused(ctx, a.nc, before, refusalWait)
	if err != nil && ctx.Err() != nil {
		err = adapter.Wrap(ctx.Err(), a.name, "new")
	} else {
		// A flush that failed for the connection's sake is not the
		// adapter's trouble: the calls will tell.
		if refused != "" {
			a.unheard(refused) // the error handler learns of it only a moment later
		}
		err = a.deafness("new")
	}
	if err != nil {
		_ = sub.Unsubscribe()
		_ = ann.Unsubscribe()
	}
	return err
}

// Name returns the adapter's name, "remote" by default.
func (a *Adapter) Name() string { return a.name }

// Capabilities reports sessions, broadcast, restarts (the hosts replace
// their workers), streams and tools (when the hosts' backends have them);
// MaxFrameBytes is the server's payload limit as New read it; Commands
// are those of a host alive.
func (a *Adapter) Capabilities() adapter.Capabilities {
	caps := adapter.Capabilities{Sessions: true, Broadcast: true, Restarts: true, MaxFrameBytes: int(a.payloadLimit()),
		Streaming: true, Tools: true}
	if hosts := a.Hosts(); len(hosts) > 0 {
		caps.Commands = hosts[0].Commands
	}
	return caps
}

// payloadLimit returns the server's payload limit as read at New. It
// never asks the connection again, whose lock a reconnection holds for as
// long as its handshake lasts (a client's streamed call asks Capabilities
// first); a request over a smaller limit of another server is refused by
// the connection all the same (CodeResourceExhausted).
func (a *Adapter) payloadLimit() int64 { return a.payload }

// Stats returns the adapter's counters. Workers is the sum of the
// workers of the hosts alive (see Hosts).
func (a *Adapter) Stats() adapter.Stats {
	s := adapter.Stats{Adapter: a.name, Since: a.since}
	a.counter.Fill(&s)
	for _, h := range a.Hosts() {
		s.Workers += h.Workers
	}
	return s
}

// Close ends the calls in flight with ErrClosed, stops listening for
// replies, and runs OnClose. It does not stop any host.
func (a *Adapter) Close(context.Context) error {
	a.closeOnce.Do(func() {
		close(a.done)
		a.leaveRefusals()
		_ = a.sub.Unsubscribe()
		_ = a.annSub.Unsubscribe()
		a.toolRuns.Wait()
		if a.onClose != nil {
			a.onClose()
		}
	})
	return nil
}
