package port

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/protocol"
)

// hello is the worker's answer to the init ping.
type hello command.InitResult

// has reports whether the worker announced feature.
func (h *hello) has(feature string) bool { return slices.Contains(h.Features, feature) }

// conn is the host's side of one started worker: the callers waiting for
// replies read them in turns (the reading role, readrole.go), matching
// responses to callers by id; one writer is shared under a lock, and a
// goroutine sends cancel frames so that callers never wait for them.
type conn struct {
	name    string // adapter name, for errors
	w       worker
	writer  *protocol.Writer
	timeout time.Duration // write timeout
	started time.Time
	hello   hello
	role    *readRole

	nextID  atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]*waiter
	extras  map[uint64]*extra             // requests that stream or carry tools, by id
	toolRun map[uint64]context.CancelFunc // the worker's calls to tools running, by call id
	tools   sync.WaitGroup                // tool goroutines

	dead      chan struct{} // closed when the conn can no longer serve
	deadOnce  sync.Once
	reason    string    // why it died; set before dead closes
	violated  bool      // it died of a protocol violation; set before dead closes
	failOnce  sync.Once // builds failErr once the worker has exited
	failErr   error
	cancels   chan uint64
	onDead    func(*conn)    // called once, before dead closes
	loops     sync.WaitGroup // watcher and canceller
	releaseMu sync.Once

	stopping atomic.Bool   // stop runs: it, not die, decides when to kill
	draining chan struct{} // closed by stop: the watcher reads to the end
}

func newConn(name string, w worker, maxFrame int, writeTimeout time.Duration, onDead func(*conn)) *conn {
	c := &conn{name: name, w: w, onDead: onDead, timeout: writeTimeout,
		started: time.Now(), pending: map[uint64]*waiter{},
		extras: map[uint64]*extra{}, toolRun: map[uint64]context.CancelFunc{},
		dead: make(chan struct{}), cancels: make(chan uint64, 256), draining: make(chan struct{})}
	c.writer = protocol.NewWriter(stdinWriter{c}, maxFrame)
	c.nextID.Store(protocol.InitID) // the first call gets 1; InitID is for the handshake
	var err error
	if c.role, err = newReadRole(w.responses(), maxFrame, writeTimeout); err != nil {
		c.fail("the host cannot read the worker: " + err.Error())
	}
	c.loops.Add(2)
	go c.watch()
	go c.cancelLoop()
	return c
}

// route hands one frame from the worker to whoever it is for, for the
// role's holder w (nil: the watcher). A final response for w is stored in
// w.resp and reported, as is a chunk of w's stream, rather than sent; a
// reply whose caller has gone (timed out, cancelled) is dropped, never
// handed to anyone else. A response or chunk for an id the host never
// issued is a protocol violation: the worker is killed.
func (c *conn) route(m *protocol.WorkerMessage, w *waiter) routed {
	if (m.Kind == "" || m.Kind == protocol.KindChunk) && m.ID > c.nextID.Load() {
		// Ids are issued in order and a request is written after its id:
		// an id beyond the last issued was never sent. (A reply to an id
		// issued whose caller has gone is a late reply, dropped below.)
		what := "answered"
		if m.Kind == protocol.KindChunk {
			what = "sent a chunk of"
		}
		c.violate(fmt.Sprintf("it %s request %d, which the host never sent (the last id sent is %d)", what, m.ID, c.nextID.Load()))
		return routedViolation
	}
	if m.Kind != "" {
		c.other(m)
		if w != nil && m.ID == w.id && m.Kind == protocol.KindChunk {
			return routedOwnChunk
		}
		return routedOther
	}
	c.mu.Lock()
	to := c.pending[m.ID]
	delete(c.pending, m.ID)
	c.mu.Unlock()
	switch {
	case to == nil:
	case to == w:
		w.resp = m.Response
		return routedOwnReply
	default:
		to.resp = m.Response
		to.reply <- struct{}{} // buffered, and sent once: never blocks
		c.role.woke = true
	}
	return routedOther
}

// routed says what a frame meant for the role's holder.
type routed int

const (
	routedOther     routed = iota // for someone else, or dropped
	routedOwnReply                // the holder's final response
	routedOwnChunk                // a chunk of the holder's stream
	routedViolation               // the worker broke the protocol: the conn is dead
)

