package port

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/dspgo/dspgo/protocol"
)

// A process worker's responses are read by the callers themselves: the
// caller holding the reading role (the leader) reads frames, hands each
// to its caller, and gives the role up when its own reply arrives, its
// context ends or the worker dies; another waiting caller then takes it.
// A caller alone in flight thus reads its own reply in its own goroutine,
// with no hand-off between goroutines: that hand-off was a fifth of a
// small call's host CPU. The leader waits with poll(2) on the response
// pipe and on a wake pipe that its context's end writes to, so it still
// returns at once when its context ends.

// directReader is a worker whose response stream is a file descriptor in
// blocking mode that callers can poll.
type directReader interface {
	responseFD() int
}

func (p *process) responseFD() int { return int(p.out.Fd()) }

// leading is the state of a conn in caller-reads mode.
type leading struct {
	token  chan struct{} // holds the reading role while no one has it
	fd     int           // the response pipe
	wakeR  int           // poll wakes when a leader's context ends
	wakeW  int
	reader *protocol.Reader

	mu     sync.Mutex // orders late wakes before the close of the wake pipe
	closed bool
}

func newLeading(fd int, r *protocol.Reader) (*leading, error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return nil, os.NewSyscallError("pipe2", err)
	}
	l := &leading{token: make(chan struct{}, 1), fd: fd, wakeR: p[0], wakeW: p[1], reader: r}
	l.token <- struct{}{}
	return l, nil
}

// wake interrupts a leader's poll. A context can end after its leader has
// gone and the conn closed: the pipe's descriptors are then never touched,
// since their numbers may belong to another file by then.
func (l *leading) wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		_, _ = syscall.Write(l.wakeW, []byte{1})
	}
}

func (l *leading) drainWake() {
	var b [64]byte
	for {
		if n, err := syscall.Read(l.wakeR, b[:]); n <= 0 || err != nil {
			return
		}
	}
}

func (l *leading) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	_ = syscall.Close(l.wakeR)
	_ = syscall.Close(l.wakeW)
}

// errLeaderStopped reports that the leader's context ended while it read.
var errLeaderStopped = errors.New("port: the reading caller's context ended")

// lead reads frames, delivering each to its caller, until the reply to id
// arrives (returned), ctx ends (errLeaderStopped) or the stream fails (the
// conn is failed and its error returned). The caller holds the token.
func (c *conn) lead(ctx context.Context, id uint64, ch chan protocol.Response) (protocol.Response, error) {
	l := c.leading
	select {
	case resp := <-ch: // delivered by the previous leader
		return resp, nil
	default:
	}
	stop := context.AfterFunc(ctx, l.wake)
	defer stop()
	for {
		if l.reader.Buffered() == 0 {
			fds := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLIN}, {Fd: int32(l.wakeR), Events: unix.POLLIN}}
			if _, err := unix.Poll(fds, -1); err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				c.fail("polling the worker's output failed: " + err.Error())
				return protocol.Response{}, errLeaderStopped
			}
			if fds[1].Revents != 0 {
				l.drainWake()
			}
			if ctx.Err() != nil {
				return protocol.Response{}, errLeaderStopped
			}
			if fds[0].Revents == 0 {
				continue // a wake meant for an earlier leader
			}
		}
		resp, err := l.reader.ReadResponse()
		if err != nil {
			c.failRead(err)
			return protocol.Response{}, errLeaderStopped
		}
		c.mu.Lock()
		dst := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if resp.ID == id {
			return resp, nil
		}
		if dst != nil {
			dst <- resp // buffered: never blocks
		}
	}
}
