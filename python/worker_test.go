package python_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// worker is a Python worker driven through the protocol codec, the way the
// port adapter drives it.
type worker struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	w      *protocol.Writer
	frames chan protocol.Response // closed at end of stdout
	exited chan struct{}          // closed when the process has been waited for
	stderr *testutil.SyncBuffer
	err    error // Wait's result, valid after exited is closed
}

func startWorker(t *testing.T, args ...string) *worker {
	t.Helper()
	testutil.VerifyNoChildren(t)
	cmd := testutil.WorkerCommand(t, args...)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	wk := &worker{t: t, cmd: cmd, stdin: stdin, w: protocol.NewWriter(stdin, 0),
		frames: make(chan protocol.Response, 16), exited: make(chan struct{}), stderr: &testutil.SyncBuffer{}}
	cmd.Stderr = wk.stderr
	require.NoError(t, cmd.Start())

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(wk.frames)
		r := protocol.NewReader(stdout, 0)
		for {
			resp, err := r.ReadResponse()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("reading the worker's frames: %v", err)
				}
				return
			}
			wk.frames <- resp
		}
	}()
	go func() {
		<-readDone // Wait closes stdout: read it to the end first
		wk.err = cmd.Wait()
		close(wk.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		for range wk.frames {
		}
		<-wk.exited
	})
	return wk
}

func (wk *worker) send(req protocol.Request) {
	wk.t.Helper()
	require.NoError(wk.t, wk.w.WriteRequest(&req))
}

// sendBody sends a frame whose body the test chose, valid or not.
func (wk *worker) sendBody(body string) {
	wk.t.Helper()
	require.NoError(wk.t, wk.w.WriteFrame([]byte(body)))
}

func (wk *worker) recv() protocol.Response {
	wk.t.Helper()
	select {
	case resp, ok := <-wk.frames:
		require.True(wk.t, ok, "the worker closed its stdout; stderr:\n%s", wk.stderr.String())
		return resp
	case <-time.After(10 * time.Second):
		wk.t.Fatalf("no response within 10 s; stderr:\n%s", wk.stderr.String())
		return protocol.Response{}
	}
}

// waitExit waits for the worker to exit and returns its exit status and how
// long that took.
func (wk *worker) waitExit(limit time.Duration) (int, time.Duration) {
	wk.t.Helper()
	start := time.Now()
	select {
	case <-wk.exited:
	case <-time.After(limit):
		wk.t.Fatalf("the worker did not exit within %v; stderr:\n%s", limit, wk.stderr.String())
	}
	elapsed := time.Since(start)
	var exitErr *exec.ExitError
	if errors.As(wk.err, &exitErr) {
		return exitErr.ExitCode(), elapsed
	}
	require.NoError(wk.t, wk.err)
	return 0, elapsed
}

func TestHandshake(t *testing.T) {
	wk := startWorker(t, "--worker-id", "w-go", "--max-concurrency", "3")
	wk.send(protocol.Request{ID: protocol.InitID, Command: "ping", Args: json.RawMessage(`{"initialization":true}`)})
	resp := wk.recv()
	require.True(t, resp.Success, "%+v", resp.Error)
	assert.EqualValues(t, protocol.InitID, resp.ID)

	var hello command.InitResult
	require.NoError(t, json.Unmarshal(resp.Result, &hello))
	assert.Equal(t, protocol.Version, hello.ProtocolVersion)
	assert.Equal(t, wk.cmd.Process.Pid, hello.PID)
	assert.Equal(t, "w-go", hello.WorkerID)
	assert.Equal(t, 3, hello.MaxConcurrency)
	assert.Equal(t, protocol.DefaultMaxFrameBytes, hello.MaxFrameBytes)
	assert.Subset(t, hello.Commands, []string{command.Ping, command.Describe, command.Cancel, command.Shutdown})
	assert.NotContains(t, hello.Commands, "crash", "diagnostics only with --diagnostics")
	assert.False(t, hello.Diagnostics)
	assert.NotEmpty(t, hello.PythonVersion)

	wk.send(protocol.Request{ID: 1, Command: "no_such_command"})
	resp = wk.recv()
	assert.False(t, resp.Success)
	assert.EqualValues(t, 1, resp.ID)
	assert.Equal(t, "unimplemented", resp.Error.Code)
}

