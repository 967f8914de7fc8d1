package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/credit"
	"github.com/dspgo/dspgo/internal/program"
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
	// registry.HostOptions adds the host's own lm.base_url.
	LMBaseURLs []string

	// LMAPIKeyEnv is the only variable a configure_lm from a caller may
	// name as api_key_env (none named means DefaultLMAPIKeyEnv), so that
	// a caller cannot choose which of the host's variables is sent as
	// the key; another is refused as LMBaseURLs says. Empty means
	// DefaultLMAPIKeyEnv.
	LMAPIKeyEnv string

	// Logger receives the host's logs. Nil discards them.
	Logger *slog.Logger
}

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
	inFlight   map[string]*hostCall // by reply subject
	idle       *sync.Cond           // signalled when inFlight empties

	// Broadcast state: applied under bmu, so the host's own broadcasts and
	// the watch never interleave.
	bmu     sync.Mutex
	applied map[string]uint64 // broadcast key → newest revision applied

	revMu  sync.Mutex
	rev    uint64        // newest broadcast revision the watch has seen
	revSig chan struct{} // closed and replaced when rev advances
}

type hostCall struct {
	cancel  context.CancelFunc
	started time.Time
	credit  *credit.Window // a streamed call's; nil otherwise
}

// Serve starts serving a on nc. It creates (or opens) the shared state
// bucket, applies every broadcast recorded there to a before it takes any
// request, then registers the micro service. The host uses nc for replies
// and state, and a second connection with nc's options for its
// subscriptions. It neither closes a nor nc.
func Serve(ctx context.Context, nc *nats.Conn, a adapter.Adapter, opts HostOptions) (*Host, error) {
	h := &Host{
		id: opts.ID, a: a, nc: nc, subj: subjects{opts.Prefix}, beat: opts.Heartbeat, log: opts.Logger,
		inFlight: map[string]*hostCall{}, applied: map[string]uint64{}, revSig: make(chan struct{}),
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
	disc, err := nc.Subscribe(h.subj.discover(), func(*nats.Msg) { h.announce(false) })
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
	// The server has the subscriptions once both connections flush: a
	// call made after Serve returns finds this host.
	for _, c := range []*nats.Conn{h.sc, nc} {
		if err := c.FlushTimeout(flushTimeout(ctx)); err != nil {
			return nil, h.unavailable("serve", fmt.Errorf("flushing subscriptions: %w", err))
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
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Version == "" {
		opts.Version = "0.1.0"
	}
	lm, err := newLMPolicy(opts.LMBaseURLs, opts.LMAPIKeyEnv)
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
	m.Header.Set(hdrCommand, program.CmdPing)
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r, err := h.nc.RequestMsgWithContext(ctx, m)
	if err == nil && r.Header.Get(hdrHost) == h.id {
		return errorf(adapter.CodeAlreadyExists, Name, "serve", "host id %q is already serving %s; give each host its own id", h.id, h.subj.prefix)
	}
	return nil // no responders, or no answer in time: the id is free
}

// flushTimeout is the time ctx leaves, or 10 s without a deadline.
func flushTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 10 * time.Second
}

// ID returns the host's id.
func (h *Host) ID() string { return h.id }

// Stats returns the host's counters: calls served, failed and in flight.
func (h *Host) Stats() adapter.Stats {
	s := adapter.Stats{Adapter: "host:" + h.id}
	h.counter.Fill(&s)
	return s
}

// openState opens the shared state bucket and replays its broadcasts,
// within ctx or, when it has no deadline, 30 s.
func (h *Host) openState(ctx context.Context, replicas int) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	var kv jetstream.KeyValue
	err := retry(ctx, func(ctx context.Context) (err error) { kv, err = openBucket(ctx, h.nc, h.subj, replicas); return err })
	if err != nil {
		return h.unavailable("serve", err)
	}
	h.kv = kv
	var w jetstream.KeyWatcher
	err = retry(ctx, func(context.Context) (err error) { w, err = kv.Watch(h.callCtx, "broadcast.>"); return err })
	if err != nil {
		return h.unavailable("serve", fmt.Errorf("watching the state bucket %q: %w", h.subj.bucket(), err))
	}
	h.watcher = w
	// The recorded broadcasts come first, then nil: apply them before
	// serving, so no call ever meets an older configuration.
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return h.unavailable("serve", errors.New("the state watch ended"))
			}
			if e == nil {
				h.watching = true
				go h.watch()
				return nil
			}
			if err := h.applyEntry(ctx, e); err != nil {
				if !refused(err) {
					return err
				}
				// A broadcast recorded without a host to check it
				// (see Adapter.Broadcast) may be invalid: it must not
				// keep every host from starting.
				h.log.Error("a recorded broadcast was refused; skipped", "key", e.Key(), "revision", e.Revision(), "err", err)
			}
		case <-ctx.Done():
			return adapter.Wrap(ctx.Err(), Name, "serve")
		}
	}
}

