package remote

// The worker host's lifecycle: Serve, its options and service, and Close.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/credit"
)

// HostOptions configure a worker host.
type HostOptions struct {
	// ID names the host in subjects, replies and logs: letters, digits,
	// '_' and '-'. Empty means "<hostname>-<pid>".
	ID string

	// Prefix is the subject prefix to serve under. Empty means "dspgo".
	Prefix string

	// QueueGroup is the queue group of "<prefix>.call": hosts in one
	// group share the requests. Empty means "dspgo-workers".
	QueueGroup string

	// Heartbeat is the period at which the host tells the callers of
	// calls still running that it is alive. Zero means 1 s.
	Heartbeat time.Duration

	// Replicas is the number of copies of the shared state bucket when
	// the host creates it (1 on a single server; 3 on a cluster of three
	// or more, so the state outlives one server). Zero means 1.
	Replicas int

	// Stats, when set, gives the "data" of the host's endpoints in
	// "$SRV.STATS.dspgo", such as the pool's Stats. Nil means the
	// adapter's common counters (adapter.StatsOf).
	Stats func() any

	// Version is the service version announced by "$SRV.INFO", a
	// semantic version. Empty means "0.1.0".
	Version string

	// LMBaseURLs are the LM endpoints a configure_lm from a caller may
	// name as base_url (none named means DefaultLMBaseURL): the only
	// endpoints this host's workers send their API key to. A
	// configure_lm naming another, whether called, broadcast or found in
	// the shared state, is refused with CodeFailedPrecondition, logged,
	// and never applied. URLs are compared as the worker uses them:
	// exactly, but for trailing slashes. Nil means DefaultLMBaseURL only;
	// remoteconfig.HostOptions adds the host's own lm.base_url.
	LMBaseURLs []string

	// LMAPIKeyEnv is the only variable a configure_lm from a caller may
	// name as api_key_env (none named means DefaultLMAPIKeyEnv), so that
	// a caller cannot choose which of the host's variables is sent as
	// the key; another is refused as LMBaseURLs says. Empty means
	// DefaultLMAPIKeyEnv.
	LMAPIKeyEnv string

	// LMImageURLs lets a configure_lm from a caller set image_urls, so
	// that this host's workers send images given by URL to the LM, whose
	// server fetches them wherever they point.
	// False, the default, refuses one that sets it, as LMBaseURLs says;
	// remoteconfig.HostOptions sets it from the host's own lm.image_urls.
	LMImageURLs bool

	// Restore re-applies the host's own configuration of its backend (the
	// LM it was started with) after a caller's reset dropped it; the host
	// then re-applies the broadcasts of the shared state, so that one
	// caller's reset leaves every other caller's LM configuration as it
	// was. Nil means the host has none of its own: the broadcasts only.
	Restore func(ctx context.Context) error

	// MaxInFlightBytes bounds the bytes of the requests the host holds
	// while they run or wait for a worker (their arguments): a request
	// past it is refused at once with CodeResourceExhausted, so callers
	// cannot grow the host's memory without bound (a pool's queue holds
	// a thousand requests, each up to the server's payload limit). Each
	// call counts its request's bytes, headers included, and 8 KiB for
	// what the host keeps per call, so that many small calls are bounded
	// too (32,768 at the default). One request is always taken, whatever
	// its size; a call's bytes stop counting before its reply is sent,
	// so a caller's next request is never refused for the call it was
	// answered. Zero means
	// DefaultMaxInFlightBytes; negative means no bound.
	MaxInFlightBytes int64

	// Logger receives the host's logs. Nil discards them.
	Logger *slog.Logger
}

// DefaultMaxInFlightBytes is the default HostOptions.MaxInFlightBytes:
// 256 MiB.
const DefaultMaxInFlightBytes = 256 << 20

