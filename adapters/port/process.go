package port

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// worker is one started worker: a process or an in-memory handler.
type worker interface {
	// stdin is the request stream.
	stdin() writeDeadliner
	// responses is the read end of the response pipe, a descriptor in
	// blocking mode outside the runtime's poller: the reading role
	// (readrole.go) polls and reads it, and only it. It stays open until
	// release.
	responses() int
	// pid is the process id; 0 for an in-memory worker.
	pid() int
	// closeStdin ends the request stream: the worker sees EOF.
	closeStdin() error
	// signal signals the worker's whole process group; a group already
	// gone is no error.
	signal(syscall.Signal) error
	// exited is closed once the worker has ended and been reaped.
	exited() <-chan struct{}
	// exitStatus describes how the worker ended, exitOK for a clean end;
	// valid after exited.
	exitStatus() string
	// stderrTail returns the last bytes of the worker's stderr.
	stderrTail() string
	// release frees the host's ends of the streams and joins the worker's
	// goroutines; called once, after exited.
	release()
}

type writeDeadliner interface {
	io.Writer
	SetWriteDeadline(time.Time) error
}

// starter runs process starts on one OS thread that lives as long as the
// adapter: Pdeathsig fires when the thread that started a child exits, not
// when the process does (golang/go#27505), so starting from an arbitrary
// goroutine's thread could kill a healthy worker whenever the runtime
// retires that thread. When the starter stops, its thread exits, and any
// worker still alive gets the death signal.
type starter struct {
	jobs chan func()
	done chan struct{}
}

func newStarter() *starter {
	s := &starter{jobs: make(chan func()), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		for job := range s.jobs {
			job()
		}
	}()
	return s
}

func (s *starter) run(job func()) {
	done := make(chan struct{})
	s.jobs <- func() { job(); close(done) }
	<-done
}

func (s *starter) stop() {
	close(s.jobs)
	<-s.done
}

// process is a worker running as a child process in its own process
// group. Its stdio are plain pipes held as *os.File, so exec starts no
// copying goroutines, writes can have deadlines, and Wait returns when the
// process ends even if a grandchild still holds a pipe.
type process struct {
	cmd       *exec.Cmd
	in        *os.File // host end of the worker's stdin
	out       *os.File // host end of the worker's stdout
	errR      *os.File // host end of the worker's stderr
	tail      *tail
	done      chan struct{}
	pumpDone  chan struct{}
	waitErr   error
	pgid      int
	startedAt time.Time
}

// startProcess starts a worker and records it in the run r until it is
// reaped.
func startProcess(s *starter, path string, args, env []string, dir string, tailSize int, log *slog.Logger, r *run) (*process, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := blockingPipe()
	if err != nil {
		closeAll(inR, inW)
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s.run(func() { err = cmd.Start() })
	closeAll(inR, outW, errW) // the child holds its own copies now
	if err != nil {
		closeAll(inW, outR, errR)
		return nil, err
	}
	p := &process{cmd: cmd, in: inW, out: outR, errR: errR, tail: newTail(tailSize),
		done: make(chan struct{}), pumpDone: make(chan struct{}), pgid: cmd.Process.Pid, startedAt: time.Now()}
	go func() {
		defer close(p.pumpDone)
		pumpStderr(errR, p.tail, log)
	}()
	pid := cmd.Process.Pid
	r.add(pid)
	go func() {
		p.waitErr = cmd.Wait()
		r.remove(pid)
		close(p.done)
	}()
	return p, nil
}

// blockingPipe returns a pipe whose read end is in blocking mode, outside
// the runtime's poller: the caller holding the reading role then wakes
// straight from its poll system call when a response arrives, without a
// trip through the runtime's poller, which costs a fifth or more of a small
// call's host CPU. The end is closed only in release, when no one holds
// the role.
func blockingPipe() (r, w *os.File, err error) {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	return os.NewFile(uintptr(fds[0]), "|0"), os.NewFile(uintptr(fds[1]), "|1"), nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

func (p *process) stdin() writeDeadliner   { return p.in }
func (p *process) responses() int          { return int(p.out.Fd()) }
func (p *process) pid() int                { return p.cmd.Process.Pid }
func (p *process) closeStdin() error       { return p.in.Close() }
func (p *process) exited() <-chan struct{} { return p.done }

// stderrSettle bounds how long stderrTail waits, once the worker has
// exited, for the stderr pump to read what the worker wrote last.
const stderrSettle = 250 * time.Millisecond

// stderrTail returns the last bytes of the worker's stderr. Once the worker
// has exited it first lets the pump reach the end of the pipe (at most
// stderrSettle: a grandchild may hold the pipe open), so that an error
// built from it says why the worker died.
func (p *process) stderrTail() string {
	select {
	case <-p.done:
		select {
		case <-p.pumpDone:
		case <-time.After(stderrSettle):
		}
	default:
	}
	return p.tail.String()
}

// signal signals the process group: the worker and any child it started
// that stayed in the group. Signalling a group whose leader has exited
// still reaches the rest of it; a group with no process left is no error.
func (p *process) signal(sig syscall.Signal) error {
	if err := syscall.Kill(-p.pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return os.NewSyscallError("kill", err)
	}
	return nil
}

// exitOK is the exit status of a worker that ended cleanly.
const exitOK = "exit status 0"

// exitHandlersFailed is the worker's exit status when a --handlers module
// failed to import (docs/protocol.md, "Worker command line and exit
// status").
const exitHandlersFailed = 4

func (p *process) exitStatus() string {
	var exit *exec.ExitError
	switch {
	case p.waitErr == nil:
		return exitOK
	case errors.As(p.waitErr, &exit):
		status := exit.ProcessState.String() // "exit status 3" or "signal: killed"
		if exit.ExitCode() == exitHandlersFailed {
			status += " (a handler module failed to import: check python.handlers, and that python.interpreter is the one its packages are installed in)"
		}
		return status
	}
	return p.waitErr.Error()
}

// release kills what is left of the group, closes the host's pipe ends
// and joins the stderr pump. A grandchild that left the group can still
// hold stderr open; closing our end ends the pump regardless.
func (p *process) release() {
	_ = p.signal(syscall.SIGKILL)
	closeAll(p.in, p.out)
	select {
	case <-p.pumpDone:
	case <-time.After(100 * time.Millisecond):
		_ = p.errR.Close()
		<-p.pumpDone
	}
	_ = p.errR.Close()
}

func (p *process) String() string { return fmt.Sprintf("pid %d", p.pid()) }