// retry runs op until it succeeds, fails for a reason other than
// JetStream being briefly unable to answer (a stream still electing its
// leader, a server of the cluster lost), or ctx ends. Each attempt gets
// a context of its own that ends after attemptTimeout: a JetStream
// request whose answer is lost (no leader yet to answer it) waits until
// its context ends, and must not take the whole of ctx with it.
func retry(ctx context.Context, op func(context.Context) error) error {
	wait := 25 * time.Millisecond
	for {
		attempt, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := op(attempt)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		}
		wait = min(2*wait, time.Second)
	}
}

// attemptTimeout bounds one attempt of retry: JetStream's own default
// time-out of a request.
const attemptTimeout = 5 * time.Second

// transient reports a JetStream failure that a moment may cure; a
// deadline here is JetStream's own time-out of one request (retry stops
// when its own context ends).
func transient(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, context.DeadlineExceeded)
}

// refused reports an error that says the request itself is wrong, not
// that the host failed.
func refused(err error) bool {
	switch adapter.CodeOf(err) {
	case adapter.CodeInvalidArgument, adapter.CodeUnimplemented, adapter.CodeNotFound, adapter.CodeFailedPrecondition:
		return true
	}
	return false
}

// openBucket opens the deployment's shared state bucket, creating it with
// the given replicas when it does not exist.
func openBucket(ctx context.Context, nc *nats.Conn, subj subjects, replicas int) (jetstream.KeyValue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	if replicas <= 0 {
		replicas = 1
	}
	bucket := subj.bucket()
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: bucket, Description: "dspgo state shared by every worker host", History: 1, Replicas: replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening the state bucket %q: %w", bucket, err)
	}
	return kv, nil
}

// watch applies the broadcasts other hosts record, until Close.
func (h *Host) watch() {
	defer close(h.watchDone)
	for e := range h.watcher.Updates() {
		if e == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(h.callCtx, time.Minute)
		if err := h.applyEntry(ctx, e); err != nil {
			h.log.Error("applying a broadcast from the shared state failed", "key", e.Key(), "revision", e.Revision(), "err", err)
		}
		cancel()
	}
}

// applyEntry applies one recorded broadcast unless the host has applied
// a newer one of the same key, and records that the watch reached it.
func (h *Host) applyEntry(ctx context.Context, e jetstream.KeyValueEntry) error {
	defer h.advance(e.Revision())
	if e.Operation() != jetstream.KeyValuePut {
		return nil
	}
	h.bmu.Lock()
	defer h.bmu.Unlock()
	if h.applied[e.Key()] >= e.Revision() {
		return nil
	}
	cmd, _, _ := strings.Cut(strings.TrimPrefix(e.Key(), "broadcast."), ".")
	args, err := h.checkBroadcast(cmd, e.Value())
	if err != nil {
		return err
	}
	if key := broadcastKey(cmd, args); key != e.Key() {
		// A named LM under another name's key: applying it would
		// configure a name the record does not say.
		err := errorf(adapter.CodeInvalidArgument, Name, cmd, "the shared state holds under %q a broadcast whose key is %q", e.Key(), key)
		h.log.Warn("refused a broadcast", "command", cmd, "err", err)
		return err
	}
	if err := h.applyLocal(ctx, adapter.Request{Command: cmd, Args: args}); err != nil {
		return err
	}
	h.applied[e.Key()] = e.Revision()
	h.log.Debug("applied a broadcast from the shared state", "command", cmd, "revision", e.Revision())
	return nil
}

// checkBroadcast returns the arguments of a broadcast the host may apply:
// only the commands of broadcastCommands, and a configure_lm only as its
// LM policy allows. A refusal is logged here, wherever the broadcast came
// from.
func (h *Host) checkBroadcast(cmd string, args []byte) ([]byte, error) {
	if !slices.Contains(broadcastCommands, cmd) {
		err := errorf(adapter.CodeInvalidArgument, Name, cmd, "command %q cannot be broadcast (only %s)", cmd, strings.Join(broadcastCommands, ", "))
		h.log.Warn("refused a broadcast", "command", cmd, "err", err)
		return nil, err
	}
	return h.checkLM(cmd, args)
}

