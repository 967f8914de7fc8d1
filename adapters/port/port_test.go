package port_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/lmtest"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/protocol"
)

// newPython starts a Python worker with diagnostics for a test, and
// closes it, proving that no process survives.
func newPython(t *testing.T, opts port.Options) *port.Adapter {
	t.Helper()
	testutil.VerifyNoChildren(t)
	opts.Python = testutil.Python(t)
	if opts.WorkerDir == "" && opts.CacheDir == "" {
		opts.WorkerDir = testutil.PythonDir()
	}
	opts.Diagnostics = true
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	a, err := port.New(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close(context.Background())) })
	return a
}

func call(t *testing.T, a adapter.Adapter, ctx context.Context, command, args string) (json.RawMessage, error) {
	t.Helper()
	var raw json.RawMessage
	if args != "" {
		raw = json.RawMessage(args)
	}
	resp, err := a.Call(ctx, adapter.Request{Command: command, Args: raw})
	return resp.Result, err
}

func TestStartFailures(t *testing.T) {
	testutil.VerifyNoChildren(t)
	ctx := t.Context()

	_, err := port.New(ctx, port.Options{Python: "no-such-python-here", Logger: quiet})
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "was not found on PATH")

	_, err = port.New(ctx, port.Options{Python: "/nonexistent/python3", WorkerDir: testutil.PythonDir(), Logger: quiet})
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "cannot start /nonexistent/python3")

	_, err = port.New(ctx, port.Options{Python: testutil.Python(t), WorkerDir: t.TempDir(), Logger: quiet})
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err), "an import error")
	assert.ErrorContains(t, err, "exit status 1")
	assert.ErrorContains(t, err, "No module named dspgo_worker", "the stderr tail says why")
	assert.Regexp(t, `: worker \(pid \d+\) is gone: `, err.Error(), "a worker gone before its hello is named by its pid")

	// A worker that never answers its init ping: a handler module that
	// blocks at import.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stuck.py"), []byte("import threading\nthreading.Event().wait()\n"), 0o600))
	start := time.Now()
	_, err = port.New(ctx, port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Logger: quiet,
		Handlers: []string{"stuck"}, Env: []string{"PYTHONPATH=" + testutil.PythonDir() + ":" + dir}, StartTimeout: 300 * time.Millisecond})
	assert.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "did not answer the init ping in time")
	assert.Less(t, time.Since(start), 10*time.Second)

	// A handler module that fails to import: the error says so and how to
	// fix it, and quotes the worker's record, not its JSON and traceback.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.py"), []byte("import no_such_package_here\n"), 0o600))
	_, err = port.New(ctx, port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Logger: quiet,
		Handlers: []string{"broken"}, Env: []string{"PYTHONPATH=" + testutil.PythonDir() + ":" + dir}})
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "exit status 4 (a handler module failed to import: check python.handlers, and that python.interpreter")
	assert.ErrorContains(t, err, `stderr: error: cannot load handler module 'broken': ModuleNotFoundError: No module named 'no_such_package_here'`)
	assert.NotContains(t, err.Error(), "Traceback")
	assert.NotContains(t, err.Error(), `"level"`)

	// A worker speaking another protocol version.
	_, err = port.New(ctx, port.Options{Logger: quiet, Handler: func() protocol.Handler { return versionHandler{} }})
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "protocol version 99")
}

type versionHandler struct{}

func (versionHandler) Handle(_ context.Context, req protocol.Request) protocol.Response {
	return protocol.Response{ID: req.ID, Success: true, Result: json.RawMessage(`{"protocol_version":99}`)}
}

func TestKillMidCall(t *testing.T) {
	a := newPython(t, port.Options{Restart: port.RestartPolicy{Min: time.Millisecond}})
	ctx := t.Context()
	pid := a.Worker().PID
	require.NotZero(t, pid)

	done := make(chan error, 1)
	go func() { _, err := call(t, a, ctx, "hang", "{}"); done <- err }()
	testutil.WaitFor(t, "the call is in flight", func() bool { return a.Worker().InFlight == 1 })
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))

	err := <-done
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "signal: killed")

	out, err := call(t, a, ctx, "echo", `{"value":"after"}`)
	require.NoError(t, err, "calls wait for the restarted worker")
	assert.JSONEq(t, `"after"`, string(out))
	info := a.Worker()
	assert.EqualValues(t, 1, info.Restarts)
	assert.NotEqual(t, pid, info.PID)
	assert.False(t, testutil.Alive(pid))
}

