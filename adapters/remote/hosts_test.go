package remote_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/protocol"
)

// The test binary doubles as a worker host: started with hostEnv set to
// a NATS URL, it serves a pool of in-memory workers until SIGTERM, as
// "dspgo workers" does with Python workers.
const (
	hostEnv   = "DSPGO_REMOTE_TEST_HOST"
	hostIDEnv = "DSPGO_REMOTE_TEST_HOST_ID"
	beatEnv   = "DSPGO_REMOTE_TEST_BEAT_MS"
)

func hostMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	nc, err := remote.Dial(ctx, remote.DialOptions{URL: os.Getenv(hostEnv), Name: "test-host"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	p, err := pool.New(ctx, pool.Options{Size: 2, WorkerConcurrency: 8, Logger: testutil.Discard,
		Worker: port.Options{Handler: func() protocol.Handler { return mock.NewHandler(mock.HandlerOptions{}) }}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer p.Close(context.Background())
	beat, _ := strconv.Atoi(os.Getenv(beatEnv))
	h, err := remote.Serve(ctx, nc, p, remote.HostOptions{ID: os.Getenv(hostIDEnv), Heartbeat: time.Duration(beat) * time.Millisecond,
		Stats: func() any { return p.Stats() }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("serving") // the parent waits for this line
	<-ctx.Done()
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Close(closeCtx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// hostProc is a worker host in a process of its own.
type hostProc struct {
	id  string
	cmd *exec.Cmd
	out chan error // the process's end
}

// startHost starts a worker host process and waits until it serves.
func startHost(t testing.TB, url, id string) *hostProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), hostEnv+"="+url, hostIDEnv+"="+id, beatEnv+"=100")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	h := &hostProc{id: id, cmd: cmd, out: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 64)
		n, _ := stdout.Read(buf)
		if string(buf[:n]) == "serving\n" {
			close(ready)
		}
		for {
			if _, err := stdout.Read(buf); err != nil {
				break
			}
		}
		h.out <- cmd.Wait()
		close(h.out)
	}()
	t.Cleanup(func() { h.stop(t) })
	select {
	case <-ready:
	case err := <-h.out:
		t.Fatalf("host %s exited before serving: %v", id, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("host %s did not start serving within 30s", id)
	}
	return h
}

// stop drains the host with SIGTERM and waits for its clean exit.
func (h *hostProc) stop(t testing.TB) {
	if h.cmd.ProcessState != nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	err, ok := <-h.out
	if ok {
		require.NoError(t, err, "host %s exits 0 after draining", h.id)
	}
}

// kill SIGKILLs the host and waits until it is gone.
func (h *hostProc) kill() {
	_ = h.cmd.Process.Kill()
	<-h.out
}