// checkLM returns the arguments of a configure_lm the host may apply (see
// lmPolicy.check), and logs a refusal; other commands pass unchanged.
func (h *Host) checkLM(cmd string, args []byte) ([]byte, error) {
	if cmd != program.CmdConfigureLM {
		return args, nil
	}
	if err := checkLMName(args); err != nil {
		h.log.Warn("refused a configure_lm", "err", err)
		return nil, err
	}
	out, err := h.lm.check(h.id, args)
	if err != nil {
		h.log.Warn("refused a configure_lm", "err", err)
		return nil, err
	}
	return out, nil
}

// applyLocal runs a broadcast on every local worker.
func (h *Host) applyLocal(ctx context.Context, req adapter.Request) error {
	if b, ok := h.a.(adapter.Broadcaster); ok {
		return b.Broadcast(ctx, req)
	}
	_, err := h.a.Call(ctx, req)
	return err
}

func (h *Host) advance(rev uint64) {
	h.revMu.Lock()
	defer h.revMu.Unlock()
	if rev > h.rev {
		h.rev = rev
		close(h.revSig)
		h.revSig = make(chan struct{})
	}
}

// waitState waits until the watch has reached revision rev.
func (h *Host) waitState(ctx context.Context, rev uint64) error {
	for {
		h.revMu.Lock()
		cur, sig := h.rev, h.revSig
		h.revMu.Unlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-sig:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the shared state to reach revision %d (at %d): %w", rev, cur, ctx.Err())
		}
	}
}