func TestGarbageOnTheStreamBreaksTheWorker(t *testing.T) {
	a := newPython(t, port.Options{Restart: port.RestartPolicy{Min: time.Millisecond}})
	ctx := t.Context()
	pid := a.Worker().PID
	// The worker writes raw bytes onto its protocol stream, as broken C
	// code might: the host cannot trust the stream any more.
	_, err := call(t, a, ctx, "garbage", `{"hex":"00000005ffffffffff"}`)
	require.Error(t, err)
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "broke the protocol")

	out, err := call(t, a, ctx, "echo", `{"value":1}`)
	require.NoError(t, err)
	assert.JSONEq(t, `1`, string(out))
	assert.NotEqual(t, pid, a.Worker().PID, "a fresh worker")
}

func TestPrintsToStdoutDoNotCorruptTheStream(t *testing.T) {
	a := newPython(t, port.Options{})
	_, err := call(t, a, t.Context(), "print_stdout", `{"text":"\u0000\u0000\u0000\u0010{\"id\":1}"}`)
	require.NoError(t, err)
	out, err := call(t, a, t.Context(), "echo", `{"value":"intact"}`)
	require.NoError(t, err)
	assert.JSONEq(t, `"intact"`, string(out))
	assert.Zero(t, a.Worker().Restarts)
}

func TestLateReplyGoesToNobody(t *testing.T) {
	for name, a := range map[string]*port.Adapter{
		"python": newPython(t, port.Options{}),
		"memory": newMemory(t, port.Options{}),
	} {
		t.Run(name, func(t *testing.T) {
			slow := func(ctx context.Context) error {
				_, err := call(t, a, ctx, "sleep", `{"seconds":0.3}`)
				return err
			}
			if name == "memory" {
				// The mock's command set has no sleep: a slow LM instead.
				c := dspgo.NewClient(a)
				p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
				require.NoError(t, err)
				require.NoError(t, c.ConfigureLM(t.Context(), dspgo.LMConfig{Delay: 300 * time.Millisecond}))
				slow = func(ctx context.Context) error {
					_, err := c.Execute(ctx, p.ID, map[string]any{"q": "?"})
					return err
				}
			}
			for i := range 5 {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
				err := slow(ctx)
				cancel()
				require.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err), "round %d: %v", i, err)
				out, err := call(t, a, t.Context(), "ping", "")
				require.NoError(t, err)
				assert.Contains(t, string(out), "pong", "the next call gets its own reply, not the late one")
			}
			testutil.WaitFor(t, "the late replies are dropped", func() bool { return a.Worker().InFlight == 0 })
		})
	}
}

func newMemory(t *testing.T, opts port.Options) *port.Adapter {
	t.Helper()
	opts.Handler, opts.Logger = memoryHandler, quiet
	a, err := port.New(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close(context.Background())) })
	return a
}

func TestGrandchildIsGoneAfterClose(t *testing.T) {
	testutil.VerifyNoChildren(t)
	a, err := port.New(t.Context(), port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Diagnostics: true, Logger: quiet})
	require.NoError(t, err)
	out, err := call(t, a, t.Context(), "spawn_child", `{"seconds":600}`)
	require.NoError(t, err)
	var child struct{ PID int }
	require.NoError(t, json.Unmarshal(out, &child))
	require.True(t, testutil.Alive(child.PID))
	require.NoError(t, a.Close(t.Context()))
	testutil.WaitFor(t, "the grandchild is gone", func() bool { return !testutil.Alive(child.PID) })
}

