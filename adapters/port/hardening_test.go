package port_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/protocol"
)

// notUTF8 are request arguments whose JSON is valid to encoding/json but
// holds bytes that are not UTF-8, in values and keys, at the top and
// nested.
var notUTF8 = func() []string {
	var out []string
	for _, b := range []string{"\xff", "\x80", "\xc3", "\xe2\x82", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"} {
		out = append(out, `{"value":"a`+b+`"}`, `{"`+b+`":1}`, `{"value":{"list":["ok","`+b+`"]}}`)
	}
	return out
}()

// TestNotUTF8IsRefusedBeforeSending: arguments that are not UTF-8 are
// refused with CodeInvalidArgument at once, on both workers, instead of
// reaching a worker that cannot read the frame's id and so never answers
// it (the caller used to wait for its deadline).
func TestNotUTF8IsRefusedBeforeSending(t *testing.T) {
	require.Len(t, notUTF8, 21)
	for name, a := range map[string]*port.Adapter{
		"python": newPython(t, port.Options{}),
		"memory": newMemory(t, port.Options{}),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			start := time.Now()
			for _, args := range notUTF8 {
				_, err := a.Call(ctx, adapter.Request{Command: "echo", Args: json.RawMessage(args)})
				require.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%q: %v", args, err)
				assert.Contains(t, err.Error(), "not valid UTF-8")
				for _, serr := range a.Stream(ctx, adapter.Request{Command: "echo", Args: json.RawMessage(args)}) {
					assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(serr), "%q: %v", args, serr)
				}
			}
			assert.Less(t, time.Since(start), 10*time.Second, "refused at once, not at a deadline")
			require.NoError(t, a.Ping(ctx))
			assert.Zero(t, a.Worker().Restarts, "nothing reached the worker")
		})
	}
}

// TestToolResultNotUTF8: a Go tool whose result is not UTF-8 becomes an
// invalid_argument observation, at once, on both workers; the worker used
// to drop the result frame and wait for it until the deadline.
func TestToolResultNotUTF8(t *testing.T) {
	for name, a := range map[string]*port.Adapter{
		"python": newPython(t, port.Options{}),
		"memory": newMemory(t, port.Options{}),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			c := dspgo.NewClient(a, dspgo.WithTool("bad", "Answers bytes that are not UTF-8.", nil, func(context.Context, json.RawMessage) (any, error) {
				return json.RawMessage("\"caf\xe9\""), nil // Latin-1, not UTF-8
			}))
			require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Script: []dspgo.ScriptStep{{Tool: "bad", Args: map[string]any{}}}}))
			p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a"), Kind: dspgo.KindReact})
			require.NoError(t, err)
			e, err := c.ExecuteDetailed(ctx, p.ID, map[string]any{"q": "?"})
			require.NoError(t, err)
			require.Len(t, e.Trajectory, 1)
			var obs struct {
				Error struct{ Code, Message string }
			}
			require.NoError(t, json.Unmarshal(e.Trajectory[0].Observation, &obs))
			assert.Equal(t, "invalid_argument", obs.Error.Code)
			assert.Contains(t, obs.Error.Message, "not valid UTF-8")
		})
	}
}

// frameHex is body as a whole frame, hex-encoded for the garbage
// diagnostics command.
func frameHex(t *testing.T, body string) string {
	t.Helper()
	frame, err := protocol.AppendFrame(nil, []byte(body), 0)
	require.NoError(t, err)
	return hex.EncodeToString(frame)
}