// startService registers the micro service on a connection of its own.
func (h *Host) startService(opts HostOptions) error {
	copts := h.nc.Opts
	copts.Name = "dspgo-host-" + h.id
	copts.ClosedCB = func(*nats.Conn) { close(h.scClosed) }
	copts.DisconnectedErrCB, copts.ReconnectedCB, copts.AsyncErrorCB, copts.DiscoveredServersCB = nil, nil, nil, nil
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

// take registers a request and serves it on a goroutine of its own: the
// subscription delivers one message at a time.
func (h *Host) take(req micro.Request) {
	reply := req.Reply()
	if reply == "" {
		return // a publish without a reply subject cannot be answered
	}
	if !isInbox(reply) {
		// The host answers only inboxes: a reply subject elsewhere (the
		// state bucket, another host's subjects) would make it write
		// there on the sender's behalf.
		h.log.Warn("dropped a request whose reply subject is not an inbox", "reply", reply, "command", req.Headers().Get(hdrCommand))
		return
	}
	hdr := req.Headers()
	var ctx context.Context
	var cancel context.CancelFunc
	if n, err := strconv.ParseInt(hdr.Get(hdrDeadline), 10, 64); err == nil && n > 0 {
		ctx, cancel = context.WithTimeout(h.callCtx, time.Duration(n)*time.Millisecond)
	} else {
		ctx, cancel = context.WithCancel(h.callCtx)
	}
	hc := &hostCall{cancel: cancel, started: time.Now()}
	if w, err := strconv.Atoi(hdr.Get(hdrStream)); err == nil && w > 0 {
		hc.credit = credit.New(w)
	}
	h.inFlightMu.Lock()
	h.inFlight[reply] = hc
	h.inFlightMu.Unlock()
	h.counter.Begin()
	data := req.Data()
	go h.serve(ctx, reply, nats.Header(hdr), data, hc.credit)
}

// answerProbe tells the caller of a call that fell silent whether the
// host still has it: a heartbeat if so, statusUnknown if not (it ended
// and its reply was lost, or it never came). The final reply of a call
// goes out before the call leaves inFlight (see serve), so statusUnknown
// never overtakes it. Only the call's own caller may ask: the probe's
// reply subject must be the call's probe subject, on an inbox.
func (h *Host) answerProbe(reply, call string) {
	if reply != probeSubject(call) || !isInbox(reply) {
		h.log.Warn("dropped a probe whose reply subject is not its call's", "reply", reply, "call", call)
		return
	}
	h.inFlightMu.Lock()
	_, ok := h.inFlight[call]
	h.inFlightMu.Unlock()
	m := nats.NewMsg(reply)
	m.Header.Set(hdrHost, h.id)
	if ok {
		m.Header.Set(hdrStatus, statusWorking)
		m.Header.Set(hdrBeatMs, strconv.FormatInt(h.beat.Milliseconds(), 10))
	} else {
		m.Header.Set(hdrStatus, statusUnknown)
	}
	_ = h.nc.PublishMsg(m)
}

// grantCredit takes a stream caller's credit.
func (h *Host) grantCredit(m *nats.Msg) {
	hdr := m.Header
	n, err := strconv.Atoi(hdr.Get(hdrCredit))
	if err != nil || n <= 0 {
		return
	}
	h.inFlightMu.Lock()
	c := h.inFlight[hdr.Get(hdrReplyTo)]
	h.inFlightMu.Unlock()
	if c != nil && c.credit != nil {
		c.credit.Add(n)
	}
}

// cancelCall takes a caller's cancellation of a call (its body names the
// call's reply subject), or a probe of a call (see answerProbe).
func (h *Host) cancelCall(m *nats.Msg) {
	if call := m.Header.Get(hdrProbe); call != "" {
		h.answerProbe(m.Reply, call)
		return
	}
	h.inFlightMu.Lock()
	c := h.inFlight[string(m.Data)]
	h.inFlightMu.Unlock()
	if c != nil {
		c.cancel()
	}
}

func (h *Host) serve(ctx context.Context, reply string, hdr nats.Header, args []byte, cr *credit.Window) {
	cmd := hdr.Get(hdrCommand)
	chunks := int64(-1)
	call := h.a.Call
	if cr != nil {
		chunks = 0
		call = func(ctx context.Context, req adapter.Request) (adapter.Response, error) {
			return h.stream(ctx, reply, req, cr, &chunks)
		}
	}
	resp, rev, err := h.run(ctx, cmd, reply, hdr, args, call)
	h.counter.End(err)
	// The reply goes out before the call leaves inFlight: a probe never
	// hears that the host has no such call before the reply is sent, and
	// Close, which waits for inFlight to empty, never returns (and lets
	// its caller close the connection) before the replies are sent.
	h.respond(reply, cmd, resp, rev, chunks, err)
	h.inFlightMu.Lock()
	if c := h.inFlight[reply]; c != nil {
		c.cancel()
		delete(h.inFlight, reply)
	}
	if len(h.inFlight) == 0 {
		h.idle.Broadcast()
	}
	h.inFlightMu.Unlock()
}

// stream runs req on the backend as a stream, sending each chunk to the
// caller as its credit allows; it returns the final result.
func (h *Host) stream(ctx context.Context, reply string, req adapter.Request, cr *credit.Window, sent *int64) (adapter.Response, error) {
	s, ok := h.a.(adapter.Streamer)
	if !ok || !h.a.Capabilities().Streaming {
		return adapter.Response{}, errorf(adapter.CodeUnimplemented, Name, req.Command, "host %q: its backend %q does not stream", h.id, h.a.Name())
	}
	for c, err := range s.Stream(ctx, req) {
		switch {
		case err != nil:
			return adapter.Response{}, err
		case c.Response != nil:
			return *c.Response, nil
		}
		if err := cr.Take(ctx); err != nil {
			return adapter.Response{}, adapter.Wrap(err, Name, req.Command)
		}
		m := nats.NewMsg(reply)
		m.Header.Set(hdrStatus, statusChunk)
		m.Header.Set(hdrHost, h.id)
		m.Header.Set(hdrSeq, strconv.FormatInt(*sent, 10))
		m.Data = c.Data
		if err := h.nc.PublishMsg(m); err != nil {
			return adapter.Response{}, &adapter.Error{Code: adapter.CodeUnavailable, Op: req.Command, Adapter: Name, Err: fmt.Errorf("sending a chunk: %w", err)}
		}
		*sent++
	}
	return adapter.Response{}, errorf(adapter.CodeInternal, Name, req.Command, "the backend's stream ended without a result")
}

// toolProxy runs a caller's tools for a request: each call goes back to
// the caller through NATS, under the request's context.
type toolProxy struct {
	nc      *nats.Conn
	subject string
}

// CallTool calls the caller's tool and returns its result.
func (t toolProxy) CallTool(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
	m := nats.NewMsg(t.subject)
	m.Header.Set(hdrTool, name)
	m.Data = args
	r, err := t.nc.RequestMsgWithContext(ctx, m)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, errorf(adapter.CodeUnavailable, Name, "tool", "tool %q: the caller is gone", name)
	case err != nil:
		return nil, adapter.Wrap(err, Name, "tool")
	}
	if err := replyError(r, Name, "tool", "the caller"); err != nil {
		return nil, err
	}
	return r.Data, nil
}

