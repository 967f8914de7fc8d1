package port

// The reading role: who reads the worker's frames, and when.
//
// No goroutine reads a worker's response pipe on its own. Every caller
// waiting for a reply may hold the reading role; the caller holding it
// reads frames and hands each to the caller it is for (its reply channel,
// its stream's chunks, its tools), and gives the role up when its own
// reply arrives, when a chunk of its own stream arrives (it hands the chunk
// on outside the role), when its context ends, or when the worker dies.
// Another waiting caller then takes it. A caller alone in flight thus reads
// its own reply in its own goroutine, with no hand-off between goroutines.
//
// Invariants:
//
//  1. One holder at most. The role is the one value in token (capacity
//     1): a caller takes it from token to read and puts it back when it
//     stops. Only the holder touches the frame reader and the pipe.
//  2. The holder never blocks in a read. A read on a pipe cannot be
//     interrupted, so the holder waits in poll(2) on the pipe and on the
//     wake descriptor, and reads only what poll says is there (fill never
//     blocks). A frame that arrives in pieces stays in the frame reader
//     between holders: the role can change hands between any two reads
//     without losing or repeating a byte.
//  3. A holder whose context ends leaves at once: the context's end
//     writes to the wake descriptor, which ends the poll; the holder sees
//     its context done and gives the role back. A wake meant for an earlier
//     holder only makes a later one look at its own context and poll again.
//     So the role keeps the last holder's context hooked (watch) until a
//     holder comes with another one: the calls of one context (which share
//     one, see callTimeouts) hook it once, not once per call.
//  4. Every frame goes to whoever it is for, or is dropped by id. A final
//     response is for the caller registered under its id; a caller that
//     has gone (its context ended) is no longer registered, so its late
//     reply is dropped, never handed to another caller. Frames for other
//     callers are delivered to buffered channels: the holder never waits
//     for anyone. Ids beyond the last issued, and frames the codec refuses,
//     are protocol violations: the worker is killed.
//  5. Frames are read while someone waits. A waiting caller blocked in
//     await takes the role as soon as it is free; when no caller waits,
//     nothing needs reading (late replies wait in the pipe until the next
//     caller reads and drops them). Two cases have no caller: the worker's
//     exit (the watcher takes the role, reads what the worker wrote and
//     fails the conn), and stop (the watcher takes the role and reads
//     until the end, so that a worker never blocks on a full pipe while
//     it shuts down).
//  6. Death reaches every waiter. The conn's death closes dead, which
//     every waiter selects on, and writes to the wake descriptor, so a
//     holder in poll leaves too. The worker's exit wakes the holder as
//     well: with the worker gone, it reads what is left without waiting
//     (poll with no timeout) and fails the conn when the pipe is empty,
//     even when a grandchild still holds the pipe open.
//  7. A frame begun must end within the conn's write timeout of reading
//     time (time the role spends waiting for the rest of it), else the
//     worker broke the protocol (a frame cut off).
//  8. A writer never waits on a worker that waits on it. A worker may
//     stop reading its stdin while it is blocked writing to a full
//     response pipe, and a caller blocked writing a request is not
//     reading: when no caller holds the role, nobody would. So a write
//     that has not finished within writeSlice reads what the worker wrote
//     (drain: the role if it is free, what is in the pipe, no wait), then
//     writes on, until the write timeout.
//  9. A holder that woke another caller yields the processor before it
//     polls. Handing a reply on makes its caller runnable on the holder's
//     processor, and a goroutine blocked in a system call keeps its
//     processor: without the yield, the caller would wait for the runtime
//     to take the processor back from the poll (up to milliseconds)
//     while the worker waits for that caller's next request.
// 10. Release takes the role for good (the token is never put back), so
//     the pipe and the wake descriptor close with no holder using them. A
//     context that ends later finds the wake descriptor closed and leaves
//     it alone: its number may belong to another file by then.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dspgo/dspgo/protocol"
)

// readRole is a conn's reading role and what its holder uses.
type readRole struct {
	token  chan struct{} // the role, while nobody holds it
	frames *frameReader
	fds    [2]unix.PollFd // the response pipe, the wake descriptor

	wakeMu sync.Mutex // orders wakes before the wake descriptor closes
	wakeFD int
	closed bool

	// msg is the frame being handed on, and wakeBuf what resetting the
	// wake descriptor reads: both off the holder's stack.
	msg     protocol.WorkerMessage
	wakeBuf [8]byte

	// woke is set when the holder makes another caller runnable (a
	// reply or a chunk handed on); see invariant 9.
	woke bool

	// watched is the context whose end wakes the poll, and unwatch
	// undoes that (invariant 3); both nil until a holder with a context
	// that can end polls.
	watched context.Context
	unwatch func() bool

	stall      time.Duration // see invariant 7
	stallLeft  time.Duration // reading time left for the frame stallFrame
	stallFrame uint64
	stallArmed bool
}