func TestStderrFloodOfLongLines(t *testing.T) {
	var logged struct {
		sync.Mutex
		bytes, lines int
	}
	h := slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		logged.Lock()
		defer logged.Unlock()
		logged.bytes += len(p)
		logged.lines++
		return len(p), nil
	}), nil)
	a := newPython(t, port.Options{Logger: slog.New(h), StderrTail: 4096})
	_, err := call(t, a, t.Context(), "stderr_flood", `{"lines":200,"line_bytes":200000}`)
	require.NoError(t, err, "40 MB of stderr in 200 KB lines")
	out, err := call(t, a, t.Context(), "echo", `{"value":"ok"}`)
	require.NoError(t, err)
	assert.JSONEq(t, `"ok"`, string(out))
	testutil.WaitFor(t, "the flood is logged in pieces", func() bool {
		logged.Lock()
		defer logged.Unlock()
		return logged.bytes > 40_000_000 && logged.lines >= 200*3
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestFrameLimitsBothWays(t *testing.T) {
	a := newPython(t, port.Options{MaxFrameBytes: 64 << 10})
	big := strings.Repeat("x", 100<<10)
	_, err := call(t, a, t.Context(), "echo", `{"value":"`+big+`"}`)
	assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err), "the host refuses to send it")

	// A reply over the limit: the worker refuses to send it and says so.
	_, err = call(t, a, t.Context(), "stderr_flood", `{"lines":1,"line_bytes":10}`)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bigreply.py"), []byte(
		"from dspgo_worker import command\n@command('big')\ndef big(args, ctx):\n    return 'y' * 200000\n"), 0o600))
	b := newPython(t, port.Options{MaxFrameBytes: 64 << 10, Handlers: []string{"bigreply"},
		Env: []string{"PYTHONPATH=" + testutil.PythonDir() + ":" + dir}})
	_, err = call(t, b, t.Context(), "big", "")
	assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err))
	_, err = call(t, b, t.Context(), "ping", "")
	assert.NoError(t, err, "still usable")
}

func TestWorkerEnvironmentIsMinimal(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "envcheck.py"), []byte(
		"import os\nfrom dspgo_worker import command, Arg\n@command('getenv', args={'name': Arg('str', required=True)})\ndef getenv(args, ctx):\n    return os.environ.get(args['name'])\n"), 0o600))
	host := []string{"PATH=" + os.Getenv("PATH"), "DSPGO_TEST_SECRET=hunter2", "LM_KEY=k-123"}
	a := newPython(t, port.Options{Handlers: []string{"envcheck"}, Environ: func() []string { return host },
		PassEnv: []string{"PATH", "LM_KEY"}, Env: []string{"PYTHONPATH=" + testutil.PythonDir() + ":" + dir}})
	get := func(name string) string {
		out, err := call(t, a, t.Context(), "getenv", fmt.Sprintf(`{"name":%q}`, name))
		require.NoError(t, err)
		var v *string
		require.NoError(t, json.Unmarshal(out, &v))
		if v == nil {
			return "<unset>"
		}
		return *v
	}
	assert.Equal(t, "<unset>", get("DSPGO_TEST_SECRET"), "a host variable not in PassEnv is not visible")
	assert.Equal(t, "k-123", get("LM_KEY"), "PassEnv passes it")
	assert.Equal(t, "utf-8", get("PYTHONIOENCODING"))
}

// A PYTHONPATH passed from the host, where a user's handler modules are,
// goes after the worker's own directory instead of hiding it.
func TestWorkerPythonPathKeepsTheWorkersDirectory(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pathcheck.py"), []byte(
		"import os\nfrom dspgo_worker import command\n@command('pythonpath')\ndef pythonpath(args, ctx):\n    return os.environ.get('PYTHONPATH')\n"), 0o600))
	host := []string{"PATH=" + os.Getenv("PATH"), "PYTHONPATH=" + dir}
	a := newPython(t, port.Options{Handlers: []string{"pathcheck"}, Environ: func() []string { return host },
		PassEnv: []string{"PATH", "PYTHONPATH"}})
	out, err := call(t, a, t.Context(), "pythonpath", "")
	require.NoError(t, err)
	var path string
	require.NoError(t, json.Unmarshal(out, &path))
	parts := strings.Split(path, ":")
	require.Len(t, parts, 2, path)
	assert.FileExists(t, filepath.Join(parts[0], "dspgo_worker", "__init__.py"), "the worker's directory first")
	assert.Equal(t, dir, parts[1])
}