// run executes one request, with the shared state's help.
func (h *Host) run(ctx context.Context, cmd, reply string, hdr nats.Header, args []byte, call func(context.Context, adapter.Request) (adapter.Response, error)) (adapter.Response, uint64, error) {
	if cmd == "" {
		return adapter.Response{}, 0, errorf(adapter.CodeInvalidArgument, Name, "", "request without the %s header", hdrCommand)
	}
	if rev := headerUint(hdr, hdrStateRev); rev > 0 {
		if err := h.waitState(ctx, rev); err != nil {
			return adapter.Response{}, 0, adapter.Wrap(err, Name, cmd)
		}
	}
	req := adapter.Request{Command: cmd, Args: args, Session: hdr.Get(hdrSession)}
	if subject := hdr.Get(hdrTools); subject != "" {
		if subject != toolsSubject(reply) {
			return adapter.Response{}, 0, errorf(adapter.CodeInvalidArgument, Name, cmd, "the %s header must name the tools subject of the request's own inbox", hdrTools)
		}
		req.Tools = toolProxy{nc: h.nc, subject: subject}
	}
	if hdr.Get(hdrBcast) != "" {
		rev, err := h.broadcast(ctx, req)
		return adapter.Response{Result: json.RawMessage(`{}`)}, rev, err
	}
	checked, err := h.checkLM(cmd, req.Args)
	if err != nil {
		return adapter.Response{}, 0, err
	}
	req.Args = checked
	resp, err := call(ctx, req)
	switch cmd {
	case program.CmdCreateProgram:
		if err == nil {
			h.recordSpec(ctx, args, resp.Result)
		}
	case program.CmdExecuteProgram:
		if isSpecNotFound(err) {
			if withSpec := h.fetchSpec(ctx, args); withSpec != nil {
				req.Args = withSpec
				resp, err = call(ctx, req)
			}
		}
	case program.CmdDeleteProgram:
		if err == nil || adapter.CodeOf(err) == adapter.CodeNotFound {
			h.forgetSpec(ctx, args)
		}
	}
	return resp, 0, err
}

// broadcast applies req on this host's workers, then records it in the
// shared state for every other host; it returns the record's revision.
func (h *Host) broadcast(ctx context.Context, req adapter.Request) (uint64, error) {
	if !tokenRE.MatchString(req.Command) {
		return 0, errorf(adapter.CodeInvalidArgument, Name, req.Command, "command %q cannot be broadcast: its name may hold only letters, digits, '_' and '-'", req.Command)
	}
	args, err := h.checkBroadcast(req.Command, req.Args)
	if err != nil {
		return 0, err
	}
	req.Args = args
	h.bmu.Lock()
	defer h.bmu.Unlock()
	if err := h.applyLocal(ctx, req); err != nil {
		return 0, err
	}
	key := broadcastKey(req.Command, req.Args)
	var rev uint64
	err = retry(ctx, func(ctx context.Context) (err error) { rev, err = h.kv.Put(ctx, key, req.Args); return err })
	if err != nil {
		return 0, &adapter.Error{Code: adapter.CodeUnavailable, Op: req.Command, Adapter: Name,
			Err: fmt.Errorf("applied on host %q but not recorded in the shared state, so other hosts may not have it: %w", h.id, err)}
	}
	h.applied[key] = rev
	return rev, nil
}

type specArgs struct {
	SpecHash string          `json:"spec_hash"`
	Spec     json.RawMessage `json:"spec"`
}

// recordSpec keeps a created spec in the shared state, so that any host
// can run it later. A failure is logged: the client resends specs a
// worker lacks, so nothing breaks.
func (h *Host) recordSpec(ctx context.Context, args, result []byte) {
	var a specArgs
	var r program.CreateResult
	if json.Unmarshal(args, &a) != nil || json.Unmarshal(result, &r) != nil || len(a.Spec) == 0 || !tokenRE.MatchString(r.SpecHash) {
		return
	}
	if err := retry(ctx, func(ctx context.Context) error { _, err := h.kv.Put(ctx, "spec."+r.SpecHash, a.Spec); return err }); err != nil {
		h.log.Warn("recording a program spec in the shared state failed", "spec_hash", r.SpecHash, "err", err)
	}
}