// failRead fails the conn after the response stream failed: its end, or
// bytes the codec refuses.
func (c *conn) failRead(err error) {
	if protocol.ErrorKind(err) != "" {
		c.violate(err.Error())
		return
	}
	if errors.Is(err, io.EOF) {
		c.fail("the worker closed its stdout")
		return
	}
	c.fail("reading the worker's output failed: " + err.Error())
}

// watch reads the worker's frames when no caller can: after the worker's
// exit (what it wrote last, then the conn fails) and during stop (to the
// end, so that the worker never blocks writing while it shuts down).
func (c *conn) watch() {
	defer c.loops.Done()
	select {
	case <-c.w.exited():
		c.role.wake() // a holder in poll reads what is left and fails the conn
	case <-c.draining:
	case <-c.dead:
		return
	}
	select {
	case <-c.role.token:
	case <-c.dead:
		return
	}
	c.lead(context.Background(), nil, true)
	c.role.token <- struct{}{}
}

// cancelLoop sends cancel frames for requests whose callers gave up.
func (c *conn) cancelLoop() {
	defer c.loops.Done()
	for {
		select {
		case id := <-c.cancels:
			args, _ := json.Marshal(map[string]uint64{"id": id})
			_ = c.write(&protocol.Request{ID: c.nextID.Add(1), Command: protocol.CmdCancel, Args: args})
		case <-c.dead:
			return
		}
	}
}

// fail marks the conn dead and kills the worker, once.
func (c *conn) fail(reason string) { c.die(reason, false) }

// violate fails the conn for a protocol violation by the worker: its calls
// fail with ErrProtocolViolation naming it, and the worker is replaced.
func (c *conn) violate(what string) { c.die("the worker broke the protocol: "+what, true) }

func (c *conn) die(reason string, violation bool) {
	c.deadOnce.Do(func() {
		c.reason, c.violated = reason, violation
		c.onDead(c)
		close(c.dead)
		c.role.wake() // a holder in poll leaves
		if !c.stopping.Load() {
			_ = c.w.signal(syscall.SIGKILL)
		}
	})
}

// who names the worker in messages: by its id once its hello has said
// it, and by its pid.
func (c *conn) who() string {
	if id := c.hello.WorkerID; id != "" {
		return fmt.Sprintf("worker %s (pid %d)", id, c.w.pid())
	}
	return fmt.Sprintf("worker (pid %d)", c.w.pid())
}

// failure returns the error for calls on a dead conn: CodeUnavailable
// with the exit status and the tail of stderr. It waits briefly for the
// worker to be reaped so the status is known.
func (c *conn) failure(op string) error {
	c.failOnce.Do(func() {
		select {
		case <-c.w.exited():
		case <-time.After(2 * time.Second):
		}
		status := "still running"
		select {
		case <-c.w.exited():
			status = c.w.exitStatus()
		default:
		}
		msg := fmt.Sprintf("%s is gone: %s; %s", c.who(), c.reason, status)
		if t := stderrSummary(c.w.stderrTail()); t != "" {
			msg += "; stderr: " + t
		}
		e := &adapter.Error{Code: adapter.CodeUnavailable, Adapter: c.name, Message: msg}
		if c.violated {
			e.Err = ErrProtocolViolation
		}
		c.failErr = e
	})
	e := *c.failErr.(*adapter.Error)
	e.Op = op
	return &e
}

