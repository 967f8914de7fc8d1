package remote

// A publish or a subscription the server refuses: the calls it concerns
// learn at once.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dspgo/dspgo/adapter"
)

// refusals routes the permissions violations of one connection's
// publishes and subscriptions to the adapters on it. A server that refuses
// a publish drops the message, and one that refuses a subscription
// delivers nothing to it; either tells the client only asynchronously
// (nats.go's error handler). So a call sent where its user may not
// publish, or whose reply comes to an inbox its user may not read, would
// wait for a reply that never comes, until its host is judged silent or
// its context ends. One refusals serves each connection: the first New on a
// connection installs it as the connection's error handler, in front of
// the handler already there (which still gets every error), and in front
// of its reconnection handler likewise; adapters join and leave it.
type refusals struct {
	mu       sync.Mutex
	adapters map[*Adapter]struct{}
}

// refusalWait bounds New's wait for the server to take its
// subscriptions.
const refusalWait = time.Second

// flushRefused waits, within ctx and at most limit, for the server to
// take what nc sent, and returns the subscription it refused since before
// (nc's last error before the subscriptions), or "".
func flushRefused(ctx context.Context, nc *nats.Conn, before error, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := nc.FlushWithContext(ctx); err != nil {
		return "", err
	}
	return lastRefusal(nc, before, subscribeRefused), nil
}

// subscriptionRefused is the error of op when the server refused the
// subscription to subject; advice says what to change.
func subscriptionRefused(name, op, subject, advice string) error {
	return errorf(adapter.CodeFailedPrecondition, name, op,
		"the NATS server refused this connection's subscription to %q (a permissions violation): %s", subject, advice)
}

// connRefusals holds the refusals of each connection that has an adapter
// on it (*nats.Conn → *refusals). The last adapter to leave removes its
// connection: a later New installs another refusals in front, and the one
// before forwards every error to the handler before it.
var connRefusals sync.Map

// publishRefused finds the subject in nats.go's text of a refused publish:
// `nats: permissions violation: Permissions Violation for Publish to "<subject>"`.
var publishRefused = regexp.MustCompile(`Permissions Violation for Publish to "(\S+)"`)

// subscribeRefused finds the subject in nats.go's text of a refused
// subscription: `nats: permissions violation: Permissions Violation for
// Subscription to "<subject>"`, which the server may follow with the
// queue or the subscription's id.
var subscribeRefused = regexp.MustCompile(`Permissions Violation for Subscription to "(\S+)"`)

// joinRefusals signs a up for its connection's refused publishes and
// subscriptions.
func (a *Adapter) joinRefusals() {
	for {
		got, loaded := connRefusals.LoadOrStore(a.nc, &refusals{adapters: map[*Adapter]struct{}{}})
		r := got.(*refusals)
		if !loaded {
			before := a.nc.ErrorHandler()
			a.nc.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
				r.dispatch(err)
				if before != nil {
					before(nc, sub, err)
				}
			})
			beforeRC := a.nc.ReconnectHandler()
			a.nc.SetReconnectHandler(func(nc *nats.Conn) {
				r.reconnected()
				if beforeRC != nil {
					beforeRC(nc)
				}
			})
		}
		r.mu.Lock()
		if r.adapters != nil { // else the last adapter left it meanwhile: make another
			r.adapters[a] = struct{}{}
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// leaveRefusals undoes joinRefusals (at Close).
func (a *Adapter) leaveRefusals() {
	got, ok := connRefusals.Load(a.nc)
	if !ok {
		return
	}
	r := got.(*refusals)
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.adapters, a)
	if len(r.adapters) == 0 {
		r.adapters = nil // forwards from now on
		connRefusals.CompareAndDelete(a.nc, r)
	}
}

// dispatch tells the adapters on the connection of a refused publish or
// subscription.
func (r *refusals) dispatch(err error) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return
	}
	tell := (*Adapter).refused
	m := publishRefused.FindStringSubmatch(err.Error())
	if m == nil {
		if m = subscribeRefused.FindStringSubmatch(err.Error()); m == nil {
			return
		}
		tell = (*Adapter).unheard
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for a := range r.adapters {
		tell(a, m[1])
	}
}

// refused ends the calls waiting on a publish to subject: the server
// refuses this connection's publishes to it.
func (a *Adapter) refused(subject string) {
	a.endWaiting(func(p *pending) bool { return p.subject == subject })
}

// endWaiting tells the calls waiting for replies that match that the
// server refused them (pending.refused).
func (a *Adapter) endWaiting(match func(*pending) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.pending {
		if match(p) {
			select {
			case p.refused <- struct{}{}:
			default:
			}
		}
	}
}