// newReadRole returns the role for the response pipe fd, free. Without a
// wake descriptor (the error) the role is returned closed: its conn must
// fail at once, and no holder ever polls.
func newReadRole(fd, maxFrame int, stall time.Duration) (*readRole, error) {
	r := &readRole{token: make(chan struct{}, 1), frames: newFrameReader(fd, maxFrame), stall: stall}
	r.token <- struct{}{}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		r.closed = true
		return r, os.NewSyscallError("eventfd", err)
	}
	r.wakeFD = wake
	r.fds = [2]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
	return r, nil
}

// wake ends the holder's poll, if any; it is safe to call at any time,
// also after close.
func (r *readRole) wake() {
	r.wakeMu.Lock()
	defer r.wakeMu.Unlock()
	if !r.closed {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(r.wakeFD, one[:])
	}
}

// watch makes ctx's end wake the poll, in place of the context watched
// so far (invariant 3), unless that one ends with ctx (the same Done
// channel: the same context, or one derived without a cancellation of
// its own). The caller holds the role.
func (r *readRole) watch(ctx context.Context) {
	if r.watched != nil && r.watched.Done() == ctx.Done() {
		return
	}
	if r.unwatch != nil {
		r.unwatch()
	}
	r.watched, r.unwatch = ctx, context.AfterFunc(ctx, r.wake)
}

// close closes the wake descriptor and lets go of the context watched;
// the caller holds the role for good.
func (r *readRole) close() {
	if r.unwatch != nil {
		r.unwatch()
		r.watched, r.unwatch = nil, nil
	}
	r.wakeMu.Lock()
	defer r.wakeMu.Unlock()
	if !r.closed {
		r.closed = true
		_ = unix.Close(r.wakeFD)
	}
}

// waiter is a caller waiting for the reply to its request. It lives on
// the heap (conn.pending holds it), so that what the role's holder hands
// over stays off the callers' stacks.
type waiter struct {
	id    uint64
	reply chan struct{} // capacity 1: a value once resp is set (by a holder that is not this caller)
	resp  protocol.Response
	ex    *extra // its chunks and tools; nil for a plain call
}

// waiters recycles the waiters of plain calls whose reply was delivered:
// then neither conn.pending nor a holder refers to them any more, and
// their reply channel is empty. A waiter whose caller gave up is never
// recycled, since a holder may still be handing it its reply.
var waiters = sync.Pool{New: func() any { return &waiter{reply: make(chan struct{}, 1)} }}

// getWaiter returns a waiter for the call with id, with no extra.
func getWaiter(id uint64) *waiter {
	w := waiters.Get().(*waiter)
	w.id = id
	return w
}

// putWaiter recycles w, a plain call's waiter that got its reply.
func putWaiter(w *waiter) {
	w.resp = protocol.Response{}
	waiters.Put(w)
}

// woken says why await returned.
type woken int

const (
	gotReply  woken = iota // the final response
	gotChunk               // a chunk of the caller's stream
	gotBroken              // the worker broke the stream's rules
	gotCtx                 // the caller's context ended
	gotDead                // the worker died
)

// await waits for w's next event, reading the stream whenever the role is
// free: the final response is then in w.resp, a chunk in w.ex.chunk.
func (c *conn) await(ctx context.Context, w *waiter) woken {
	var chunks <-chan protocol.Chunk
	var broken <-chan struct{}
	if w.ex != nil {
		chunks, broken = w.ex.chunks, w.ex.broken
	}
	for {
		select {
		case <-w.reply:
			return gotReply
		case ck := <-chunks:
			w.ex.chunk = ck
			return gotChunk
		case <-broken:
			return gotBroken
		case <-ctx.Done():
			return gotCtx
		case <-c.dead:
			return gotDead
		case <-c.role.token:
			mine := c.lead(ctx, w, true)
			c.role.token <- struct{}{}
			if mine {
				return gotReply
			}
			// Whatever ended the turn (a chunk, the context, death) is
			// ready now: the select takes it (lead returns at once if it
			// picks the role again).
		}
	}
}

// lead reads frames as the role's holder until w's reply arrives (in
// w.resp; it returns true), a chunk of w's stream arrives, ctx ends, or
// the conn dies. With a nil w (the watcher) it reads until the conn dies.
// With wait false it also returns when the pipe holds nothing more
// (drain). The caller holds the role.
//
// The holder decodes and hands on frames on its own goroutine's stack,
// below its caller's frames: lead and what it calls keep their frames
// small (the decoded message lives in the role, the response in the
// waiter), so that a caller's stack does not grow when it takes the role.
func (c *conn) lead(ctx context.Context, w *waiter, wait bool) bool {
	if w != nil {
		select {
		case <-w.reply: // delivered by the previous holder
			return true
		default:
		}
		if w.ex != nil && (len(w.ex.chunks) > 0 || isClosed(w.ex.broken)) {
			return false
		}
	}
	for {
		// A context that has ended, or death, ends the turn before any
		// frame is taken: the caller returns its error, and what it would
		// have read stays for the next holder (its own reply, once it has
		// gone, is dropped then).
		if isClosed(c.dead) || (w != nil && ctx.Err() != nil) {
			return false
		}
		// The whole frames already read first: no system call.
		switch c.routeBuffered(w) {
		case routedOwnReply:
			return true
		case routedOwnChunk, routedViolation:
			return false
		}
		if wait && c.role.woke {
			// Invariant 9: the callers woken run now, then this holder
			// looks at the buffer again before it polls.
			c.role.woke = false
			runtime.Gosched()
			continue
		}
		if !c.poll(ctx, w, wait) {
			return false
		}
	}
}

