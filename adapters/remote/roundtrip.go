package remote

// One request on the wire: sent, its replies routed, its host's silence judged.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/credit"
	"github.com/dspgo/dspgo/internal/wire"
)

// pending is a call waiting for its reply.
type pending struct {
	subject string             // where the call was published
	refused chan struct{}      // the server refused the publish, or the replies' subscription (see refusals)
	beat    chan time.Duration // a heartbeat, with the host's period; never blocks the sender
	final   chan *nats.Msg     // the reply, or NATS's no-responders status
	probe   chan *nats.Msg     // the answer to a probe of the call's host (see Adapter.probe)
	host    atomic.Pointer[string]

	// A streamed call's chunks (capacity: the credit), and why it broke.
	chunks   chan *nats.Msg
	next     uint64 // the seq due; set by the reply goroutine only
	broken   chan struct{}
	why      string
	whyCode  adapter.Code
	breakOne sync.Once

	// A call with tools: they run under ctx, which the call's end cancels.
	ctx   context.Context
	tools adapter.Tools
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
	p := &pending{subject: msg.Subject, refused: make(chan struct{}, 1), beat: make(chan time.Duration, 1), final: make(chan *nats.Msg, 1), probe: make(chan *nats.Msg, 1)}
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
	if err := a.deafness(op); err != nil { // after registering: a refusal now ends the call below
		return nil, err
	}
	if err := a.publish(ctx, op, msg); err != nil {
		return nil, err
	}

	// The host has missedBeats periods to speak of the call; then it is
	// probed, when known, and has as long again to answer, maxProbes
	// times. So a host is given up on evidence (no responders for its
	// subject, or its word that it has no such call), or after
	// 1+maxProbes windows of silence, never for a hiccup of a busy
	// machine.
	beat := a.beat
	silence := time.NewTimer(missedBeats * beat)
	defer silence.Stop()
	probes := 0 // probes sent since the host last spoke
	heard := func() {
		probes = 0
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
		if sent := headerUint(m.Header, hdrChunks); o.window > 0 && m.Header.Get(hdrNATS) == "" && sent != taken {
			code := adapter.CodeInternal // the host counts fewer than it sent
			if sent > taken {
				code = adapter.CodeUnavailable // NATS drops messages only while a connection is down
			}
			return nil, errorf(code, a.name, op, "the host's reply counts %d chunks, the caller received %d: the stream lost chunks", sent, taken)
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
			return nil, errorf(p.whyCode, a.name, op, "%s", p.why)
		case <-p.refused:
			if m, ok := ready(p.final); ok { // an earlier publish of the call was let through
				return final(m)
			}
			if err := a.deafness(op); err != nil {
				a.cancelRemote(p, msg.Reply)
				return nil, err
			}
			return nil, errorf(adapter.CodeFailedPrecondition, a.name, op,
				"the NATS server refused to let this connection publish to %q (a permissions violation): a caller's user needs the caller role's permissions (remote.Permissions)", msg.Subject)
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
			if len(p.beat)+len(p.probe)+len(p.chunks) > 0 {
				// A word came with the timer: it counts first.
				silence.Reset(time.Millisecond)
				continue
			}
			if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
				// The silence ends with the deadline: the deadline is
				// what the caller asked for.
				a.cancelRemote(p, msg.Reply)
				return nil, adapter.Wrap(context.DeadlineExceeded, a.name, op)
			}
			if probes < maxProbes {
				probes++
				a.probe(p, msg.Reply)
				silence.Reset(missedBeats * beat)
				continue
			}
			silent := (1 + maxProbes) * missedBeats * beat
			if h := p.host.Load(); h != nil {
				return nil, errorf(adapter.CodeUnavailable, a.name, op, "host %q fell silent for %v while serving the call, and did not answer %d probes; it may have died", *h, silent, maxProbes)
			}
			return nil, errorf(adapter.CodeUnavailable, a.name, op, "no reply nor heartbeat from a host for %v after sending the call; its host may have died", silent)
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