func lastBytes(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// write sends one frame with the write deadline. A write that fails
// (other than for the frame's own size or content) breaks the conn.
func (c *conn) write(req *protocol.Request) error {
	return c.send(func() error { return c.writer.WriteRequest(req) })
}

// send writes one frame with write, under the write deadline (see
// stdinWriter); a write that fails for the stream's sake breaks the conn.
func (c *conn) send(write func() error) error {
	err := write()
	if err != nil && protocol.ErrorKind(err) == "" {
		c.fail("writing to the worker failed: " + err.Error())
	}
	return err
}

// call sends one request and waits for its response, the caller's ctx, or
// the worker's death.
func (c *conn) call(ctx context.Context, req adapter.Request) (json.RawMessage, error) {
	return c.exchange(ctx, req, 0, nil)
}

// notSent marks a failure as one where the request never reached the
// worker, so it is safe to send it elsewhere.
func notSent(err error) error {
	e := *err.(*adapter.Error)
	e.Err = ErrNotSent
	return &e
}

// handshake sends the init ping and checks the reply.
func (c *conn) handshake(ctx context.Context) error {
	w := &waiter{id: protocol.InitID, reply: make(chan struct{}, 1)}
	c.mu.Lock()
	c.pending[protocol.InitID] = w
	c.mu.Unlock()
	if err := c.write(&protocol.Request{ID: protocol.InitID, Command: protocol.CmdPing, Args: protocol.InitPingArgs}); err != nil {
		return c.failure("start")
	}
	switch c.await(ctx, w) {
	case gotReply:
		resp := &w.resp
		if !resp.Success {
			return &adapter.Error{Code: adapter.CodeUnavailable, Op: "start", Adapter: c.name,
				Message: "the worker refused the init ping: " + lastBytes(resp.Error.Message, 2048)}
		}
		if err := json.Unmarshal(resp.Result, &c.hello); err != nil {
			return &adapter.Error{Code: adapter.CodeUnavailable, Op: "start", Adapter: c.name, Message: "malformed init reply", Err: err}
		}
		if c.hello.ProtocolVersion != protocol.Version {
			return &adapter.Error{Code: adapter.CodeFailedPrecondition, Op: "start", Adapter: c.name,
				Message: fmt.Sprintf("the worker speaks protocol version %d, this host version %d", c.hello.ProtocolVersion, protocol.Version)}
		}
		return nil
	case gotDead:
		return c.failure("start")
	default: // the context ended
		c.mu.Lock()
		delete(c.pending, protocol.InitID)
		c.mu.Unlock()
		msg := "the worker did not answer the init ping in time"
		if t := stderrSummary(c.w.stderrTail()); t != "" {
			msg += "; stderr: " + t
		}
		return &adapter.Error{Code: adapter.CodeDeadlineExceeded, Op: "start", Adapter: c.name, Message: msg, Err: ctx.Err()}
	}
}

// inFlight counts the calls waiting for a response.
func (c *conn) inFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// stop ends the worker: a shutdown frame and the end of its stdin, then
// SIGTERM and SIGKILL to its group, each after grace; it returns when the
// worker is reaped and every goroutine of the conn has ended. Its error
// says how a live worker failed to stop cleanly (see stopError); a worker
// already dead is no error of stop, its calls were told.
func (c *conn) stop(grace time.Duration) error {
	if c.stopping.CompareAndSwap(false, true) {
		close(c.draining)
	}
	alive := true
	select {
	case <-c.dead:
		alive = false
	default:
		_ = c.write(&protocol.Request{ID: c.nextID.Add(1), Command: protocol.CmdShutdown})
	}
	_ = c.w.closeStdin()
	var sent []syscall.Signal
	var sigErr error
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t := time.NewTimer(grace)
		select {
		case <-c.w.exited():
		case <-t.C:
			sent = append(sent, sig)
			if err := c.w.signal(sig); err != nil {
				sigErr = errors.Join(sigErr, fmt.Errorf("sending %v: %w", sig, err))
			}
		}
		t.Stop()
	}
	<-c.w.exited()
	c.fail("the worker was stopped")
	c.release()
	if !alive {
		return nil
	}
	return c.stopError(grace, sent, sigErr)
}

// stopError is nil when the worker exited with status 0 within grace of
// its shutdown request; otherwise CodeInternal naming the signals it
// needed, any signal that could not be sent, its exit status and the tail
// of its stderr.
func (c *conn) stopError(grace time.Duration, sent []syscall.Signal, sigErr error) error {
	status := c.w.exitStatus()
	if len(sent) == 0 && sigErr == nil && status == exitOK {
		return nil
	}
	msg := c.who() + " did not stop cleanly: "
	if len(sent) > 0 {
		names := make([]string, len(sent))
		for i, sig := range sent {
			names[i] = map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL"}[sig]
		}
		msg += fmt.Sprintf("it was still running %v after the shutdown request (sent %s); ", grace, strings.Join(names, ", then "))
	}
	msg += status
	if t := stderrSummary(c.w.stderrTail()); t != "" {
		msg += "; stderr: " + t
	}
	return &adapter.Error{Code: adapter.CodeInternal, Op: "close", Adapter: c.name, Message: msg, Err: sigErr}
}

// release frees the streams and joins the conn's goroutines; the conn
// must be dead and the worker must have exited. It takes the reading role
// for good first, so that nobody reads the pipe it closes.
func (c *conn) release() {
	c.releaseMu.Do(func() {
		<-c.role.token
		c.w.release()
		c.role.close()
		c.loops.Wait()
		c.tools.Wait()
	})
}