// Host serves an adapter to remote callers through NATS. Make one with
// Serve; Close drains it.
type Host struct {
	id   string
	a    adapter.Adapter
	nc   *nats.Conn // replies, heartbeats and the state bucket
	sc   *nats.Conn // the service's subscriptions only, so that draining it drains exactly them
	svc  micro.Service
	kv   jetstream.KeyValue
	subj subjects
	beat time.Duration
	lm   lmPolicy
	log  *slog.Logger

	// callCtx ends the calls in flight when Close gives up waiting.
	callCtx    context.Context
	cancelAll  context.CancelFunc
	watcher    jetstream.KeyWatcher
	discSub    *nats.Subscription
	annMu      sync.Mutex  // guards the answers to discover requests (discovered)
	annTokens  float64     // the answers the host may give at once
	annRefill  time.Time   // when annTokens was last counted; zero: never
	annPending bool        // one waits for annTimer
	annTimer   *time.Timer // the pending one's
	annStopped bool        // no more go out
	ctlSubs    []*nats.Subscription
	watching   bool // the watch goroutine runs
	beating    bool // the heartbeat goroutine runs
	watchDone  chan struct{}
	beatDone   chan struct{}
	stopBeat   chan struct{}
	scClosed   chan struct{}
	closeOnce  sync.Once
	closeErr   error
	counter    adapter.CallCounter
	inFlightMu sync.Mutex
	inFlight   map[string]*hostCall            // by reply subject
	bytes      int64                           // of the requests in inFlight not yet answered
	maxBytes   int64                           // HostOptions.MaxInFlightBytes, defaulted
	restore    func(ctx context.Context) error // HostOptions.Restore
	idle       *sync.Cond                      // signalled when inFlight empties
	serving    sync.WaitGroup                  // the calls' goroutines: one may have left inFlight to a later call of its reply subject

	// Broadcast state: applied under bmu, so the host's own broadcasts and
	// the watch never interleave.
	bmu      sync.Mutex
	applied  map[string]uint64 // broadcast key → newest revision applied
	records  map[string][]byte // broadcast key → the record applied, written again if a caller deletes it
	namedLMs int               // keys of named LMs in applied

	stateWait atomic.Int64 // how long a call waits for a revision, ns: stateWait (tests change it)

	revMu  sync.Mutex
	rev    uint64        // newest broadcast revision the watch has seen
	revSig chan struct{} // closed and replaced when rev advances

	lastMu sync.Mutex
	last   uint64    // the bucket's last revision, as lastRevision last heard it
	lastAt time.Time // when; zero: never
	lastOK bool      // the servers said
}

type hostCall struct {
	cancel  context.CancelFunc
	started time.Time
	credit  *credit.Window // a streamed call's; nil otherwise
	bytes   int64          // its request's and callBytes; zero once answered
}

// answered reports whether the call's reply is on its way (its bytes let
// go): another call may then take its reply subject. inFlightMu is held.
func (c *hostCall) answered() bool { return c.bytes == 0 }

// callBytes is what a call counts toward HostOptions.MaxInFlightBytes
// beside its request: the host's own cost of a call (its goroutine,
// context and state), so that the bound also bounds the number of calls.
const callBytes = 8 << 10

// Serve starts serving a on nc. It creates (or opens) the shared state
// bucket, applies every broadcast recorded there to a before it takes any
// request, then registers the micro service. The host uses nc for replies
// and state, and a second connection with nc's options for its
// subscriptions. It neither closes a nor nc. A server that refuses the
// host's subscriptions or its requests to the shared state (its user
// lacks the host role's permissions, see Permissions) fails Serve with
// CodeFailedPrecondition, naming the subject.
func Serve(ctx context.Context, nc *nats.Conn, a adapter.Adapter, opts HostOptions) (*Host, error) {
	h := &Host{
		id: opts.ID, a: a, nc: nc, subj: subjects{opts.Prefix}, beat: opts.Heartbeat, log: opts.Logger,
		inFlight: map[string]*hostCall{}, applied: map[string]uint64{}, records: map[string][]byte{}, revSig: make(chan struct{}),
		watchDone: make(chan struct{}), beatDone: make(chan struct{}), stopBeat: make(chan struct{}), scClosed: make(chan struct{}),
	}
	h.idle = sync.NewCond(&h.inFlightMu)
	if err := h.defaults(&opts); err != nil {
		return nil, err
	}
	h.callCtx, h.cancelAll = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			h.abort()
		}
	}()
	if err := h.checkUnique(ctx); err != nil {
		return nil, err
	}
	if err := h.openState(ctx, opts.Replicas); err != nil {
		return nil, err
	}
	if err := h.startService(opts); err != nil {
		return nil, err
	}
	before := nc.LastError()
	disc, err := nc.Subscribe(h.subj.discover(), func(*nats.Msg) { h.discovered() })
	if err != nil {
		return nil, h.unavailable("serve", fmt.Errorf("subscribing to discovery: %w", err))
	}
	h.discSub = disc
	// A call's cancellation, credit and probes are taken on nc (ctlSubs),
	// not by the service: they must reach the calls still running while
	// the host drains, after the service stopped taking calls.
	for _, ctl := range []struct {
		subject string
		handler nats.MsgHandler
	}{{h.subj.hostCancel(h.id), h.cancelCall}, {h.subj.hostCredit(h.id), h.grantCredit}} {
		sub, err := nc.Subscribe(ctl.subject, ctl.handler)
		if err != nil {
			return nil, h.unavailable("serve", fmt.Errorf("subscribing to %s: %w", ctl.subject, err))
		}
		h.ctlSubs = append(h.ctlSubs, sub)
	}
	// The server has the subscriptions once both connections flush
	// (within ctx, at most 10 s each): a call made after Serve returns
	// finds this host. A subscription the server refused is the host's
	// when it is on the service's connection (new: no error before), or
	// one the host made on nc.
	ours := map[string]bool{h.discSub.Subject: true}
	for _, sub := range h.ctlSubs {
		ours[sub.Subject] = true
	}
	for _, c := range []struct {
		nc     *nats.Conn
		before error
	}{{h.sc, nil}, {nc, before}} {
		refused, err := flushRefused(ctx, c.nc, c.before, 10*time.Second)
		if err != nil {
			return nil, h.unavailable("serve", fmt.Errorf("flushing subscriptions: %w", err))
		}
		if refused != "" && (c.nc == h.sc || ours[refused]) {
			return nil, subscriptionRefused(Name, "serve", refused, "a host's user needs the host role's permissions (remote.Permissions)")
		}
	}
	h.beating = true
	go h.heartbeats()
	ok = true
	h.log.Info("worker host serving", "host", h.id, "subject", h.subj.call(), "queue_group", opts.QueueGroup)
	return h, nil
}