// routeBuffered hands on every whole frame the role's frame reader holds:
// routedOwnReply when one was w's final response (in w.resp),
// routedOwnChunk when one was a chunk of w's stream, routedViolation when
// the worker broke the protocol (the conn is dead), else routedOther.
func (c *conn) routeBuffered(w *waiter) routed {
	r := c.role
	got := routedOther
	for {
		body, err := r.frames.next()
		if err != nil {
			c.violate(err.Error())
			return routedViolation
		}
		if body == nil {
			return got
		}
		if err := r.decode(body); err != nil {
			c.violate(err.Error())
			return routedViolation
		}
		switch kind := c.route(&r.msg, w); kind {
		case routedOwnReply:
			got = kind
		case routedOwnChunk:
			if got != routedOwnReply {
				got = kind
			}
		case routedViolation:
			return kind
		}
		r.msg = protocol.WorkerMessage{} // holds no frame's bytes between turns
	}
}

// decode decodes body into r.msg. The decoded message passes through
// this frame only, not through the routing loop's (hence noinline).
//
//go:noinline
func (r *readRole) decode(body []byte) error {
	var err error
	r.msg, err = protocol.DecodeWorkerMessage(body)
	return err
}

// poll waits, as the role's holder, until the response pipe or the wake
// descriptor is readable (wait false: looks without waiting), and reads
// once what the pipe holds. It returns false when the turn ends: the
// worker exited or the pipe failed (the conn is dead), or, without wait,
// nothing was there. For a caller (w not nil) it arranges that ctx's end
// wakes the poll.
func (c *conn) poll(ctx context.Context, w *waiter, wait bool) bool {
	r := c.role
	exited := isClosed(c.w.exited())
	timeout := -1 // no bound while between frames: a worker may be silent
	switch {
	case exited || !wait:
		timeout = 0 // read what is there, wait for nothing
	case r.frames.partial() && r.stall > 0:
		if !r.stallArmed || r.stallFrame != r.frames.frames {
			r.stallArmed, r.stallFrame, r.stallLeft = true, r.frames.frames, r.stall
		}
		if r.stallLeft <= 0 {
			c.violate(fmt.Sprintf("it began a frame and did not finish it within %v (a frame cut off)", r.stall))
			return false
		}
		timeout = int((r.stallLeft + time.Millisecond - 1) / time.Millisecond)
	}
	if w != nil && ctx.Done() != nil {
		r.watch(ctx)
	}
	var began time.Time
	if timeout > 0 {
		began = time.Now()
	}
	r.fds[0].Revents, r.fds[1].Revents = 0, 0
	n, err := unix.Poll(r.fds[:], timeout)
	if err != nil {
		if errors.Is(err, unix.EINTR) {
			return true
		}
		c.fail("polling the worker's output failed: " + err.Error())
		return false
	}
	if timeout > 0 {
		r.stallLeft -= time.Since(began)
	}
	if r.fds[1].Revents != 0 {
		_, _ = unix.Read(r.wakeFD, r.wakeBuf[:]) // resets the eventfd
	}
	switch {
	case r.fds[0].Revents != 0:
		if err := r.frames.fill(); err != nil {
			c.failRead(err)
			return false
		}
	case n == 0 && exited:
		c.fail("the worker exited")
		return false
	case n == 0 && !wait:
		return false
	}
	return true
}

// writeSlice is how long a frame write waits for the worker before the
// writer reads what the worker wrote (invariant 8).
const writeSlice = 10 * time.Millisecond

// stdinWriter writes the worker's stdin for the conn's one protocol.Writer
// (which calls it under its lock, one whole frame at a time), within the
// conn's write timeout, draining the response pipe each writeSlice that
// the write is stuck.
type stdinWriter struct{ c *conn }

func (s stdinWriter) Write(p []byte) (int, error) {
	in := s.c.w.stdin()
	end := time.Now().Add(s.c.timeout)
	written := 0
	for {
		slice := time.Now().Add(writeSlice)
		if slice.After(end) {
			slice = end
		}
		_ = in.SetWriteDeadline(slice)
		n, err := in.Write(p[written:])
		written += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(end) {
			return written, err
		}
		s.c.drain()
	}
}

// drain reads, if no one holds the role, what the worker has written, and
// hands it on; it never waits.
func (c *conn) drain() {
	select {
	case <-c.role.token:
		c.lead(context.Background(), nil, false)
		c.role.token <- struct{}{}
	default: // the holder reads
	}
}

// isClosed reports whether ch is closed (or has a value ready).
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