// reconnected tells the adapters on the connection that it reconnected:
// it subscribed again, so the refusals of their subscriptions are over
// (a new refusal comes after this).
func (r *refusals) reconnected() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for a := range r.adapters {
		a.deaf.Store(nil)
	}
}

// unheard takes the refusal of a subscription to subject. When subject is
// one of the adapter's own (its replies', or the hosts' announcements'),
// every call fails (deafness) until the connection reconnects, and the
// calls waiting for replies end when it is the replies'.
func (a *Adapter) unheard(subject string) {
	replies := subject == a.replySubject()
	if !replies && subject != a.subj.announce() {
		return
	}
	a.deaf.CompareAndSwap(nil, &subject)
	if replies { // else the calls in flight still get their replies
		a.endWaiting(func(*pending) bool { return true })
	}
}

// deafness returns the error of a call on an adapter the server refused
// one of its subscriptions, or nil.
func (a *Adapter) deafness(op string) error {
	subject := a.deaf.Load()
	if subject == nil {
		return nil
	}
	why := "the hosts' announcements cannot arrive, so no host is known"
	if *subject == a.replySubject() {
		why = "replies cannot arrive: a caller's connection must use its user's inbox prefix (DialOptions.InboxPrefix, remote.InboxPrefix)"
	}
	return subscriptionRefused(a.name, op, *subject, why+"; a caller's user needs the caller role's permissions (remote.Permissions)")
}

// lastRefusal returns the subject re finds in nc's last error when that
// is a permissions violation other than before (nc's last error before
// the requests in question), else "". Right after a flush it tells the
// requests made before it that the server refused, which the error
// handler learns of only a moment later. A nil nc has none.
func lastRefusal(nc *nats.Conn, before error, re *regexp.Regexp) string {
	if nc == nil {
		return ""
	}
	last := nc.LastError()
	if last == nil || last == before || !errors.Is(last, nats.ErrPermissionViolation) {
		return ""
	}
	if m := re.FindStringSubmatch(last.Error()); m != nil {
		return m[1]
	}
	return ""
}

// stateRefused is the error of a request to the shared state that the
// server did not let the connection publish (JetStream's API): retried,
// it would only wait again for an answer that cannot come.
type stateRefused struct {
	subject string
	err     error // the attempt's own
}

func (e *stateRefused) Error() string {
	return fmt.Sprintf("the NATS server refused to let this connection publish to %q (a permissions violation; the user needs its role's permissions, see remote.Permissions): %v", e.subject, e.err)
}

func (e *stateRefused) Unwrap() error { return e.err }

// stateError is op's error for err, a failure to use the shared state:
// CodeFailedPrecondition when the server refused the request (err holds
// a *stateRefused), else CodeUnavailable.
func stateError(name, op string, err error) error {
	code := adapter.CodeUnavailable
	if _, ok := errors.AsType[*stateRefused](err); ok {
		code = adapter.CodeFailedPrecondition
	}
	return &adapter.Error{Code: code, Op: op, Adapter: name, Err: err}
}

// refusedJetStream returns the subject of a publish to JetStream's API
// that the server refused, when nc's last error is one other than
// before, else "".
func refusedJetStream(nc *nats.Conn, before error) string {
	if s := lastRefusal(nc, before, publishRefused); strings.HasPrefix(s, "$JS.") {
		return s
	}
	return ""
}

// refusalPoll is how often an attempt on the shared state looks for a
// refusal, and refusalGrace how long it still waits after one: the
// refused publish may be another request's on the same connection.
const (
	refusalPoll  = 20 * time.Millisecond
	refusalGrace = 250 * time.Millisecond
)

// endWhenRefused watches, while an attempt on the shared state runs, for
// the server's refusal of a publish to JetStream's API on nc since before
// (nats.go reports it only as the connection's last error): when one
// appears and the attempt is still running refusalGrace later, it calls
// end. The returned func stops the watch and reports the refused
// subject when the watch ended the attempt, else "". A nil nc is not
// watched.
func endWhenRefused(nc *nats.Conn, before error, end context.CancelFunc) (stop func() string) {
	if nc == nil {
		return func() string { return "" }
	}
	done, ended := make(chan struct{}), make(chan struct{})
	var subject string // set before ended closes, when the watch ended the attempt
	go func() {
		defer close(ended)
		poll := time.NewTicker(refusalPoll)
		defer poll.Stop()
		refused := ""
		for refused == "" {
			select {
			case <-done:
				return
			case <-poll.C:
				refused = refusedJetStream(nc, before)
			}
		}
		grace := time.NewTimer(refusalGrace)
		defer grace.Stop()
		select {
		case <-done:
		case <-grace.C:
			end()
			subject = refused
		}
	}()
	return func() string {
		close(done)
		<-ended
		return subject
	}
}