func (h *Host) defaults(opts *HostOptions) error {
	if h.a == nil || h.nc == nil {
		return errorf(adapter.CodeInvalidArgument, Name, "serve", "an adapter and a connection are required")
	}
	if h.id == "" {
		name, _ := os.Hostname()
		h.id = fmt.Sprintf("%s-%d", name, os.Getpid())
		h.id = strings.Map(func(r rune) rune {
			if tokenRE.MatchString(string(r)) {
				return r
			}
			return '_'
		}, h.id)
	}
	if !tokenRE.MatchString(h.id) {
		return errorf(adapter.CodeInvalidArgument, Name, "serve", "host id %q may hold only letters, digits, '_' and '-'", h.id)
	}
	if h.subj.prefix == "" {
		h.subj.prefix = DefaultPrefix
	}
	if err := checkPrefix(h.subj.prefix); err != nil {
		return errorf(adapter.CodeInvalidArgument, Name, "serve", "%v", err)
	}
	if opts.QueueGroup == "" {
		opts.QueueGroup = DefaultQueueGroup
	}
	if h.beat <= 0 {
		h.beat = DefaultHeartbeat
	}
	h.restore = opts.Restore
	h.stateWait.Store(int64(stateWait))
	h.maxBytes = opts.MaxInFlightBytes
	if h.maxBytes == 0 {
		h.maxBytes = DefaultMaxInFlightBytes
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Version == "" {
		opts.Version = "0.1.0"
	}
	lm, err := newLMPolicy(opts.LMBaseURLs, opts.LMAPIKeyEnv, opts.LMImageURLs)
	if err != nil {
		return errorf(adapter.CodeInvalidArgument, Name, "serve", "%v", err)
	}
	h.lm = lm
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.log = h.log.With("host", h.id)
	return nil
}

// checkUnique refuses an id another live host serves under: their
// sessions would mix.
func (h *Host) checkUnique(ctx context.Context) error {
	m := nats.NewMsg(h.subj.hostCall(h.id))
	m.Header.Set(hdrCommand, command.Ping)
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r, err := h.nc.RequestMsgWithContext(ctx, m)
	if err == nil && r.Header.Get(hdrHost) == h.id {
		return errorf(adapter.CodeAlreadyExists, Name, "serve", "host id %q is already serving %s; give each host its own id", h.id, h.subj.prefix)
	}
	return nil // no responders, or no answer in time: the id is free
}

// ID returns the host's id.
func (h *Host) ID() string { return h.id }

// Stats returns the host's counters: calls served, failed and in flight.
func (h *Host) Stats() adapter.Stats {
	s := adapter.Stats{Adapter: "host:" + h.id}
	h.counter.Fill(&s)
	return s
}

// startService registers the micro service on a connection of its own.
func (h *Host) startService(opts HostOptions) error {
	copts := h.nc.Opts
	copts.Name = "dspgo-host-" + h.id
	copts.ClosedCB = func(*nats.Conn) { close(h.scClosed) }
	copts.DisconnectedErrCB, copts.ReconnectedCB, copts.DiscoveredServersCB = nil, nil, nil
	copts.AsyncErrorCB = asyncErrors(h.log) // not nats.go's default, which prints to stderr
	copts.ConnectedCB, copts.LameDuckModeHandler = nil, nil
	sc, err := copts.Connect()
	if err != nil {
		return h.unavailable("serve", fmt.Errorf("connecting the service: %w", err))
	}
	h.sc = sc
	stats := opts.Stats
	if stats == nil {
		stats = func() any { s, _ := adapter.StatsOf(h.a); return s }
	}
	svc, err := micro.AddService(sc, micro.Config{
		Name: ServiceName, Version: opts.Version, QueueGroup: opts.QueueGroup,
		Description: "dspgo worker host: runs DSPy-style programs on its workers",
		Metadata:    map[string]string{"host": h.id, "prefix": h.subj.prefix, "adapter": h.a.Name(), "heartbeat": h.beat.String()},
		StatsHandler: func(*micro.Endpoint) any {
			return map[string]any{"host": h.Stats(), "backend": stats()}
		},
	})
	if err != nil {
		return h.unavailable("serve", fmt.Errorf("registering the service: %w", err))
	}
	h.svc = svc
	for _, e := range []struct {
		name, subject string
		handler       micro.HandlerFunc
		opts          []micro.EndpointOpt
	}{
		{"call", h.subj.call(), h.take, nil},
		{"host-call", h.subj.hostCall(h.id), h.take, []micro.EndpointOpt{micro.WithEndpointQueueGroupDisabled()}},
	} {
		if err := svc.AddEndpoint(e.name, e.handler, append(e.opts, micro.WithEndpointSubject(e.subject))...); err != nil {
			return h.unavailable("serve", fmt.Errorf("adding endpoint %q: %w", e.subject, err))
		}
	}
	return nil
}

func (h *Host) unavailable(op string, err error) error {
	return &adapter.Error{Code: adapter.CodeUnavailable, Op: op, Adapter: Name, Err: err}
}

// Close drains the host: it stops taking requests (the other hosts take
// them), lets the calls in flight finish and answer, then stops. When
// ctx ends first, the calls still running are cancelled and answered
// with CodeCanceled. Close does not close the adapter or the connection
// given to Serve. It is idempotent.
func (h *Host) Close(ctx context.Context) error {
	h.closeOnce.Do(func() {
		h.log.Info("worker host draining")
		if err := h.svc.Stop(); err != nil {
			h.log.Warn("stopping the service", "err", err)
		}
		// Draining the service's own connection delivers the requests
		// it already holds, then closes it: after that none can arrive.
		if err := h.sc.Drain(); err == nil {
			select {
			case <-h.scClosed:
			case <-ctx.Done():
				h.sc.Close()
			}
		} else {
			h.sc.Close()
		}
		stop := context.AfterFunc(ctx, func() {
			h.cancelAll()
			h.inFlightMu.Lock()
			h.idle.Broadcast()
			h.inFlightMu.Unlock()
		})
		h.inFlightMu.Lock()
		for len(h.inFlight) > 0 && ctx.Err() == nil {
			h.idle.Wait()
		}
		h.inFlightMu.Unlock()
		stop()
		// Calls cancelled above still answer: wait for them briefly
		// (each call's goroutine ends after its reply, which covers a
		// call that left inFlight to a later one of its reply subject).
		h.serving.Wait()
		if ctx.Err() != nil {
			h.closeErr = adapter.Wrap(ctx.Err(), Name, "close")
		}
		h.abort()
		h.log.Info("worker host stopped")
	})
	return h.closeErr
}

// abort stops the watch and the heartbeats and closes the service
// connection; it is the end of Close, and the clean-up of a failed Serve.
func (h *Host) abort() {
	h.cancelAll()
	if h.discSub != nil {
		_ = h.discSub.Unsubscribe()
	}
	h.stopDiscovered()
	for _, sub := range h.ctlSubs {
		_ = sub.Unsubscribe()
	}
	if h.watcher != nil {
		_ = h.watcher.Stop()
		if h.watching {
			<-h.watchDone
		}
	}
	if h.beating {
		close(h.stopBeat)
		<-h.beatDone
		h.announce(true)
	}
	if h.sc != nil {
		h.sc.Close()
	}
}
