package dspgo

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
)

// Option configures a Client.
type Option func(*options)

type options struct {
	sessionTTL time.Duration
	now        func() time.Time
	tools      toolSet
	toolErr    error // a WithTool mistake, reported by the calls that need tools
}

// WithSessionTTL makes sessions expire after ttl without use: an expired
// session's programs are deleted. Zero, the default, means sessions never
// expire.
func WithSessionTTL(ttl time.Duration) Option {
	return func(o *options) { o.sessionTTL = ttl }
}

// WithClock sets the clock for program timestamps and session expiry.
// Nil, the default, means time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// Client runs programs on an adapter. It is safe for concurrent use by
// many goroutines and holds no global state: two clients never share
// programs, even over the same adapter. The client does not own the
// adapter; close the adapter when done with it.
type Client struct {
	a    adapter.Adapter
	opts options

	mu     sync.Mutex
	scopes map[string]*scope // "" is the default scope
}

// scope holds the programs of the default scope or of one session.
type scope struct {
	programs map[string]*Program
	lastUsed time.Time
	// creating counts the creates that reserved an id in the scope and
	// wait for the backend: a sweep leaves the scope alone meanwhile.
	creating int
	// closed is set when Session.Close drops the scope: a create that
	// reserved its id in it, or that compiled one of its programs, fails.
	closed bool
}

// NewClient returns a client that runs programs on a.
func NewClient(a adapter.Adapter, opts ...Option) *Client {
	c := &Client{a: a, scopes: map[string]*scope{}}
	for _, o := range opts {
		o(&c.opts)
	}
	if c.opts.now == nil {
		c.opts.now = time.Now
	}
	return c
}

// Adapter returns the adapter the client runs on.
func (c *Client) Adapter() adapter.Adapter { return c.a }

// Ping checks that the backend answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.a.Call(ctx, adapter.Request{Command: command.Ping})
	return err
}

// Session returns the session with the id. Programs created in a session
// are visible only in it; its requests carry the id for worker affinity.
// Sessions need no creation: the first program created in one (by
// CreateProgram or Compile) starts it, and a call that only reads it
// (GetProgram, ListPrograms, Execute, …) starts none, nor holds anything
// for it. A session ends when Close, the idle TTL (WithSessionTTL) or the
// deletion of its last program leaves it with none; its id may start a
// new one. The id must not be empty.
func (c *Client) Session(id string) *Session {
	return &Session{c: c, id: id, closed: new(atomic.Bool)}
}

// Stats is a snapshot of a client and its adapter.
type Stats struct {
	// Adapter holds the adapter's counters when it reports them (see
	// adapter.StatsOf); otherwise only its name.
	Adapter adapter.Stats
	// Programs counts the programs in every scope.
	Programs int
	// Sessions counts the live sessions: those holding a program, one
	// being created included (see Client.Session).
	Sessions int
}

// Stats returns a snapshot of the client's and the adapter's counters.
func (c *Client) Stats() Stats {
	s := Stats{}
	s.Adapter, _ = adapter.StatsOf(c.a)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked()
	for id, sc := range c.scopes {
		s.Programs += len(sc.programs)
		if id != "" {
			s.Sessions++
		}
	}
	return s
}

func (c *Client) errorf(code adapter.Code, op, format string, args ...any) error {
	return &adapter.Error{Code: code, Op: op, Adapter: c.a.Name(), Message: fmt.Sprintf(format, args...)}
}

// useLocked returns the live scope of a session, marked used, or nil when
// the session holds no program, after sweeping expired sessions. The
// caller holds c.mu.
func (c *Client) useLocked(session string) *scope {
	c.sweepLocked()
	sc := c.scopes[session]
	if sc != nil {
		sc.lastUsed = c.opts.now()
	}
	return sc
}

// startLocked is useLocked for a call that stores a program: it starts
// the session when it holds none. The caller holds c.mu.
func (c *Client) startLocked(session string) *scope {
	sc := c.useLocked(session)
	if sc == nil {
		sc = &scope{programs: map[string]*Program{}, lastUsed: c.opts.now()}
		c.scopes[session] = sc
	}
	return sc
}

// removeLocked removes p from sc, its scope, and ends sc's session when
// that leaves it with no program. The caller holds c.mu.
func (c *Client) removeLocked(sc *scope, p *Program) {
	if sc.programs[p.ID] == p {
		delete(sc.programs, p.ID)
	}
	c.endIfEmptyLocked(p.Session, sc)
}

// endIfEmptyLocked ends a session whose scope sc holds no program and
// has no create in flight. The caller holds c.mu.
func (c *Client) endIfEmptyLocked(session string, sc *scope) {
	if session != "" && len(sc.programs) == 0 && sc.creating == 0 && c.scopes[session] == sc {
		delete(c.scopes, session)
	}
}

// sweepLocked deletes sessions idle for longer than the TTL, but for one
// with a create in flight. The caller holds c.mu.
func (c *Client) sweepLocked() {
	if c.opts.sessionTTL <= 0 {
		return
	}
	cutoff := c.opts.now().Add(-c.opts.sessionTTL)
	for id, sc := range c.scopes {
		if id != "" && sc.creating == 0 && sc.lastUsed.Before(cutoff) {
			delete(c.scopes, id)
		}
	}
}

// lookup returns the program with the id in a session's scope, and the
// scope.
func (c *Client) lookup(session, op, id string) (*Program, *scope, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sc := c.useLocked(session)
	if sc == nil || sc.programs[id] == nil {
		return nil, nil, c.errorf(adapter.CodeNotFound, op, "program %q not found%s", id, inSession(session))
	}
	return sc.programs[id], sc, nil
}

// sessionClosed is the error of a call that a session's Close ends.
func (c *Client) sessionClosed(op string) error {
	return &adapter.Error{Code: adapter.CodeFailedPrecondition, Op: op, Adapter: c.a.Name(), Err: ErrSessionClosed}
}

func inSession(session string) string {
	if session == "" {
		return ""
	}
	return fmt.Sprintf(" in session %q", session)
}
