package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapters/remote/embedded"
	"github.com/dspgo/dspgo/conformance"
	"github.com/dspgo/dspgo/internal/testutil"
)

// host runs "dspgo workers" in process until stop is called.
type host struct {
	out    *testutil.SyncBuffer
	status chan int
	cancel context.CancelFunc
}

func startWorkers(t *testing.T, args ...string) *host {
	t.Helper()
	h, _ := startWorkersWith(t, nil, args...)
	return h
}

// stop sends the host the equivalent of SIGTERM and returns its status.
func (h *host) stop() int {
	h.cancel()
	return <-h.status
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// TestWorkersAndRemoteConformance: two "dspgo workers" hosts, the first
// with the embedded server, serve pools of Python workers; the
// conformance suite passes on the remote adapter; both drain and exit 0.
func TestWorkersAndRemoteConformance(t *testing.T) {
	testutil.VerifyNoChildren(t)
	addr := freeAddr(t)
	url := "nats://" + addr
	h1 := startWorkers(t, "--embedded-nats", "--embedded-listen", addr, "--host-id", "h1", "--pool-size", "1")
	h2 := startWorkers(t, "--remote-url", url, "--host-id", "h2", "--pool-size", "1")

	r := cli(t, "", nil, "conformance", "--adapter", "remote", "--remote-url", url)
	assert.Equal(t, 0, r.status, r.stdout+r.stderr)
	// Every case but crash_recovery: a caller cannot stop a host's worker
	// (shutdown is reserved for the adapters), so the CLI has no crash to
	// inject.
	assert.Regexp(t, fmt.Sprintf(`(?m)^%d passed, 0 failed, 1 skipped$`, len(conformance.Cases())-1), r.stdout)
	assert.Regexp(t, `(?m)^SKIP  crash_recovery `, r.stdout)

	var wg sync.WaitGroup
	for _, h := range []*host{h2, h1} {
		wg.Add(1)
		go func() { defer wg.Done(); assert.Equal(t, 0, h.stop(), h.out.String()) }()
		wg.Wait() // h2 first: h1 runs the server
	}
	assert.Regexp(t, `host h1 drained in`, h1.out.String())
	assert.Regexp(t, `host h2 drained in`, h2.out.String())
}

func TestWorkersRefusesToServeRemote(t *testing.T) {
	r := cli(t, "", nil, "workers", "--adapter", "remote")
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, "cannot serve the remote adapter")

	// An adapter that is not registered is bad usage, whether or not a
	// NATS server answers.
	r = cli(t, "", nil, "workers", "--adapter", "nosuch", "--remote-url", "nats://"+freeAddr(t))
	assert.Equal(t, 2, r.status, r.stderr)
	assert.Contains(t, r.stderr, `adapter "nosuch" (set by flag:--adapter) is not registered`)
}

// TestRunWithNoHostIsNotBadUsage: a backend that cannot create the
// program (here no worker host serves the NATS server) fails the run
// with exit status 1 and its own error, not as bad usage with a hint
// about the signature.
func TestRunWithNoHostIsNotBadUsage(t *testing.T) {
	s, err := embedded.Start(context.Background(), embedded.Options{Port: -1, StoreDir: t.TempDir(), NoAuth: true})
	require.NoError(t, err)
	defer s.Shutdown()
	// A server that lets anyone in may be anyone's (another OS user's, on
	// the loopback port of this user's embedded server): refused unless
	// accepted.
	r := cli(t, "", nil, "run", "--adapter", "remote", "--remote-url", s.ClientURL(), "--signature", "question -> answer", "--input", "question=?")
	assert.Equal(t, 1, r.status, r.stderr)
	assert.Contains(t, r.stderr, "the NATS server requires no authentication ("+s.ClientURL()+"): any process that reaches it could take")
	assert.Empty(t, r.stdout)

	r = cli(t, "", []string{"DSPGO_REMOTE__ALLOW_NO_AUTH=true"}, "run", "--adapter", "remote", "--remote-url", s.ClientURL(),
		"--signature", "question -> answer", "--input", "question=?")
	assert.Equal(t, 1, r.status, r.stderr)
	assert.Contains(t, r.stderr, "no worker host serves")
	assert.NotContains(t, r.stderr, "signature")
	assert.Empty(t, r.stdout)
}
