package port

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/protocol"
)

// scriptedWorker is a worker whose responses the test writes byte by byte:
// it sees each request the host sends, and decides when it exits, apart
// from its response pipe (as a grandchild can hold a dead worker's stdout
// open).
type scriptedWorker struct {
	hostIn, workerIn net.Conn
	out, outW        *os.File
	requests         chan protocol.Request
	reading          sync.WaitGroup
	done             chan struct{}
	exitOnce         sync.Once
	status           string // exitOK unless set before exit
}

// newScriptedWorker returns a worker that reads its stdin once paused
// closes (nil: at once).
func newScriptedWorker(t *testing.T, paused <-chan struct{}) *scriptedWorker {
	t.Helper()
	s := &scriptedWorker{requests: make(chan protocol.Request, 64), done: make(chan struct{}), status: exitOK}
	var err error
	s.out, s.outW, err = blockingPipe()
	require.NoError(t, err)
	s.hostIn, s.workerIn = net.Pipe()
	s.reading.Add(1)
	go func() {
		defer s.reading.Done()
		r := protocol.NewReader(s.workerIn, 0)
		if paused != nil {
			<-paused
		}
		for {
			req, err := r.ReadRequest()
			if err != nil {
				return
			}
			s.requests <- req
		}
	}()
	return s
}

// next returns the next request of command, skipping cancel frames.
func (s *scriptedWorker) next(t *testing.T, command string) protocol.Request {
	t.Helper()
	for {
		select {
		case req := <-s.requests:
			if req.Command == command {
				return req
			}
			require.Equal(t, protocol.CmdCancel, req.Command)
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s request", command)
		}
	}
}

// write writes raw response bytes.
func (s *scriptedWorker) write(t *testing.T, b []byte) {
	t.Helper()
	_, err := s.outW.Write(b)
	require.NoError(t, err)
}

// frame is the encoded reply to id with result.
func frame(t *testing.T, id uint64, result string) []byte {
	t.Helper()
	b, err := protocol.AppendResponse(nil, &protocol.Response{ID: id, Success: true, Result: json.RawMessage(result)}, 0)
	require.NoError(t, err)
	return b
}

// unread is the number of bytes in the response pipe nobody has read yet.
func (s *scriptedWorker) unread(t *testing.T) int {
	n, err := unix.IoctlGetInt(int(s.out.Fd()), unix.TIOCINQ) // FIONREAD
	require.NoError(t, err)
	return n
}

func (s *scriptedWorker) exit() { s.exitOnce.Do(func() { close(s.done) }) }

func (s *scriptedWorker) stdin() writeDeadliner   { return s.hostIn }
func (s *scriptedWorker) responses() int          { return int(s.out.Fd()) }
func (s *scriptedWorker) pid() int                { return 0 }
func (s *scriptedWorker) closeStdin() error       { return s.hostIn.Close() }
func (s *scriptedWorker) exited() <-chan struct{} { return s.done }
func (s *scriptedWorker) exitStatus() string      { return s.status }
func (s *scriptedWorker) stderrTail() string      { return "" }

func (s *scriptedWorker) signal(sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		s.exitOnce.Do(func() { s.status = "signal: killed"; close(s.done) })
	}
	return nil
}

func (s *scriptedWorker) release() {
	_ = s.hostIn.Close()
	_ = s.workerIn.Close()
	_ = s.out.Close()
	_ = s.outW.Close()
	s.reading.Wait()
}

// waitPolling waits until a caller holding the reading role waits in
// poll(2).
func waitPolling(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	testutil.WaitFor(t, "a holder in poll", func() bool {
		return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("golang.org/x/sys/unix.Poll("))
	})
}

// result is one call's outcome.
type result struct {
	out json.RawMessage
	err error
	at  time.Time
}

func startCall(ctx context.Context, c *conn, command string) <-chan result {
	done := make(chan result, 1)
	go func() {
		out, err := c.call(ctx, adapter.Request{Command: command})
		done <- result{out, err, time.Now()}
	}()
	return done
}

// newServingConn returns a conn over a scripted worker, ended (the worker
// gone, the conn failed and released) when the test ends.
func newServingConn(t *testing.T) (*scriptedWorker, *conn) {
	t.Helper()
	s := newScriptedWorker(t, nil)
	c := newConn("test", s, 0, 10*time.Second, func(*conn) {})
	t.Cleanup(func() {
		s.exit()
		c.fail("the test is over")
		c.release()
	})
	return s, c
}

// TestHolderLeavesMidFrame: the caller holding the reading role stops
// waiting (its context ends) while half of another caller's reply has been
// read. It returns at once; the other caller takes the role over and gets
// its reply whole; the first caller's late reply is dropped, and the conn
// serves on.
func TestHolderLeavesMidFrame(t *testing.T) {
	s, c := newServingConn(t)

	ctxA, cancelA := context.WithCancel(t.Context())
	defer cancelA()
	a := startCall(ctxA, c, "a")
	idA := s.next(t, "a").ID
	waitPolling(t)
	b := startCall(t.Context(), c, "b")
	idB := s.next(t, "b").ID

	replyB := frame(t, idB, `"`+strings.Repeat("b", 50_000)+`"`)
	s.write(t, replyB[:len(replyB)/2])
	testutil.WaitFor(t, "half of b's reply read", func() bool { return s.unread(t) == 0 })
	cancelAt := time.Now()
	cancelA()
	ra := <-a
	assert.Equal(t, adapter.CodeCanceled, adapter.CodeOf(ra.err), "%v", ra.err)
	assert.Less(t, ra.at.Sub(cancelAt), time.Second, "the holder returned at once")

	s.write(t, replyB[len(replyB)/2:])
	s.write(t, frame(t, idA, `"late"`))
	rb := <-b
	require.NoError(t, rb.err)
	assert.Equal(t, `"`+strings.Repeat("b", 50_000)+`"`, string(rb.out), "b's reply, whole")

	d := startCall(t.Context(), c, "d")
	s.write(t, frame(t, s.next(t, "d").ID, `"d"`))
	rd := <-d
	require.NoError(t, rd.err)
	assert.Equal(t, `"d"`, string(rd.out), "a's late reply went to nobody")
	assert.False(t, isClosed(c.dead), "a late reply is no violation")
}