// TestProtocolViolationsReplaceTheWorker: a worker that breaks the
// protocol is killed and replaced at once, and the calls in flight on it
// fail with CodeUnavailable wrapping ErrProtocolViolation and naming the
// violation, instead of waiting for their deadline.
func TestProtocolViolationsReplaceTheWorker(t *testing.T) {
	// A frame announcing 1,000 bytes whose body stops after its first 18.
	begun := `{"id":1,"success":`
	whole, err := protocol.AppendFrame(nil, []byte(begun+strings.Repeat(" ", 1000-len(begun))), 0)
	require.NoError(t, err)
	cutOff := whole[:protocol.HeaderSize+len(begun)]
	cases := []struct {
		name, hex, says string
	}{
		{"an id never sent", frameHex(t, `{"id":999999,"success":true,"result":null}`), "request 999999, which the host never sent"},
		{"a chunk of an id never sent", frameHex(t, `{"id":999999,"kind":"chunk","seq":0,"data":1}`), "chunk of request 999999, which the host never sent"},
		{"success with an error", frameHex(t, `{"id":1,"success":true,"result":null,"error":{"code":"internal","message":"x"}}`), "success true and an error"},
		{"a frame cut off mid-body", hex.EncodeToString(cutOff), "cut off"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newPython(t, port.Options{Restart: port.RestartPolicy{Min: time.Millisecond}, WriteTimeout: 300 * time.Millisecond})
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			pid := a.Worker().PID
			hung := make(chan error, 1)
			go func() { _, err := call(t, a, ctx, "hang", "{}"); hung <- err }() // id 1
			testutil.WaitFor(t, "the call is in flight", func() bool { return a.Worker().InFlight == 1 })

			start := time.Now()
			_, err := call(t, a, ctx, "garbage", `{"hex":"`+c.hex+`"}`)
			for _, err := range []error{err, <-hung} {
				require.Error(t, err)
				assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err), "%v", err)
				assert.ErrorIs(t, err, port.ErrProtocolViolation)
				assert.ErrorContains(t, err, "broke the protocol")
				assert.ErrorContains(t, err, c.says)
			}
			assert.Less(t, time.Since(start), 10*time.Second, "acted on, not waited out")

			out, err := call(t, a, ctx, "echo", `{"value":"after"}`)
			require.NoError(t, err, "the worker was replaced")
			assert.JSONEq(t, `"after"`, string(out))
			assert.NotEqual(t, pid, a.Worker().PID)
			assert.False(t, testutil.Alive(pid))
		})
	}
}

// TestLateRepliesAreNoViolation: replies whose callers gave up come with
// ids the host issued; they are dropped and the worker stays.
func TestLateRepliesAreNoViolation(t *testing.T) {
	a := newPython(t, port.Options{})
	pid := a.Worker().PID
	for range 5 {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		_, err := call(t, a, ctx, "sleep", `{"seconds":0.1}`)
		cancel()
		require.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err))
	}
	// The replies (to the sleeps and to their cancel frames) come while
	// these run.
	testutil.WaitFor(t, "the late replies are in", func() bool {
		_, err := call(t, a, t.Context(), "ping", "")
		return err == nil && a.Worker().InFlight == 0
	})
	_, err := call(t, a, t.Context(), "sleep", `{"seconds":0.3}`)
	require.NoError(t, err)
	assert.Equal(t, pid, a.Worker().PID)
	assert.Zero(t, a.Worker().Restarts)
}

// TestInitReplyWithAnotherID: a worker that answers its init ping with
// another id is refused at once, with the violation named, instead of at
// the end of the start timeout.
func TestInitReplyWithAnotherID(t *testing.T) {
	testutil.VerifyNoChildren(t)
	dir := t.TempDir()
	pkg := filepath.Join(dir, "dspgo_worker")
	require.NoError(t, os.MkdirAll(pkg, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(pkg, "__init__.py"), nil, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(pkg, "__main__.py"), []byte(`import json, struct, sys
fin, fout = sys.stdin.buffer, sys.stdout.buffer
(n,) = struct.unpack(">I", fin.read(4))
fin.read(n)
body = json.dumps({"id": 5, "success": True, "result": {"protocol_version": 1}}).encode()
fout.write(struct.pack(">I", len(body)) + body)
fout.flush()
fin.read()
`), 0o600))
	start := time.Now()
	_, err := port.New(t.Context(), port.Options{Python: testutil.Python(t), WorkerDir: dir, Logger: quiet, StartTimeout: 20 * time.Second})
	require.Error(t, err)
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err), "%v", err)
	assert.ErrorIs(t, err, port.ErrProtocolViolation)
	assert.ErrorContains(t, err, "answered request 5, which the host never sent")
	assert.Less(t, time.Since(start), 10*time.Second, "not the start timeout")
}

