// Package testutil holds helpers shared by dspgo's tests: locating the
// Python worker and interpreter, waiting for a condition, and proving that
// no child process outlives a test.
package testutil

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dspgo/dspgo/internal/proc"
	"github.com/dspgo/dspgo/internal/wait"
)

// Discard is a logger that drops everything, for tests whose adapters
// would otherwise log to stderr.
var Discard = slog.New(slog.DiscardHandler)

// PythonEnv is the environment variable that names the interpreter tests
// use; empty means "python3" from PATH. The Makefile sets it from PYTHON.
const PythonEnv = "DSPGOTEST_PYTHON"

// DSPyPythonEnv names the interpreter of the Python test environment that
// has the real dspy (make deps creates it). Empty skips the tests that need
// it, unless RequireDSPyEnv is set (make test sets both).
const DSPyPythonEnv = "DSPGOTEST_DSPY_PYTHON"

// RequireDSPyEnv, when set to 1, makes a missing dspy test environment a
// failure instead of a skip.
const RequireDSPyEnv = "DSPGOTEST_REQUIRE_DSPY"

// DSPyPython returns the interpreter of the Python test environment with
// dspy, having checked once per test binary that dspy imports there. Without
// one it skips the test, or fails it when RequireDSPyEnv is 1.
func DSPyPython(t testing.TB) string {
	t.Helper()
	dspyPython.once.Do(func() {
		name := os.Getenv(DSPyPythonEnv)
		if name == "" {
			dspyPython.err = fmt.Errorf("%s is not set (make test sets it to the interpreter of the environment make deps creates)", DSPyPythonEnv)
			return
		}
		out, err := exec.Command(name, "-c", "import sys, dspy; print(sys.executable)").CombinedOutput()
		if err != nil {
			dspyPython.err = fmt.Errorf("%s=%s cannot import dspy (run make deps): %v: %s", DSPyPythonEnv, name, err, bytes.TrimSpace(out))
			return
		}
		dspyPython.path = strings.TrimSpace(string(out))
	})
	if dspyPython.err != nil {
		if os.Getenv(RequireDSPyEnv) == "1" {
			t.Fatal(dspyPython.err)
		}
		t.Skip(dspyPython.err)
	}
	return dspyPython.path
}

var dspyPython struct {
	once sync.Once
	path string
	err  error
}

// RepoRoot returns the absolute path of the repository's root.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// PythonDir returns the directory that holds the dspgo_worker package; it
// goes on PYTHONPATH.
func PythonDir() string { return filepath.Join(RepoRoot(), "python") }

var python struct {
	once sync.Once
	path string
	err  error
}

// Python returns the real path of the test interpreter, resolved once per
// test binary (a pyenv shim costs tens of milliseconds per start), or fails
// the test when there is none.
func Python(t testing.TB) string {
	t.Helper()
	python.once.Do(func() {
		name := os.Getenv(PythonEnv)
		if name == "" {
			name = "python3"
		}
		out, err := exec.Command(name, "-c", "import sys; print(sys.executable)").Output()
		if err != nil {
			python.err = fmt.Errorf("the tests need Python 3.9 or newer as %q (set %s to choose another): %w", name, PythonEnv, err)
			return
		}
		python.path = strings.TrimSpace(string(out))
	})
	if python.err != nil {
		t.Fatal(python.err)
	}
	return python.path
}

// WorkerCommand returns a command that runs the Python worker from this
// checkout with the given arguments, in a minimal environment.
func WorkerCommand(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(Python(t), append([]string{"-m", "dspgo_worker"}, args...)...)
	cmd.Env = []string{"PYTHONPATH=" + PythonDir(), "PYTHONDONTWRITEBYTECODE=1", "PATH=" + os.Getenv("PATH")}
	return cmd
}

// WrappedPython returns an interpreter for a worker that does not stop
// cleanly: a shell script, in a test directory, that runs the test
// interpreter with its arguments and then the shell command after (such
// as "exit 7" or "sleep 60"), as the process the host started, in the
// worker's process group.
func WrappedPython(t testing.TB, after string) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "python")
	body := fmt.Sprintf("#!/bin/sh\n%s \"$@\"\n%s\n", strconv.Quote(Python(t)), after)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	return script
}

var verified sync.Map // testing.TB → true: VerifyNoChildren is registered

// VerifyNoChildren registers a cleanup that fails the test if any child
// process of this test binary is still alive (or unreaped) once the test
// and its other cleanups are done. It waits up to 5 s for children that are
// exiting. Call it before starting processes, so that its check runs after
// the cleanups that stop them; later calls for the same test do nothing.
func VerifyNoChildren(t testing.TB) {
	t.Helper()
	if _, loaded := verified.LoadOrStore(t, true); loaded {
		return
	}
	t.Cleanup(func() {
		defer verified.Delete(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if !wait.Until(ctx, func() bool { return len(Children()) == 0 }) {
			t.Errorf("child processes survived the test: %v", Children())
		}
	})
}

// WaitTimeout is how long WaitFor waits.
const WaitTimeout = 15 * time.Second

// WaitFor polls cond (every wait.Interval) until it holds, and fails the
// test, naming what it waited for, when it still does not after
// WaitTimeout. It is for state the test can only observe; a test that can
// wait on a channel does.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if !wait.Until(ctx, cond) {
		t.Fatalf("still waiting after %v for %s", WaitTimeout, what)
	}
}

// Children lists the pids and command names of this process's children,
// read from /proc.
func Children() []string {
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if fields, comm, err := proc.Stat(pid); err == nil && fields[1] == strconv.Itoa(self) {
			kids = append(kids, fmt.Sprintf("%d (%s)", pid, comm))
		}
	}
	return kids
}

// Alive reports whether a process with the pid exists and is not a zombie.
func Alive(pid int) bool {
	fields, _, err := proc.Stat(pid)
	return err == nil && fields[0] != "Z"
}

// SyncBuffer is a bytes.Buffer safe for a writer goroutine (an exec
// copier, a command under test) and the test reading it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