func TestEmbeddedWorkerFiles(t *testing.T) {
	cache := t.TempDir()
	a := newPython(t, port.Options{CacheDir: cache})
	_, err := call(t, a, t.Context(), "ping", "")
	require.NoError(t, err)

	dirs, err := filepath.Glob(filepath.Join(cache, "worker-*"))
	require.NoError(t, err)
	require.Len(t, dirs, 1)
	info, err := os.Stat(dirs[0])
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	pycs, err := filepath.Glob(filepath.Join(dirs[0], "dspgo_worker", "__pycache__", "*.pyc"))
	require.NoError(t, err)
	assert.NotEmpty(t, pycs, "the bytecode is compiled once, for every later worker")

	// Another version's directory is pruned once it has not been used for a
	// week; a recent one is kept.
	old, recent := filepath.Join(cache, "worker-0000000000000000"), filepath.Join(cache, "worker-1111111111111111")
	require.NoError(t, os.MkdirAll(old, 0o700))
	require.NoError(t, os.MkdirAll(recent, 0o700))
	weekAgo := time.Now().Add(-8 * 24 * time.Hour)
	require.NoError(t, os.Chtimes(old, weekAgo, weekAgo))

	// A tampered copy is detected and rewritten before use.
	target := filepath.Join(dirs[0], "dspgo_worker", "__init__.py")
	require.NoError(t, os.WriteFile(target, []byte("raise SystemExit(9)\n"), 0o600))
	dir, err := port.EmbeddedWorkerDir(cache)
	require.NoError(t, err)
	assert.Equal(t, dirs[0], dir)
	data, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.NotContains(t, string(data), "SystemExit(9)")
	assert.NoDirExists(t, old, "stale versions are pruned")
	assert.DirExists(t, recent)
}