// TestWatchFollowsTheHolder: the role keeps the last holder's context
// hooked across calls from that context, and hooks the next holder's
// context in its place: a call from another context still ends as soon as
// its context does, and the end of the context watched before only makes
// the holder look again.
func TestWatchFollowsTheHolder(t *testing.T) {
	s, c := newServingConn(t)

	ctxA, cancelA := context.WithCancel(t.Context())
	defer cancelA()
	for i := range 2 {
		a := startCall(ctxA, c, "a")
		id := s.next(t, "a").ID
		waitPolling(t)
		s.write(t, frame(t, id, `"a"`))
		ra := <-a
		require.NoError(t, ra.err, "call %d", i)
		assert.True(t, watched(c) == ctxA, "call %d: the role watches the caller's context", i)
	}

	ctxB, cancelB := context.WithCancel(t.Context())
	defer cancelB()
	b := startCall(ctxB, c, "b")
	idB := s.next(t, "b").ID
	waitPolling(t)
	cancelA() // no caller left with it: the holder looks again and goes on
	s.write(t, frame(t, idB, `"b"`))
	rb := <-b
	require.NoError(t, rb.err)
	assert.Equal(t, `"b"`, string(rb.out))
	assert.True(t, watched(c) == ctxB, "the holder's context replaced the one before")

	d := startCall(ctxB, c, "d")
	s.next(t, "d")
	waitPolling(t)
	cancelAt := time.Now()
	cancelB()
	rd := <-d
	assert.Equal(t, adapter.CodeCanceled, adapter.CodeOf(rd.err), "%v", rd.err)
	assert.Less(t, rd.at.Sub(cancelAt), time.Second, "the holder returned at once")
}

// watched returns the context c's role watches, taking the role to read
// it.
func watched(c *conn) context.Context {
	<-c.role.token
	defer func() { c.role.token <- struct{}{} }()
	return c.role.watched
}

// TestExitFailsTheHolder: the worker exits while its response pipe stays
// open (a grandchild holds it) and a caller holds the reading role in
// poll: it is woken, reads what the worker wrote last (another caller's
// reply), and fails with CodeUnavailable instead of waiting for the end of
// a pipe that never comes.
func TestExitFailsTheHolder(t *testing.T) {
	s := newScriptedWorker(t, nil)
	c := newConn("test", s, 0, 10*time.Second, func(*conn) {})
	defer c.release()

	a := startCall(t.Context(), c, "a")
	s.next(t, "a")
	testutil.WaitFor(t, "a holds the role", func() bool { return len(c.role.token) == 0 })
	b := startCall(t.Context(), c, "b")
	idB := s.next(t, "b").ID

	s.write(t, frame(t, idB, `"b"`)) // read before the exit
	rb := <-b
	require.NoError(t, rb.err)
	assert.Equal(t, `"b"`, string(rb.out))
	waitPolling(t)
	s.exit()
	ra := <-a
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(ra.err), "%v", ra.err)
	assert.ErrorContains(t, ra.err, "the worker exited")
}

// TestStopReadsToTheEnd: while the worker shuts down with no caller
// waiting, its replies are still read, so it never blocks writing to a
// full pipe and exits in its own time.
func TestStopReadsToTheEnd(t *testing.T) {
	s := newScriptedWorker(t, nil)
	c := newConn("test", s, 0, 10*time.Second, func(*conn) {})
	late := lateReplies(t, 3*64<<10) // more than the pipe holds
	stopped := make(chan error, 1)
	go func() { stopped <- c.stop(10 * time.Second) }()
	s.next(t, protocol.CmdShutdown)
	s.write(t, late) // blocks unless the host reads
	s.exit()
	require.NoError(t, <-stopped)
}

// TestWriterDrainsAStuckWorker: the worker stops reading its stdin until
// it has written more replies than its response pipe holds, and no caller
// waits for a reply: the caller whose request is stuck behind them reads
// them (as nobody else would) and its call goes through, instead of both
// sides waiting for each other until the write timeout.
func TestWriterDrainsAStuckWorker(t *testing.T) {
	paused := make(chan struct{})
	s := newScriptedWorker(t, paused)
	c := newConn("test", s, 0, 20*time.Second, func(*conn) {})
	defer func() {
		s.exit()
		c.fail("the test is over")
		c.release()
	}()
	late := lateReplies(t, 3*64<<10)
	wrote := make(chan error, 1)
	go func() { // the worker: blocked writing until the host reads
		_, err := s.outW.Write(late)
		close(paused)
		wrote <- err
	}()
	start := time.Now()
	a := startCall(t.Context(), c, "a")
	s.write(t, frame(t, s.next(t, "a").ID, `"a"`))
	ra := <-a
	require.NoError(t, ra.err)
	assert.Equal(t, `"a"`, string(ra.out))
	require.NoError(t, <-wrote)
	assert.Less(t, time.Since(start), 10*time.Second, "not the write timeout")
}

// lateReplies is n bytes of whole frames, replies to an id the host
// issued (the init ping's) and nobody waits for.
func lateReplies(t *testing.T, n int) []byte {
	var out []byte
	for len(out) < n {
		out = append(out, frame(t, protocol.InitID, `"`+strings.Repeat("x", 1000)+`"`)...)
	}
	return out
}