// fetchSpec returns args with the spec from the shared state added, or
// nil when the state does not hold it.
func (h *Host) fetchSpec(ctx context.Context, args []byte) []byte {
	var fields map[string]json.RawMessage
	var a specArgs
	if json.Unmarshal(args, &fields) != nil || json.Unmarshal(args, &a) != nil || len(a.Spec) > 0 || !tokenRE.MatchString(a.SpecHash) {
		return nil
	}
	var e jetstream.KeyValueEntry
	err := retry(ctx, func(ctx context.Context) (err error) { e, err = h.kv.Get(ctx, "spec."+a.SpecHash); return err })
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			h.log.Warn("reading a program spec from the shared state failed", "spec_hash", a.SpecHash, "err", err)
		}
		return nil
	}
	fields["spec"] = e.Value()
	b, err := json.Marshal(fields)
	if err != nil {
		return nil
	}
	return b
}

func (h *Host) forgetSpec(ctx context.Context, args []byte) {
	var a specArgs
	if json.Unmarshal(args, &a) != nil || !tokenRE.MatchString(a.SpecHash) {
		return
	}
	if err := retry(ctx, func(ctx context.Context) error { return h.kv.Delete(ctx, "spec."+a.SpecHash) }); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		h.log.Warn("deleting a program spec from the shared state failed", "spec_hash", a.SpecHash, "err", err)
	}
}

func isSpecNotFound(err error) bool {
	var e *adapter.Error
	return errors.As(err, &e) && e.Remote != nil && e.Remote.Type == program.SpecNotFoundType
}

// respond sends the final reply of a call.
func (h *Host) respond(reply, cmd string, resp adapter.Response, rev uint64, chunks int64, err error) {
	m := nats.NewMsg(reply)
	m.Header.Set(hdrHost, h.id)
	if chunks >= 0 {
		m.Header.Set(hdrChunks, strconv.FormatInt(chunks, 10))
	}
	if err == nil {
		m.Data = resp.Result
		if resp.Worker != "" {
			m.Header.Set(hdrWorker, resp.Worker)
		}
		if rev > 0 {
			m.Header.Set(hdrStateRev, strconv.FormatUint(rev, 10))
		}
		if int64(len(m.Data)+1024) > h.nc.MaxPayload() {
			err = errorf(adapter.CodeResourceExhausted, Name, cmd, "the result of %d bytes is over the server's payload limit of %d bytes", len(m.Data), h.nc.MaxPayload())
		}
	}
	if err != nil {
		setError(m, err)
		m.Header.Del(hdrWorker)
	}
	if perr := h.nc.PublishMsg(m); perr != nil {
		h.log.Warn("sending a reply failed", "command", cmd, "err", perr)
	}
}

// heartbeats tells the callers of calls running longer than a period
// that the host is alive.
func (h *Host) heartbeats() {
	defer close(h.beatDone)
	t := time.NewTicker(h.beat)
	defer t.Stop()
	period := strconv.FormatInt(h.beat.Milliseconds(), 10)
	h.announce(false)
	for {
		select {
		case <-h.stopBeat:
			return
		case now := <-t.C:
			h.inFlightMu.Lock()
			var due []string
			for reply, c := range h.inFlight {
				if now.Sub(c.started) >= h.beat/2 {
					due = append(due, reply)
				}
			}
			h.inFlightMu.Unlock()
			for _, reply := range due {
				m := nats.NewMsg(reply)
				m.Header.Set(hdrStatus, statusWorking)
				m.Header.Set(hdrHost, h.id)
				m.Header.Set(hdrBeatMs, period)
				_ = h.nc.PublishMsg(m)
			}
			h.announce(false)
		}
	}
}

// announce publishes the host's announcement.
func (h *Host) announce(gone bool) {
	st := h.Stats()
	backend, _ := adapter.StatsOf(h.a)
	b, _ := json.Marshal(Announcement{Host: h.id, Workers: backend.Workers, InFlight: st.InFlight, Calls: st.Calls,
		HeartbeatMs: h.beat.Milliseconds(), Commands: h.a.Capabilities().Commands, Gone: gone})
	_ = h.nc.Publish(h.subj.announce(), b)
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
		// Calls cancelled above still answer: wait for them briefly.
		h.inFlightMu.Lock()
		for len(h.inFlight) > 0 {
			h.idle.Wait()
		}
		h.inFlightMu.Unlock()
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
