package pool_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/protocol"
)

// gate holds every worker's init ping until released, counting how many
// starts run at once.
type gate struct {
	open          chan struct{}
	active, peak  atomic.Int32
	started, held atomic.Int32
	once          sync.Once
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func (g *gate) handler() protocol.Handler {
	return gatedHandler{g: g, h: mock.NewHandler(mock.HandlerOptions{})}
}

type gatedHandler struct {
	g *gate
	h *mock.Handler
}

func (h gatedHandler) Handle(ctx context.Context, req protocol.Request) protocol.Response {
	if req.ID == protocol.InitID {
		n := h.g.active.Add(1)
		for {
			peak := h.g.peak.Load()
			if n <= peak || h.g.peak.CompareAndSwap(peak, n) {
				break
			}
		}
		h.g.held.Add(1)
		select {
		case <-h.g.open:
		case <-ctx.Done():
		}
		h.g.active.Add(-1)
		h.g.started.Add(1)
	}
	return h.h.Handle(ctx, req)
}

func TestStartConcurrencyAndMinReady(t *testing.T) {
	g := newGate()
	done := make(chan *pool.Pool)
	go func() {
		p, err := pool.New(context.Background(), pool.Options{Size: 5, StartConcurrency: 2, MinReady: 1, Logger: quiet,
			Worker: port.Options{Handler: g.handler}})
		assert.NoError(t, err)
		done <- p
	}()
	testutil.WaitFor(t, "two starts at once", func() bool { return g.active.Load() == 2 })
	select {
	case <-done:
		t.Fatal("New returned before MinReady workers were ready")
	default:
	}
	g.release()
	p := <-done
	defer p.Close(context.Background())
	assert.LessOrEqual(t, g.peak.Load(), int32(2), "StartConcurrency 2: never more than two starts at once")
	testutil.WaitFor(t, "all five start", func() bool { return p.Stats().Ready == 5 })
	assert.LessOrEqual(t, g.peak.Load(), int32(2))
}

func TestMinReadyReturnsEarly(t *testing.T) {
	g := newGate()
	var first atomic.Bool
	handler := func() protocol.Handler {
		if first.CompareAndSwap(false, true) {
			return mock.NewHandler(mock.HandlerOptions{}) // the first worker starts at once
		}
		return g.handler()
	}
	p, err := pool.New(t.Context(), pool.Options{Size: 3, MinReady: 1, Logger: quiet, Worker: port.Options{Handler: handler}})
	require.NoError(t, err, "returns with one ready while two are held")
	defer p.Close(context.Background())
	st := p.Stats()
	assert.Equal(t, 1, st.Ready)
	assert.Equal(t, 2, st.Starting)
	_, err = p.Call(t.Context(), adapter.Request{Command: "ping"})
	assert.NoError(t, err, "a starting worker never blocks checkouts to a ready one")
	g.release()
	testutil.WaitFor(t, "the rest start", func() bool { return p.Stats().Ready == 3 })
}

func TestNameLoggerAndWorkerOptions(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(b)
	}), nil))
	p, err := pool.New(t.Context(), pool.Options{Name: "batch", Size: 1, Logger: logger,
		Recycle: pool.Recycle{MaxCalls: 1},
		Worker:  port.Options{Handler: memoryHandler, MaxFrameBytes: 4096}})
	require.NoError(t, err)
	defer p.Close(context.Background())
	assert.Equal(t, "batch", p.Name())
	resp, err := p.Call(t.Context(), adapter.Request{Command: "ping"})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(resp.Worker, "batch-"), "workers are named after the pool: %s", resp.Worker)
	assert.Equal(t, 4096, p.Capabilities().MaxFrameBytes, "Worker options reach the workers")
	_, err = p.Call(t.Context(), adapter.Request{Command: "ping", Args: []byte(`{"pad":"` + strings.Repeat("x", 5000) + `"}`)})
	assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err))
	testutil.WaitFor(t, "the logger hears of the retirement", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "retiring worker") && strings.Contains(logs.String(), "pool=batch")
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestHealthChecksCanBeDisabled(t *testing.T) {
	opts := pythonOptions(t, 1)
	opts.HealthInterval = -1
	p := newPool(t, opts)
	pid := p.Workers()[0].Worker().PID
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	defer syscall.Kill(pid, syscall.SIGCONT)
	// Over a window of several would-be health intervals, nothing kills
	// the unresponsive worker.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := p.Call(ctx, adapter.Request{Command: "ping"})
	assert.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err))
	assert.Zero(t, p.Stats().HealthFailures)
	assert.Equal(t, pid, p.Workers()[0].Worker().PID)
}

func TestInvalidOptionsAreReportedTogether(t *testing.T) {
	_, err := pool.New(t.Context(), pool.Options{Size: -1, MaxQueue: -2, Affinity: "sticky", Worker: port.Options{Handler: memoryHandler}})
	require.Error(t, err)
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.EqualError(t, err, `pool: start: invalid options: Size -1 must be at least 1; MaxQueue -2 must not be negative; `+
		`Affinity "sticky" is unknown (known: none, prefer, strict) (invalid_argument)`,
		"every invalid option once, and nothing derived from them")
}

func TestRestartBackoffIsHonoured(t *testing.T) {
	p := newPool(t, pool.Options{Size: 1, Logger: quiet, HealthInterval: -1, CheckoutTimeout: 100 * time.Millisecond,
		Restart: port.RestartPolicy{Min: time.Hour, Max: time.Hour}, Worker: port.Options{Handler: memoryHandler}})
	p.Workers()[0].Kill()
	testutil.WaitFor(t, "the worker is down", func() bool { return p.Stats().Starting == 1 })
	_, err := p.Call(t.Context(), adapter.Request{Command: "ping"})
	assert.ErrorIs(t, err, pool.ErrCheckoutTimeout, "with an hour of backoff, no worker comes back during the test")
	assert.ErrorContains(t, err, "1 starting or restarting")
}
