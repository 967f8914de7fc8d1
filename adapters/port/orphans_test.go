package port_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/dspgoenv"
	"github.com/dspgo/dspgo/internal/testutil"
)

// lookalike starts a process that looks like a worker of the run: its
// command line runs dspgo_worker and its environment has the run id. It
// is in its own session, without a parent-death signal: a worker that
// escaped its host.
func lookalike(t *testing.T, runID string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(testutil.Python(t), "-c", "import sys, time; time.sleep(600)", "-m", "dspgo_worker")
	cmd.Env = []string{dspgoenv.RunID + "=" + runID}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func writeState(t *testing.T, dir, runID string, hostPID int, hostStart uint64, workers ...int) {
	t.Helper()
	data, err := json.Marshal(map[string]any{"host_pid": hostPID, "host_start": hostStart, "workers": workers})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, runID+".json"), data, 0o600))
}

func TestReapOrphans(t *testing.T) {
	testutil.VerifyNoChildren(t)
	dir := t.TempDir()

	// A dead host (a pid that cannot exist) left two workers behind.
	const dead, live = "00000000000000de", "00000000000000a1"
	orphan := lookalike(t, dead)
	other := lookalike(t, "00000000000000b0") // listed, but another run's process
	writeState(t, dir, dead, 1<<30, 1, orphan.Process.Pid, other.Process.Pid)

	// A live host (this test) with a worker of its own.
	mine := lookalike(t, live)
	start := hostStart(t)
	writeState(t, dir, live, os.Getpid(), start, mine.Process.Pid)

	// Files not named as a run's id are never touched, whatever they hold.
	for _, name := range []string{"nats-4222.json", "notes.json", "00000000000000DE.json"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(`{"users":[]}`), 0o600))
	}

	killed, err := port.ReapOrphans(dir)
	require.NoError(t, err)
	assert.Equal(t, []int{orphan.Process.Pid}, killed, "only the dead run's own worker, verified by command line and run id")
	_ = orphan.Wait()
	assert.False(t, testutil.Alive(orphan.Process.Pid))
	assert.True(t, testutil.Alive(other.Process.Pid), "never by pid alone")
	assert.True(t, testutil.Alive(mine.Process.Pid), "a live host's workers are its own")
	_, err = os.Stat(filepath.Join(dir, dead+".json"))
	assert.True(t, os.IsNotExist(err), "the dead run's file is removed")
	_, err = os.Stat(filepath.Join(dir, live+".json"))
	assert.NoError(t, err)
	for _, name := range []string{"nats-4222.json", "notes.json", "00000000000000DE.json"} {
		_, err = os.Stat(filepath.Join(dir, name))
		assert.NoError(t, err, "%s is no run's file", name)
	}
}

// TestStateDirIsItsOwn: the run state files have a directory of their
// own, apart from the other files dspgo keeps in $XDG_RUNTIME_DIR/dspgo
// (an embedded NATS server's local credentials).
func TestStateDirIsItsOwn(t *testing.T) {
	x := t.TempDir()
	getenv := func(k string) string { return map[string]string{"XDG_RUNTIME_DIR": x}[k] }
	assert.Equal(t, filepath.Join(x, "dspgo", "runs"), port.StateDir(getenv))
}

// hostStart reads this process's start time as the state file records it.
func hostStart(t *testing.T) uint64 {
	data, err := os.ReadFile("/proc/self/stat")
	require.NoError(t, err)
	i := len(data) - 1
	for data[i] != ')' {
		i--
	}
	var fields []string
	cur := ""
	for _, c := range string(data[i+2:]) {
		if c == ' ' {
			fields = append(fields, cur)
			cur = ""
			continue
		}
		cur += string(c)
	}
	n, err := strconv.ParseUint(fields[19], 10, 64)
	require.NoError(t, err)
	return n
}

