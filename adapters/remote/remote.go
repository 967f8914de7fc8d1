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
// reply was lost), or when three more periods pass without a word (the
// network parted), instead of waiting for its deadline; a busy machine's
// hiccup longer than three periods is not taken for a death. A call
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

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/credit"
	"github.com/dspgo/dspgo/internal/wire"
)

// Name is the remote adapter's registered name.
const Name = "remote"

// Affinity says how a session's requests are routed among hosts.
type Affinity string

// Affinity modes, as the pool's.
const (
	// AffinityNone sends every request through the queue group.
	AffinityNone Affinity = "none"
	// AffinityPrefer sends a session to the host that first served it
	// while that host lives, and through the queue group once it is gone.
	AffinityPrefer Affinity = "prefer"
	// AffinityStrict sends a session only to the host that first served
	// it, and fails with CodeUnavailable once that host is gone.
	AffinityStrict Affinity = "strict"
)

// errNoHost: no host subscribes to the subject.
var errNoHost = errors.New("no worker host serves")

// maxSessions bounds the session → host map; beyond it, an arbitrary
// entry is forgotten (that session is routed afresh).
const maxSessions = 1 << 16

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
	// the host is gone or no longer has the call, or after three more
	// periods of silence. Set it to the hosts' value. Zero means 1 s.
	Heartbeat time.Duration

	// Affinity routes sessions. Empty means AffinityPrefer.
	Affinity Affinity

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
	affinity Affinity
	timeout  time.Duration
	replicas int
	log      *slog.Logger
	onClose  func()
	since    time.Time

	inbox   string
	sub     *nats.Subscription
	annSub  *nats.Subscription
	hostsMu sync.Mutex
	hosts   map[string]hostSeen
	next    atomic.Uint64

	mu       sync.Mutex
	pending  map[string]*pending
	sessions map[string]string // session → host id

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

// hostSeen is a host's last announcement and when it came.
type hostSeen struct {
	Announcement
	at time.Time
}

// pending is a call waiting for its reply.
type pending struct {
	beat  chan time.Duration // a heartbeat, with the host's period; never blocks the sender
	final chan *nats.Msg     // the reply, or NATS's no-responders status
	probe chan *nats.Msg     // the answer to a probe of the call's host (see Adapter.probe)
	host  atomic.Pointer[string]

	// A streamed call's chunks (capacity: the credit), and why it broke.
	chunks   chan *nats.Msg
	next     uint64 // the seq due; set by the reply goroutine only
	broken   chan struct{}
	why      string
	breakOne sync.Once

	// A call with tools: they run under ctx, which the call's end cancels.
	ctx   context.Context
	tools adapter.Tools
}