// longError answers every command but ping with a 100 KB error message.
type longError struct{}

func (longError) Handle(_ context.Context, req protocol.Request) protocol.Response {
	if req.Command == protocol.CmdPing {
		return protocol.Response{ID: req.ID, Success: true, Result: json.RawMessage(`{"protocol_version":1}`)}
	}
	return protocol.Response{ID: req.ID, Error: &protocol.ErrorBody{Code: "internal", Message: strings.Repeat("m", 100_000),
		Traceback: strings.Repeat("t", 100_000) + "\nValueError: last"}}
}

// TestLongErrorMessagesAreBounded: a worker's 100 KB error message and
// traceback are cut to 8 KiB each in the Go error, with a marker.
func TestLongErrorMessagesAreBounded(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "longerror.py"), []byte(
		"from dspgo_worker import command, WorkerError\n@command('long')\ndef long(args, ctx):\n    raise WorkerError('internal', 'm' * 100000)\n"), 0o600))
	py := newPython(t, port.Options{Handlers: []string{"longerror"}, Env: []string{"PYTHONPATH=" + testutil.PythonDir() + ":" + dir}})
	mem, err := port.New(t.Context(), port.Options{Logger: quiet, Handler: func() protocol.Handler { return longError{} }})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, mem.Close(context.Background())) })
	for name, a := range map[string]*port.Adapter{"python": py, "memory": mem} {
		t.Run(name, func(t *testing.T) {
			_, err := call(t, a, t.Context(), "long", "")
			require.Error(t, err)
			assert.Equal(t, adapter.CodeInternal, adapter.CodeOf(err))
			r, ok := errors.AsType[*adapter.Error](err)
			require.True(t, ok)
			require.NotNil(t, r.Remote)
			assert.Less(t, len(r.Remote.Message), 9<<10)
			assert.Contains(t, r.Remote.Message, "[cut: 100000 bytes in all]")
			assert.Less(t, len(r.Remote.Traceback), 9<<10)
			assert.Less(t, len(err.Error()), 10<<10)
		})
	}
}

// TestCloseCutsACallWithErrClosed: a call that Close ends while it runs
// fails with ErrClosed saying the adapter was closed, never with the
// caller's own CodeCanceled, on both workers, for calls and streams.
func TestCloseCutsACallWithErrClosed(t *testing.T) {
	for _, name := range []string{"python", "memory"} {
		t.Run(name, func(t *testing.T) {
			var a *port.Adapter
			command, args := "hang", "{}"
			if name == "python" {
				testutil.VerifyNoChildren(t)
				var err error
				a, err = port.New(t.Context(), port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Diagnostics: true, Logger: quiet})
				require.NoError(t, err)
			} else {
				var err error
				a, err = port.New(t.Context(), port.Options{Handler: memoryHandler, Logger: quiet})
				require.NoError(t, err)
				c := dspgo.NewClient(a)
				p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
				require.NoError(t, err)
				require.NoError(t, c.ConfigureLM(t.Context(), dspgo.LMConfig{Delay: time.Minute}))
				command, args = "execute_program", `{"spec_hash":"`+p.Hash+`","inputs":{"q":"?"}}`
			}
			errs := make(chan error, 2)
			go func() { _, err := call(t, a, context.Background(), command, args); errs <- err }()
			go func() {
				var last error
				for _, err := range a.Stream(context.Background(), adapter.Request{Command: command, Args: json.RawMessage(args)}) {
					last = err
				}
				errs <- last
			}()
			testutil.WaitFor(t, "two calls in flight", func() bool { return a.Worker().InFlight == 2 })
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			require.NoError(t, a.Close(ctx))
			for range 2 {
				err := <-errs
				require.Error(t, err)
				assert.ErrorIs(t, err, adapter.ErrClosed)
				assert.ErrorContains(t, err, "closed while the call ran")
				assert.NotEqual(t, adapter.CodeCanceled, adapter.CodeOf(err), "%v", err)
			}
		})
	}
}
