package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/adapters/remote/embedded"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/internal/wait"
)

// startWorkersWith runs "dspgo workers" in process with extra variables,
// until stop is called; errOut is its stderr.
func startWorkersWith(t *testing.T, environ []string, args ...string) (h *host, errOut *testutil.SyncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h = &host{out: &testutil.SyncBuffer{}, status: make(chan int, 1), cancel: cancel}
	errOut = &testutil.SyncBuffer{}
	no := false
	e := env{stdin: strings.NewReader(""), stdout: h.out, stderr: errOut, stdinIsTerminal: &no, stderrIsTerminal: &no,
		environ: func() []string { return testEnviron(t, environ...) }}
	go func() { h.status <- run(ctx, append([]string{"workers"}, args...), e) }()
	deadline, stop := context.WithTimeout(context.Background(), 60*time.Second)
	defer stop()
	require.True(t, wait.Until(deadline, func() bool {
		select {
		case s := <-h.status:
			h.status <- s
			return true
		default:
			return strings.Contains(h.out.String(), " serving ")
		}
	}), "the host did not start")
	require.Contains(t, h.out.String(), " serving ", errOut.String())
	return h, errOut
}

// TestWorkersWithRoles: "dspgo workers" runs the embedded server with a
// users file and serves as a host user; "dspgo conformance" passes as a
// caller user; without credentials, or with a wrong password, a caller
// is refused naming the keys to set; config explain shows no password.
func TestWorkersWithRoles(t *testing.T) {
	testutil.VerifyNoChildren(t)
	const hostPass, callerPass = "host-pw-S3CR3T", "caller-pw-S3CR3T"
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	require.NoError(t, os.WriteFile(users, []byte("host host-a "+hostPass+"\ncaller alice "+callerPass+"\n"), 0o600))
	addr := freeAddr(t)
	url := "nats://" + addr
	hostEnv := []string{"DSPGO_REMOTE__EMBEDDED__USERS_FILE=" + users, "DSPGO_REMOTE__USER=host-a",
		"DSPGO_REMOTE__PASSWORD_ENV=NATS_PASSWORD", "NATS_PASSWORD=" + hostPass}
	h, hostErr := startWorkersWith(t, hostEnv, "--embedded-nats", "--embedded-listen", addr, "--host-id", "h1", "--pool-size", "1")
	defer func() { assert.Equal(t, 0, h.stop(), h.out.String()) }()

	callerEnv := []string{"DSPGO_REMOTE__USER=alice", "DSPGO_REMOTE__PASSWORD_ENV=NATS_PASSWORD", "NATS_PASSWORD=" + callerPass}
	r := cli(t, "", callerEnv, "conformance", "--adapter", "remote", "--remote-url", url)
	assert.Equal(t, 0, r.status, r.stdout+r.stderr)
	assert.Regexp(t, `(?m)^\d+ passed, 0 failed`, r.stdout)

	r = cli(t, "", nil, "run", "--adapter", "remote", "--remote-url", url, "--signature", "q -> a", "--input", "q=x")
	assert.NotEqual(t, 0, r.status)
	assert.Contains(t, r.stderr, "Authorization Violation")
	assert.Contains(t, r.stderr, "check remote.user with remote.password_env or remote.password_file")

	r = cli(t, "", []string{"DSPGO_REMOTE__USER=alice", "DSPGO_REMOTE__PASSWORD_ENV=NATS_PASSWORD", "NATS_PASSWORD=wrong-S3CR3T"},
		"run", "--adapter", "remote", "--remote-url", url, "--signature", "q -> a", "--input", "q=x")
	assert.NotEqual(t, 0, r.status)
	assert.NotContains(t, r.stdout+r.stderr, "3CR3T")

	r = cli(t, "", append(hostEnv, "DSPGO_REMOTE__EMBEDDED__ENABLED=true"), "config", "explain")
	require.Equal(t, 0, r.status, r.stderr)
	assert.NotContains(t, r.stdout, "3CR3T")
	assert.Regexp(t, `(?m)^remote\.password_env\s+NATS_PASSWORD\s`, r.stdout)
	assert.NotContains(t, h.out.String()+hostErr.String(), "3CR3T")
}

// TestEmbeddedNATSRefusesStrangers: "dspgo workers --embedded-nats" with
// no users file still authenticates: a caller of this OS user (the same
// local credentials directory) runs a program, and a process without
// those credentials (another user's directory, or none) is refused with
// what to check; no output shows a password.
func TestEmbeddedNATSRefusesStrangers(t *testing.T) {
	testutil.VerifyNoChildren(t)
	addr := freeAddr(t)
	url := "nats://" + addr
	h, hostErr := startWorkersWith(t, nil, "--adapter", "mock", "--embedded-nats", "--embedded-listen", addr, "--host-id", "h1")
	defer func() { assert.Equal(t, 0, h.stop(), h.out.String()) }()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	local, path, err := embedded.ReadLocal(localCredentialsDir, n)
	require.NoError(t, err)
	assert.Contains(t, h.out.String(), "the embedded NATS server's users are in "+path+", readable by this OS user only")

	r := cli(t, "", nil, "run", "--adapter", "remote", "--remote-url", url, "--signature", "q -> a", "--input", "q=x")
	require.Equal(t, 0, r.status, r.stderr)

	r = cli(t, "", []string{"DSPGO_REMOTE__LOCAL_CREDENTIALS_DIR=" + t.TempDir()},
		"run", "--adapter", "remote", "--remote-url", url, "--signature", "q -> a", "--input", "q=x")
	assert.Equal(t, 1, r.status)
	assert.Contains(t, r.stderr, "Authorization Violation")
	assert.Contains(t, r.stderr, "an embedded server of this OS user on loopback is found by the file it writes to remote.local_credentials_dir")

	nc, err := remote.Dial(t.Context(), remote.DialOptions{URL: url})
	if err == nil {
		nc.Close()
	}
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "an anonymous connection: %v", err)
	for _, out := range []string{h.out.String(), hostErr.String(), r.stdout, r.stderr} {
		assert.NotContains(t, out, local.Host.Password)
		assert.NotContains(t, out, local.Caller.Password)
	}
}