// New returns a remote adapter over opts.Conn. It does not wait for any
// host: a call with none gets CodeUnavailable.
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
		since: time.Now(), pending: map[string]*pending{}, sessions: map[string]string{}, done: make(chan struct{}),
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
	switch a.affinity {
	case "":
		a.affinity = AffinityPrefer
	case AffinityNone, AffinityPrefer, AffinityStrict:
	default:
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
	sub, err := a.nc.Subscribe(a.inbox+".*", a.onReply)
	if err != nil {
		return nil, &adapter.Error{Code: adapter.CodeUnavailable, Op: "new", Adapter: a.name, Err: fmt.Errorf("subscribing to replies: %w", err)}
	}
	a.sub = sub
	a.hosts = map[string]hostSeen{}
	ann, err := a.nc.Subscribe(a.subj.announce(), a.onAnnounce)
	if err != nil {
		_ = sub.Unsubscribe()
		return nil, &adapter.Error{Code: adapter.CodeUnavailable, Op: "new", Adapter: a.name, Err: fmt.Errorf("subscribing to host announcements: %w", err)}
	}
	a.annSub = ann
	_ = a.nc.Publish(a.subj.discover(), nil) // the hosts announce themselves now, not a period later
	return a, nil
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

// Hosts returns the last announcement of every host alive: heard from
// within three of its heartbeat periods and not gone, sorted by id. A
// host is listed from its first announcement after New, which comes
// within one period.
func (a *Adapter) Hosts() []Announcement {
	now := time.Now()
	a.hostsMu.Lock()
	defer a.hostsMu.Unlock()
	list := make([]Announcement, 0, len(a.hosts))
	for id, h := range a.hosts {
		if now.Sub(h.at) > missedBeats*time.Duration(h.HeartbeatMs)*time.Millisecond {
			delete(a.hosts, id)
			continue
		}
		list = append(list, h.Announcement)
	}
	slices.SortFunc(list, func(x, y Announcement) int { return strings.Compare(x.Host, y.Host) })
	return list
}

func (a *Adapter) onAnnounce(m *nats.Msg) {
	var ann Announcement
	if json.Unmarshal(m.Data, &ann) != nil || ann.Host == "" {
		return
	}
	a.hostsMu.Lock()
	defer a.hostsMu.Unlock()
	if ann.Gone {
		delete(a.hosts, ann.Host)
		return
	}
	if ann.HeartbeatMs <= 0 {
		ann.HeartbeatMs = a.beat.Milliseconds()
	}
	a.hosts[ann.Host] = hostSeen{Announcement: ann, at: time.Now()}
}

// Call sends req to a host and returns its reply. The commands only a
// host's adapters send their workers (protocol.Reserved: shutdown,
// cancel, the init ping) are refused with CodeInvalidArgument before
// anything is sent, as by Stream and Broadcast.
func (a *Adapter) Call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	return a.call(ctx, req, callOpts{})
}

// callOpts are what a call may be beyond a plain request.
type callOpts struct {
	broadcast bool
	window    int                  // stream credit; 0: no stream
	each      func(*nats.Msg) bool // takes each chunk; false stops the stream
}

// Broadcast applies req on every host, current and future: the host that
// takes it applies it to all its workers and writes it to the shared
// state, from which every other host applies it; a host that joins later
// replays it at start. Calls made after Broadcast returns are served only
// by hosts that have applied it. It returns the applying host's error.
//
// With no host serving, Broadcast writes req to the shared state itself,
// unchecked, for the hosts that come: a host that finds it invalid, or
// refuses it (its LM allowlist, see HostOptions.LMBaseURLs), logs the
// error and starts without it. Only configure_lm is a broadcast; another
// command is CodeInvalidArgument.
func (a *Adapter) Broadcast(ctx context.Context, req adapter.Request) error {
	_, err := a.call(ctx, req, callOpts{broadcast: true})
	if !errors.Is(err, errNoHost) {
		return err
	}
	if !slices.Contains(broadcastCommands, req.Command) {
		return errorf(adapter.CodeInvalidArgument, a.name, req.Command, "command %q cannot be broadcast (only %s)", req.Command, strings.Join(broadcastCommands, ", "))
	}
	if err := checkLMName(req.Args); err != nil {
		return err // its key could not be written
	}
	var kv jetstream.KeyValue
	kerr := retry(ctx, func(ctx context.Context) (err error) { kv, err = openBucket(ctx, a.nc, a.subj, a.replicas); return err })
	if kerr != nil {
		return &adapter.Error{Code: adapter.CodeUnavailable, Op: req.Command, Adapter: a.name, Err: errors.Join(err, kerr)}
	}
	args := req.Args
	if len(args) == 0 {
		args = []byte("{}")
	}
	var rev uint64
	kerr = retry(ctx, func(ctx context.Context) (err error) { rev, err = kv.Put(ctx, broadcastKey(req.Command, args), args); return err })
	if kerr != nil {
		return &adapter.Error{Code: adapter.CodeUnavailable, Op: req.Command, Adapter: a.name, Err: errors.Join(err, kerr)}
	}
	a.raiseStateRev(rev)
	a.log.Info("no worker host serves: the broadcast is recorded for the hosts to come", "command", req.Command, "revision", rev)
	return nil
}

