package remote

// A call's route: the queue group or its session's host, and its result.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/wire"
)

// errNoHost: no host subscribes to the subject.
var errNoHost = errors.New("no worker host serves")

// Call sends req to a host and returns its reply. The commands only a
// host's adapters send their workers (protocol.Reserved: shutdown,
// cancel, the init ping) are refused with CodeInvalidArgument before
// anything is sent, as by Stream and Broadcast. A call the server does not
// let the connection publish (its user lacks the caller role's
// permissions) fails with CodeFailedPrecondition as soon as the server
// says so, and so does every call while the server refuses one of the
// adapter's subscriptions (see New).
func (a *Adapter) Call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	return a.call(ctx, req, callOpts{})
}

// callOpts are what a call may be beyond a plain request.
type callOpts struct {
	broadcast bool
	window    int                  // stream credit; 0: no stream
	each      func(*nats.Msg) bool // takes each chunk; false stops the stream
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
	if req.Session != "" && a.affinity != adapter.AffinityNone && !o.broadcast {
		a.mu.Lock()
		host, _ = a.sessions.Get(req.Session)
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
			if a.affinity == adapter.AffinityStrict {
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

// decode turns a final reply into the call's result, and learns the
// session's host.
func (a *Adapter) decode(op, session, host string, m *nats.Msg) (adapter.Response, error) {
	served := m.Header.Get(hdrHost)
	if session != "" && a.affinity != adapter.AffinityNone && host == "" && served != "" {
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
	a.sessions.Bind(session, host)
}

func (a *Adapter) forget(session, host string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sessions.ForgetIf(session, host)
}