// TestRawJSONWithoutHeader is the seed's Pattern 1: a request written as
// bare JSON, with no length header, must give a clear error and a clean
// exit, never a hang.
func TestRawJSONWithoutHeader(t *testing.T) {
	wk := startWorker(t)
	raw, err := json.Marshal(map[string]any{"id": 123, "command": "ping", "args": map[string]any{}})
	require.NoError(t, err)
	_, err = wk.stdin.Write(raw)
	require.NoError(t, err)

	status, _ := wk.waitExit(10 * time.Second)
	assert.Equal(t, 3, status, "exit status 3: protocol violation by the host")
	assert.Contains(t, wk.stderr.String(), "length header", "stderr explains the missing header")
	_, open := <-wk.frames
	assert.False(t, open, "no frame was sent in reply to garbage")
}

func TestStdoutWritesDoNotCorruptFrames(t *testing.T) {
	wk := startWorker(t, "--diagnostics")
	text := "printed by a handler \x00\x00\x00\x10{not a frame}"
	args, _ := json.Marshal(map[string]string{"text": text})
	wk.send(protocol.Request{ID: 1, Command: "print_stdout", Args: args})
	resp := wk.recv()
	require.True(t, resp.Success, "%+v", resp.Error)
	assert.EqualValues(t, 1, resp.ID)

	wk.send(protocol.Request{ID: 2, Command: "echo", Args: json.RawMessage(`{"value":"still in step"}`)})
	resp = wk.recv()
	require.True(t, resp.Success, "%+v", resp.Error)
	assert.EqualValues(t, 2, resp.ID)
	assert.JSONEq(t, `"still in step"`, string(resp.Result))

	require.NoError(t, wk.stdin.Close())
	status, _ := wk.waitExit(5 * time.Second)
	assert.Equal(t, 0, status)
	assert.Contains(t, wk.stderr.String(), "printed by a handler", "stdout output lands on stderr")
}

func TestStdinEOFEndsTheWorker(t *testing.T) {
	for _, busy := range []bool{false, true} {
		name := map[bool]string{false: "idle", true: "with a request hanging"}[busy]
		t.Run(name, func(t *testing.T) {
			wk := startWorker(t, "--diagnostics")
			wk.send(protocol.Request{ID: protocol.InitID, Command: "ping", Args: json.RawMessage(`{"initialization":true}`)})
			require.True(t, wk.recv().Success)
			if busy {
				wk.send(protocol.Request{ID: 1, Command: "hang"})
			}
			require.NoError(t, wk.stdin.Close())
			status, elapsed := wk.waitExit(5 * time.Second)
			assert.Equal(t, 0, status)
			assert.Less(t, elapsed, time.Second, "the worker exits within 1 s of EOF")
			if busy {
				resp, ok := <-wk.frames
				require.True(t, ok, "the hanging request is answered before exit")
				assert.EqualValues(t, 1, resp.ID)
				assert.Equal(t, "canceled", resp.Error.Code)
			}
			usage := wk.cmd.ProcessState
			t.Logf("worker CPU over its whole life: user %v, system %v", usage.UserTime(), usage.SystemTime())
		})
	}
}

func TestShutdownCommand(t *testing.T) {
	wk := startWorker(t)
	wk.send(protocol.Request{ID: 5, Command: "shutdown"})
	resp := wk.recv()
	require.True(t, resp.Success, "%+v", resp.Error)
	assert.EqualValues(t, 5, resp.ID)
	status, elapsed := wk.waitExit(5 * time.Second)
	assert.Equal(t, 0, status)
	assert.Less(t, elapsed, time.Second)
}

func TestMalformedFramesAreAnsweredOrSkipped(t *testing.T) {
	wk := startWorker(t, "--diagnostics")
	// Frames whose id cannot be read are skipped; the stream stays usable.
	for _, body := range []string{`[1,2]`, `{"command":"ping"}`, `{"id":-1,"command":"ping"}`} {
		wk.sendBody(body)
	}
	// A readable id with a bad field is answered with invalid_argument.
	wk.sendBody(`{"id":9,"command":"echo","args":[1]}`)
	resp := wk.recv()
	assert.EqualValues(t, 9, resp.ID)
	require.False(t, resp.Success)
	assert.Equal(t, "invalid_argument", resp.Error.Code)
	assert.Contains(t, resp.Error.Message, "args")

	wk.send(protocol.Request{ID: 10, Command: "echo", Args: json.RawMessage(`{"value":"ok"}`)})
	resp = wk.recv()
	assert.EqualValues(t, 10, resp.ID)
	assert.True(t, resp.Success)
	assert.True(t, strings.Contains(wk.stderr.String(), "missing_id"), "the skipped frame is logged with its kind")
}