func (a *Adapter) raiseStateRev(rev uint64) {
	for {
		old := a.stateRev.Load()
		if rev <= old || a.stateRev.CompareAndSwap(old, rev) {
			return
		}
	}
}

func (a *Adapter) call(ctx context.Context, req adapter.Request, o callOpts) (resp adapter.Response, err error) {
	op := req.Command
	if err := wire.Reserved(a.name, req); err != nil {
		return resp, err // the hosts' adapters' own: never sent, never recorded
	}
	select {
	case <-a.done:
		return resp, adapter.Wrap(adapter.ErrClosed, a.name, op)
	default:
	}
	if req.Command == "" {
		return resp, errorf(adapter.CodeInvalidArgument, a.name, op, "request without a command")
	}
	if err := ctx.Err(); err != nil {
		return resp, adapter.Wrap(err, a.name, op)
	}
	a.counter.Begin()
	defer func() { a.counter.End(err) }()
	if _, ok := ctx.Deadline(); !ok && a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}

	msg := nats.NewMsg("")
	msg.Data = req.Args
	if len(msg.Data) == 0 {
		msg.Data = []byte("{}")
	}
	msg.Header.Set(hdrCommand, req.Command)
	if req.Session != "" {
		msg.Header.Set(hdrSession, req.Session)
	}
	if o.broadcast {
		msg.Header.Set(hdrBcast, "1")
	}
	if o.window > 0 {
		msg.Header.Set(hdrStream, strconv.Itoa(o.window))
	}
	if rev := a.stateRev.Load(); rev > 0 {
		msg.Header.Set(hdrStateRev, strconv.FormatUint(rev, 10))
	}

	host := ""
	if req.Session != "" && a.affinity != AffinityNone && !o.broadcast {
		a.mu.Lock()
		host = a.sessions[req.Session]
		a.mu.Unlock()
	}
	var noHost time.Time // when the queue group first had no responders
	for {
		msg.Subject = a.subj.call()
		if host != "" {
			msg.Subject = a.subj.hostCall(host)
		}
		reply, err := a.roundTrip(ctx, op, msg, req.Tools, o)
		if err != nil {
			return resp, err
		}
		if reply.Header.Get(hdrNATS) == "503" { // no responders
			if host == "" {
				if err := a.awaitHost(ctx, op, &noHost); err != nil {
					return resp, err
				}
				continue
			}
			a.forget(req.Session, host)
			if a.affinity == AffinityStrict {
				return resp, errorf(adapter.CodeUnavailable, a.name, op, "host %q, which serves session %q, is gone (affinity strict)", host, req.Session)
			}
			host = ""
			continue
		}
		return a.decode(op, req.Session, host, reply)
	}
}

