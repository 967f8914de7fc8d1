package remote

// A publish the server refuses: the calls waiting on it learn at once.

import (
	"errors"
	"regexp"
	"sync"

	"github.com/nats-io/nats.go"
)

// refusals routes the permissions violations of one connection's
// publishes to the adapters on it. A server that refuses a publish drops
// the message and tells the client asynchronously (nats.go's error
// handler), so a call sent where its user may not publish would wait for
// a reply that never comes, until its host is judged silent or its context
// ends. One refusals serves each connection: the first New on a
// connection installs it as the connection's error handler, in front of
// the handler already there (which still gets every error), and adapters
// join and leave it.
type refusals struct {
	mu       sync.Mutex
	adapters map[*Adapter]struct{}
}

// connRefusals holds the refusals of each connection that has an adapter
// on it (*nats.Conn → *refusals). The last adapter to leave removes its
// connection: a later New installs another refusals in front, and the one
// before forwards every error to the handler before it.
var connRefusals sync.Map

// publishRefused finds the subject in nats.go's text of a refused publish:
// `nats: permissions violation: Permissions Violation for Publish to "<subject>"`.
var publishRefused = regexp.MustCompile(`Permissions Violation for Publish to "(\S+)"`)

// joinRefusals signs a up for its connection's refused publishes.
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

// dispatch tells the adapters on the connection of a refused publish.
func (r *refusals) dispatch(err error) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return
	}
	m := publishRefused.FindStringSubmatch(err.Error())
	if m == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for a := range r.adapters {
		a.refused(m[1])
	}
}

// refused ends the calls waiting on a publish to subject: the server
// refuses this connection's publishes to it.
func (a *Adapter) refused(subject string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.pending {
		if p.subject == subject {
			select {
			case p.refused <- struct{}{}:
			default:
			}
		}
	}
}
