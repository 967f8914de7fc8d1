package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// build compiles lmtestd into a temporary directory, as the Makefile
// builds it for the Python tests.
func build(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build lmtestd with")
	}
	bin := filepath.Join(t.TempDir(), "lmtestd")
	out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// daemon is a running lmtestd.
type daemon struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	url    string
	stderr *bytes.Buffer
	waited chan error
}

func start(t *testing.T, bin string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	d := &daemon{cmd: cmd, stdin: stdin, stderr: &bytes.Buffer{}, waited: make(chan error, 1)}
	cmd.Stderr = d.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-d.waited
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, stdout)
		d.waited <- cmd.Wait()
	}()
	line := <-lines
	require.True(t, strings.HasSuffix(line, "\n"), "first line %q (stderr %q)", line, d.stderr)
	var first map[string]string
	require.NoError(t, json.Unmarshal([]byte(line), &first), line)
	require.Len(t, first, 1, line)
	d.url = first["url"]
	require.Regexp(t, `^http://127\.0\.0\.1:\d+/v1$`, d.url)
	return d
}

// wait returns the daemon's exit error, failing the test if it does not
// exit in time.
func (d *daemon) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-d.waited:
		d.waited <- err // for the cleanup
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("lmtestd did not exit")
		return nil
	}
}

func TestLmtestd(t *testing.T) {
	bin := build(t)

	t.Run("serves, records and exits on stdin EOF", func(t *testing.T) {
		d := start(t, bin)
		transport := &http.Transport{}
		defer transport.CloseIdleConnections()
		client := &http.Client{Transport: transport}
		body := `{"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}`
		resp, err := client.Post(d.url+"/chat/completions", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)

		resp, err = client.Get(strings.TrimSuffix(d.url, "/v1") + "/_test/requests")
		require.NoError(t, err)
		var reqs []map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&reqs))
		_ = resp.Body.Close()
		require.Len(t, reqs, 1)
		assert.Equal(t, body, reqs[0]["body"])
		transport.CloseIdleConnections()

		require.NoError(t, d.stdin.Close())
		require.NoError(t, d.wait(t))
	})

	t.Run("exits on SIGTERM", func(t *testing.T) {
		d := start(t, bin, "-latency", "1ms")
		require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, d.wait(t))
	})

	t.Run("refuses a non-loopback address", func(t *testing.T) {
		cmd := exec.Command(bin, "-addr", "0.0.0.0:0")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit), "err %v", err)
		assert.Equal(t, 2, exit.ExitCode())
		assert.Empty(t, stdout.String())
		assert.Contains(t, stderr.String(), "loopback")
	})
}

// TestRun runs the command in process: bad flags, and a stdin that ends at
// once.
func TestRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 2, run([]string{"-nope"}, strings.NewReader(""), &stdout, &stderr))
	assert.Equal(t, 2, run([]string{"extra"}, strings.NewReader(""), &stdout, &stderr))
	stdout.Reset()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(nil, strings.NewReader(""), &stdout, os.Stderr) }()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-ctx.Done():
		t.Fatal("run did not return at stdin EOF")
	}
	assert.Regexp(t, `^\{"url":"http://127\.0\.0\.1:\d+/v1"\}\n$`, stdout.String())
}