// awaitHost decides what a call does when no host took it from the
// queue group: the request reached no one, so it may go again. It waits a
// little and returns nil while a host has announced itself within three
// of its periods, for as long again since the first refusal (*since): in
// a cluster, a host's subscription reaches the other servers a moment
// after the host serves, and again after it reconnects. Otherwise, or
// once ctx ends or the adapter closes, it returns the call's error.
func (a *Adapter) awaitHost(ctx context.Context, op string, since *time.Time) error {
	noHost := &adapter.Error{Code: adapter.CodeUnavailable, Op: op, Adapter: a.name, Err: fmt.Errorf("%w %q", errNoHost, a.subj.call())}
	if since.IsZero() {
		*since = time.Now()
	}
	if len(a.Hosts()) == 0 || time.Since(*since) > missedBeats*a.beat {
		return noHost
	}
	t := time.NewTimer(min(max(a.beat/20, 5*time.Millisecond), 50*time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return adapter.Wrap(ctx.Err(), a.name, op)
	case <-a.done:
		return wire.Closed(a.name, op)
	}
}

// roundTrip publishes msg and waits for its final reply, the caller's
// context, Close, or the host falling silent. A streamed call hands each
// chunk to o.each and grants the host credit as each returns; tools the
// host calls for the request run here.
func (a *Adapter) roundTrip(ctx context.Context, op string, msg *nats.Msg, tools adapter.Tools, o callOpts) (*nats.Msg, error) {
	if d, ok := ctx.Deadline(); ok && !setDeadline(msg.Header, time.Until(d)) {
		return nil, adapter.Wrap(context.DeadlineExceeded, a.name, op)
	}
	token := strconv.FormatUint(a.next.Add(1), 36)
	p := &pending{beat: make(chan time.Duration, 1), final: make(chan *nats.Msg, 1), probe: make(chan *nats.Msg, 1)}
	if o.window > 0 {
		p.chunks, p.broken = make(chan *nats.Msg, o.window), make(chan struct{})
	}
	if tools != nil {
		var end context.CancelFunc
		p.ctx, end = context.WithCancel(ctx)
		defer end() // ends the tools still running for the call
		p.tools = tools
		msg.Header.Set(hdrTools, a.inbox+"."+toolToken(token))
	} else {
		msg.Header.Del(hdrTools)
	}
	a.mu.Lock()
	a.pending[token] = p
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.pending, token)
		a.mu.Unlock()
	}()
	msg.Reply = a.inbox + "." + token
	if err := a.publish(ctx, op, msg); err != nil {
		return nil, err
	}

	// The host has missedBeats periods to speak of the call; then it is
	// suspected, and probed when known, and has as long again to answer.
	// So a host is given up on evidence (no responders for its subject,
	// or its word that it has no such call), or after two windows of
	// silence, never for one hiccup of a busy machine.
	beat := a.beat
	silence := time.NewTimer(missedBeats * beat)
	defer silence.Stop()
	suspected := false
	heard := func() {
		suspected = false
		silence.Reset(missedBeats * beat)
	}
	var taken uint64
	grants := credit.NewGrants(o.window)
	ctxEnded := false // take refused a chunk because ctx ended, not because the consumer left
	take := func(m *nats.Msg) bool {
		if ctx.Err() != nil {
			ctxEnded = true // no chunk after the deadline or a cancel
			return false
		}
		if !o.each(m) {
			return false
		}
		// The consumer's own time is not the host's silence.
		heard()
		taken++
		if n := grants.Took(); n > 0 {
			a.grant(p, msg.Reply, n)
		}
		return true
	}
	final := func(m *nats.Msg) (*nats.Msg, error) {
		for len(p.chunks) > 0 { // every chunk came before the reply
			if !take(<-p.chunks) {
				a.cancelRemote(p, msg.Reply)
				return nil, stopErr(ctx, ctxEnded, a.name, op)
			}
		}
		if o.window > 0 && m.Header.Get(hdrNATS) == "" && headerUint(m.Header, hdrChunks) != taken {
			return nil, errorf(adapter.CodeInternal, a.name, op, "the host's reply counts %d chunks, the caller received %d: the stream lost chunks", headerUint(m.Header, hdrChunks), taken)
		}
		return m, nil
	}
	for {
		select {
		case m := <-p.final:
			return final(m)
		case m := <-p.chunks:
			heard()
			if !take(m) {
				a.cancelRemote(p, msg.Reply)
				return nil, stopErr(ctx, ctxEnded, a.name, op)
			}
		case <-p.broken:
			a.cancelRemote(p, msg.Reply)
			return nil, errorf(adapter.CodeInternal, a.name, op, "%s", p.why)
		case period := <-p.beat:
			if period > 0 {
				beat = period
			}
			heard()
		case m := <-p.probe:
			// A reply sent before the answer came before it: it counts.
			if m, ok := ready(p.final); ok {
				return final(m)
			}
			h := p.host.Load()
			switch {
			case h == nil:
			case m.Header.Get(hdrNATS) == "503":
				// NATS's own status: the server found no subscriber.
				return nil, errorf(adapter.CodeUnavailable, a.name, op, "host %q, which was serving the call, is gone: nothing serves its subject", *h)
			case m.Header.Get(hdrHost) != *h:
				// Only the host probed speaks for the call: another
				// host has never had it.
			case m.Header.Get(hdrStatus) == statusUnknown:
				return nil, errorf(adapter.CodeUnavailable, a.name, op, "host %q no longer has the call: it ended, but its reply never reached the caller", *h)
			case m.Header.Get(hdrStatus) == statusWorking:
				heard()
			}
			// Another answer (a host that knows no probes answers with an
			// error) says neither: the window decides.
		case <-silence.C:
			if m, ok := ready(p.final); ok {
				return final(m)
			}
			if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
				// The silence ends with the deadline: the deadline is
				// what the caller asked for.
				a.cancelRemote(p, msg.Reply)
				return nil, adapter.Wrap(context.DeadlineExceeded, a.name, op)
			}
			if !suspected {
				suspected = true
				a.probe(p, msg.Reply)
				silence.Reset(missedBeats * beat)
				continue
			}
			if h := p.host.Load(); h != nil {
				return nil, errorf(adapter.CodeUnavailable, a.name, op, "host %q fell silent for %v while serving the call, and did not answer a probe; it may have died", *h, 2*missedBeats*beat)
			}
			return nil, errorf(adapter.CodeUnavailable, a.name, op, "no reply nor heartbeat from a host for %v after sending the call; its host may have died", 2*missedBeats*beat)
		case <-ctx.Done():
			a.cancelRemote(p, msg.Reply)
			return nil, adapter.Wrap(ctx.Err(), a.name, op)
		case <-a.done:
			a.cancelRemote(p, msg.Reply)
			return nil, wire.Closed(a.name, op)
		}
	}
}