func TestBroadcastIsReplayedAfterRestart(t *testing.T) {
	for name, a := range map[string]*port.Adapter{
		"python": newPython(t, port.Options{Restart: port.RestartPolicy{Min: time.Millisecond}}),
		"memory": newMemory(t, port.Options{Restart: port.RestartPolicy{Min: time.Millisecond}}),
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, a.Broadcast(t.Context(), adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"replayed"}`)}))
			a.Kill()
			testutil.WaitFor(t, "restarted", func() bool { return a.Worker().Restarts == 1 && a.Worker().State == "ready" })
			out, err := call(t, a, t.Context(), "get_stats", "")
			require.NoError(t, err)
			var st struct{ LM struct{ Model string } }
			require.NoError(t, json.Unmarshal(out, &st))
			assert.Equal(t, "replayed", st.LM.Model, "the new worker got the LM before any call")
		})
	}
}

// TestVerifyIsNotReplayed: a configure_lm verified against its endpoint
// is replayed to a restarted worker without the check, so a crash during
// an outage of that LM leaves the worker serving (its other LMs, and this
// one's calls failing on their own).
func TestVerifyIsNotReplayed(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	a := newPython(t, port.Options{Restart: port.RestartPolicy{Min: time.Millisecond}})
	args, err := json.Marshal(command.LMArgs{Name: "real", Provider: "openai", Model: "m", BaseURL: srv.URL(), Engine: "native", Verify: true})
	require.NoError(t, err)
	require.NoError(t, a.Broadcast(t.Context(), adapter.Request{Command: command.ConfigureLM, Args: args}))
	require.NoError(t, srv.Close(), "the LM's outage")
	a.Kill()
	testutil.WaitFor(t, "restarted and ready", func() bool { return a.Worker().Restarts == 1 && a.Worker().State == "ready" })
	_, err = call(t, a, t.Context(), "ping", "")
	require.NoError(t, err)
}

// TestBroadcastReportsTheWorkersOwnUnavailable: a configure_lm whose
// verify finds the endpoint unreachable fails (unavailable, the worker's
// answer) and is not recorded, where only a worker lost while it ran the
// broadcast leaves it to the restarted worker.
func TestBroadcastReportsTheWorkersOwnUnavailable(t *testing.T) {
	a := newPython(t, port.Options{Restart: port.RestartPolicy{Min: time.Millisecond}})
	args, err := json.Marshal(command.LMArgs{Name: "real", Provider: "openai", Model: "m", BaseURL: "http://127.0.0.1:9/v1", Engine: "native", Verify: true})
	require.NoError(t, err)
	err = a.Broadcast(t.Context(), adapter.Request{Command: command.ConfigureLM, Args: args})
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, "unreachable")
	out, err := call(t, a, t.Context(), "get_stats", "")
	require.NoError(t, err)
	assert.NotContains(t, string(out), `"real"`, "not applied")
	a.Kill()
	testutil.WaitFor(t, "restarted and ready", func() bool { return a.Worker().Restarts == 1 && a.Worker().State == "ready" })
	out, err = call(t, a, t.Context(), "get_stats", "")
	require.NoError(t, err)
	assert.NotContains(t, string(out), `"real"`, "nor recorded for the restarted worker")
}

func TestCloseDuringCallsAndTwice(t *testing.T) {
	a := newPython(t, port.Options{StopGrace: 200 * time.Millisecond})
	errs := make(chan error, 4)
	for range 4 {
		go func() { _, err := call(t, a, context.Background(), "hang", "{}"); errs <- err }()
	}
	testutil.WaitFor(t, "four calls in flight", func() bool { return a.Worker().InFlight == 4 })
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); assert.NoError(t, a.Close(t.Context())) }()
	}
	wg.Wait()
	for range 4 {
		err := <-errs
		assert.ErrorIs(t, err, adapter.ErrClosed, "Close ended the call: not the caller's cancellation")
	}
	_, err := call(t, a, t.Context(), "ping", "")
	assert.ErrorIs(t, err, adapter.ErrClosed)
	assert.Equal(t, "closed", a.Worker().State)
}

func TestRestartThrottle(t *testing.T) {
	a := newPython(t, port.Options{Restart: port.RestartPolicy{Min: time.Millisecond, Max: time.Hour, MaxRestarts: 1, Window: time.Hour}})
	for i := range 2 {
		pid := a.Worker().PID
		if i == 0 {
			a.Kill()
			testutil.WaitFor(t, "first restart", func() bool { return a.Worker().State == "ready" && a.Worker().PID != pid })
			continue
		}
		a.Kill()
	}
	testutil.WaitFor(t, "the second crash is throttled", func() bool {
		_, err := call(t, a, t.Context(), "ping", "")
		return err != nil && strings.Contains(err.Error(), "crashed more than 1 times")
	})
}

// TestHostKilledLeavesNoWorker: a host process killed with SIGKILL takes
// its worker with it (parent-death signal), within 2 s.
func TestHostKilledLeavesNoWorker(t *testing.T) {
	if os.Getenv("DSPGOTEST_PORT_HOST") == "1" {
		hostMain()
		return
	}
	testutil.VerifyNoChildren(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostKilledLeavesNoWorker$")
	cmd.Env = append(os.Environ(), "DSPGOTEST_PORT_HOST=1", testutil.PythonEnv+"="+testutil.Python(t))
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "worker ")))
	require.NoError(t, err, "helper said %q", line)
	require.True(t, testutil.Alive(pid))

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.Eventually(t, func() bool { return !testutil.Alive(pid) }, 2*time.Second, 10*time.Millisecond, "the worker outlived its host")
}

// hostMain is the helper host: it starts a worker, prints its pid and
// waits to be killed.
func hostMain() {
	a, err := port.New(context.Background(), port.Options{Python: os.Getenv(testutil.PythonEnv), WorkerDir: testutil.PythonDir(), Logger: quiet})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Printf("worker %d\n", a.Worker().PID)
	select {}
}

func TestDescribeReportsCommands(t *testing.T) {
	a := newMemory(t, port.Options{})
	assert.Subset(t, a.Capabilities().Commands, mock.Commands())
}