// TestWorkersAreRecordedWhileTheyRun: a worker's pid is in this run's
// state file while it runs and leaves it when it is reaped.
func TestWorkersAreRecordedWhileTheyRun(t *testing.T) {
	dir := port.StateDir(os.Getenv)
	if dir == "" {
		t.Skip("no per-user state directory on this machine")
	}
	a := newPython(t, port.Options{})
	pid := a.Worker().PID
	recorded := func() bool {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			var st struct{ Workers []int }
			if json.Unmarshal(data, &st) == nil {
				for _, p := range st.Workers {
					if p == pid {
						return true
					}
				}
			}
		}
		return false
	}
	assert.True(t, recorded())
	require.NoError(t, a.Close(t.Context()))
	testutil.WaitFor(t, "the run's state file gone with its last worker", func() bool { return !recorded() })
}

// TestHostKilledWithFourWorkers: a host SIGKILLed with 4 workers leaves
// none after 2 s, and a worker made to ignore its parent's death (and
// stuck, so that it cannot even see the end of its stdin) is reaped by the
// next host's start.
func TestHostKilledWithFourWorkers(t *testing.T) {
	switch os.Getenv("DSPGOTEST_HOST_MODE") {
	case "serve":
		fourWorkerHost()
		return
	case "start":
		nextHost()
		return
	}
	testutil.VerifyNoChildren(t)
	state := t.TempDir()
	modules := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(modules, "escape.py"), []byte(
		"import ctypes, threading\nfrom dspgo_worker import command\n@command('escape', inline=True)\ndef escape(args, ctx):\n"+
			"    ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG: none, on the main thread (inline), the child the kernel signals\n"+
			"    threading.Event().wait()  # and the reading thread stuck: the end of stdin goes unseen\n"), 0o600))
	helper := func(mode string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHostKilledWithFourWorkers$")
		cmd.Env = append(os.Environ(), "DSPGOTEST_HOST_MODE="+mode, "XDG_RUNTIME_DIR="+state,
			"DSPGOTEST_MODULES="+modules, testutil.PythonEnv+"="+testutil.Python(t))
		return cmd
	}

	host := helper("serve")
	stdout, err := host.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, host.Start())
	var pids []int
	dec := json.NewDecoder(stdout)
	require.NoError(t, dec.Decode(&pids), "the host prints its workers' pids, the escaped one first")
	require.Len(t, pids, 4)
	escaped := pids[0]
	t.Cleanup(func() { _ = syscall.Kill(escaped, syscall.SIGKILL) })

	require.NoError(t, host.Process.Kill())
	_ = host.Wait()
	require.Eventually(t, func() bool {
		return !testutil.Alive(pids[1]) && !testutil.Alive(pids[2]) && !testutil.Alive(pids[3])
	}, 2*time.Second, 10*time.Millisecond, "the workers died with their host")
	require.True(t, testutil.Alive(escaped), "the escaped worker outlived its host")

	next := helper("start")
	out, err := next.CombinedOutput()
	require.NoError(t, err, "%s", out)
	testutil.WaitFor(t, "the next host's start reaped the escaped worker", func() bool { return !testutil.Alive(escaped) })
}

// fourWorkerHost runs four workers, lets the first escape its parent-death
// signal, prints their pids and waits to be killed.
func fourWorkerHost() {
	python := os.Getenv(testutil.PythonEnv)
	var pids []int
	for i := range 4 {
		a, err := port.New(context.Background(), port.Options{Python: python, WorkerDir: testutil.PythonDir(), Logger: quiet,
			Handlers: []string{"escape"}, Env: []string{"PYTHONPATH=" + testutil.PythonDir() + ":" + os.Getenv("DSPGOTEST_MODULES")}})
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		if i == 0 {
			// The worker answers no more once it has escaped: give it a
			// moment, then go on.
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			_, _ = a.Call(ctx, adapter.Request{Command: "escape"})
			cancel()
		}
		pids = append(pids, a.Worker().PID)
	}
	b, _ := json.Marshal(pids)
	fmt.Println(string(b))
	select {}
}

// nextHost starts one worker, which reaps the dead runs first, and exits.
func nextHost() {
	a, err := port.New(context.Background(), port.Options{Python: os.Getenv(testutil.PythonEnv), WorkerDir: testutil.PythonDir(), Logger: quiet})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	_ = a.Close(context.Background())
}