// ready returns a value waiting in c, if any.
func ready[T any](c chan T) (T, bool) {
	select {
	case v := <-c:
		return v, true
	default:
		var zero T
		return zero, false
	}
}

// stopErr is why a stream stopped taking chunks: its context, or its
// consumer.
func stopErr(ctx context.Context, ctxEnded bool, name, op string) error {
	if ctxEnded {
		return adapter.Wrap(ctx.Err(), name, op)
	}
	return errStopped
}

// cancelRemote tells the host working on a call, when known, to stop it.
// A host not yet known is told when it first speaks of the call (see
// onReply).
func (a *Adapter) cancelRemote(p *pending, reply string) {
	if h := p.host.Load(); h != nil {
		a.tell(a.subj.hostCancel(*h), "", []byte(reply))
	}
}

// probe asks the host of a call that fell silent whether it still has
// the call, on the host's cancel subject (with no call to cancel in the
// body: a host that knows no probes ignores it), which the host takes
// until the end of its drain; the answer comes on the call's probe
// subject (probeSubject): a heartbeat, statusUnknown, or NATS's
// no-responders status when the host is gone. A call whose host is not
// known yet is not probed.
func (a *Adapter) probe(p *pending, reply string) {
	h := p.host.Load()
	if h == nil {
		return
	}
	m := nats.NewMsg(a.subj.hostCancel(*h))
	m.Reply = probeSubject(reply)
	m.Header.Set(hdrProbe, reply)
	a.tellMsg(m)
}

// tell publishes data to subject (with the reply subject reply) without
// waiting: cancellations, credit and probes never hold a call, whose
// caller waits on its context only.
func (a *Adapter) tell(subject, reply string, data []byte) {
	m := nats.NewMsg(subject)
	m.Reply, m.Data = reply, data
	a.tellMsg(m)
}

func (a *Adapter) tellMsg(m *nats.Msg) {
	go func() { _ = a.nc.PublishMsg(m) }()
}

// publish sends a call's request, waiting at most until ctx ends or the
// adapter closes: nats.go holds a publish for as long as its connection
// is busy (a reconnection's handshake, a write to a stalled socket), and
// a call must end by its deadline however long that is. A request that
// goes out after its caller left is cancelled when its host first speaks
// of it (see onReply).
func (a *Adapter) publish(ctx context.Context, op string, m *nats.Msg) error {
	sent := make(chan error, 1)
	go func() { sent <- a.nc.PublishMsg(m) }()
	select {
	case err := <-sent:
		if err == nil {
			return nil
		}
		if _, closed := ready(a.done); closed {
			return wire.Closed(a.name, op) // Close closed the connection under the call
		}
		return a.publishError(op, err)
	case <-ctx.Done():
		return adapter.Wrap(ctx.Err(), a.name, op)
	case <-a.done:
		return wire.Closed(a.name, op)
	}
}

func (a *Adapter) publishError(op string, err error) error {
	code := adapter.CodeUnavailable
	if errors.Is(err, nats.ErrMaxPayload) {
		code = adapter.CodeResourceExhausted
		err = fmt.Errorf("the request is over the server's payload limit of %d bytes: %w", a.payloadLimit(), err)
	}
	return &adapter.Error{Code: code, Op: op, Adapter: a.name, Err: err}
}

// onReply routes a message on the reply inbox to its call. A reply whose
// call has ended (a late reply to a timed-out call) is dropped; a
// heartbeat or a chunk of a call the caller left (cancelled before its
// host was known) is answered with a cancellation to that host.
func (a *Adapter) onReply(m *nats.Msg) {
	token := m.Subject[len(a.inbox)+1:]
	call, isTool := strings.CutPrefix(token, toolPrefix)
	if isTool {
		token = call
	}
	call, isProbe := strings.CutPrefix(token, probePrefix)
	if isProbe {
		token = call
	}
	a.mu.Lock()
	p := a.pending[token]
	a.mu.Unlock()
	switch {
	case isTool:
		a.runTool(p, m)
		return
	case p == nil && !isProbe:
		if h := m.Header.Get(hdrHost); h != "" && m.Header.Get(hdrStatus) != "" && tokenRE.MatchString(h) {
			a.tell(a.subj.hostCancel(h), "", []byte(m.Subject))
		}
		return
	case p == nil:
		return
	case isProbe:
		select {
		case p.probe <- m:
		default:
		}
		return
	case m.Header.Get(hdrStatus) == statusChunk:
		a.onChunk(p, m)
		return
	}
	if m.Header.Get(hdrStatus) != "" {
		if h := m.Header.Get(hdrHost); h != "" {
			p.host.Store(&h)
		}
		period := time.Duration(headerUint(m.Header, hdrBeatMs)) * time.Millisecond
		select {
		case p.beat <- period:
		default:
		}
		return
	}
	select {
	case p.final <- m:
	default:
	}
}

// decode turns a final reply into the call's result, and learns the
// session's host.
func (a *Adapter) decode(op, session, host string, m *nats.Msg) (adapter.Response, error) {
	served := m.Header.Get(hdrHost)
	if session != "" && a.affinity != AffinityNone && host == "" && served != "" {
		a.remember(session, served)
	}
	a.raiseStateRev(headerUint(m.Header, hdrStateRev))
	if err := replyError(m, a.name, op, "host "+strconv.Quote(served)); err != nil {
		return adapter.Response{}, err
	}
	worker := served
	if w := m.Header.Get(hdrWorker); w != "" {
		worker += "/" + w
	}
	return adapter.Response{Result: m.Data, Worker: worker}, nil
}

func (a *Adapter) remember(session, host string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.sessions[session]; !ok && len(a.sessions) >= maxSessions {
		for k := range a.sessions {
			delete(a.sessions, k)
			break
		}
	}
	a.sessions[session] = host
}

func (a *Adapter) forget(session, host string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions[session] == host {
		delete(a.sessions, session)
	}
}

// Close ends the calls in flight with ErrClosed, stops listening for
// replies, and runs OnClose. It does not stop any host.
func (a *Adapter) Close(context.Context) error {
	a.closeOnce.Do(func() {
		close(a.done)
		_ = a.sub.Unsubscribe()
		_ = a.annSub.Unsubscribe()
		a.toolRuns.Wait()
		if a.onClose != nil {
			a.onClose()
		}
	})
	return nil
}
