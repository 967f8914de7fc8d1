package pool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/lmtest"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/protocol"
)

// TestPartlyRefusedBroadcastIsUndone: a configure_lm that one worker
// refuses (its verify meets the LM's one 401) and the others accept is
// refused, and afterwards every worker runs the configuration it ran
// before, the one the pool replays to the workers it starts: the three
// that accepted it were recycled.
func TestPartlyRefusedBroadcastIsUndone(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	opts := pythonOptions(t, 4)
	opts.WorkerConcurrency = 1
	p := newPool(t, opts)
	ctx := t.Context()
	before := workerLMs(t, p.Workers()[0])
	err := dspgo.NewClient(p).ConfigureLM(ctx, dspgo.LMConfig{Provider: "openai", Model: "test-model+status=401,fail_first=1",
		BaseURL: srv.URL(), Engine: "native", Verify: true})
	require.Error(t, err)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)

	settled(t, p, 4)
	assertEveryWorkerRuns(t, p, before)
	assert.Equal(t, uint64(3), p.Stats().Recycled["broadcast_refused"], "the three workers that accepted it")
}

// TestRefusedBroadcastRecyclesWorkersStartedMeanwhile: a worker that went
// into service while a broadcast ran was given it by the replay (without
// its verify, which the others then failed); when the broadcast is
// refused, that worker is recycled too.
func TestRefusedBroadcastRecyclesWorkersStartedMeanwhile(t *testing.T) {
	h := newHeldLM(t, true)
	p := newPool(t, pool.Options{Size: 2, MinReady: 1, WorkerConcurrency: 1, Worker: port.Options{Handler: h.secondWaits}})
	h.releaseAtCleanup(t)
	before := workerLMs(t, p.Workers()[0])

	errc := make(chan error, 1)
	go func() { errc <- p.Broadcast(t.Context(), heldLMRequest) }()
	<-h.steps[0].arrived // the one ready worker runs it
	h.open()             // the second worker starts, and replays it
	testutil.WaitFor(t, "the second worker in service", func() bool { return p.Stats().Ready == 2 })
	h.release(0)
	err := <-errc
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)

	settled(t, p, 2)
	assertEveryWorkerRuns(t, p, before)
	assert.Equal(t, uint64(1), p.Stats().Recycled["broadcast_refused"], "the worker started meanwhile")
}

// TestRefusedBroadcastRestartsAWorkerReplayingIt: a worker still replaying
// the record when a broadcast in it is refused starts again from the
// restored record instead of going into service with it.
func TestRefusedBroadcastRestartsAWorkerReplayingIt(t *testing.T) {
	h := newHeldLM(t, true, false)
	p := newPool(t, pool.Options{Size: 2, MinReady: 1, WorkerConcurrency: 1, Worker: port.Options{Handler: h.secondWaits}})
	h.releaseAtCleanup(t)
	before := workerLMs(t, p.Workers()[0])

	errc := make(chan error, 1)
	go func() { errc <- p.Broadcast(t.Context(), heldLMRequest) }()
	<-h.steps[0].arrived
	h.open()
	<-h.steps[1].arrived // the second worker replays it
	h.release(0)
	err := <-errc
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
	h.release(1) // it applies it, then finds the broadcast refused

	settled(t, p, 2)
	assertEveryWorkerRuns(t, p, before)
}

// TestCancelledBroadcastIsUndone: a broadcast whose context ends while
// one worker runs it is refused (canceled), though that worker applies it
// later and another accepted it: both are recycled.
func TestCancelledBroadcastIsUndone(t *testing.T) {
	h := newHeldLM(t, false, false)
	h.release(1) // the second worker to get it accepts it at once
	p := newPool(t, pool.Options{Size: 2, WorkerConcurrency: 1, Worker: port.Options{Handler: h.handler}})
	h.releaseAtCleanup(t)
	before := workerLMs(t, p.Workers()[0])

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- p.Broadcast(ctx, heldLMRequest) }()
	<-h.steps[0].arrived
	<-h.steps[1].arrived
	cancel()
	err := <-errc
	assert.Equal(t, adapter.CodeCanceled, adapter.CodeOf(err), "%v", err)
	h.release(0) // the first worker applies it after all

	settled(t, p, 2)
	assertEveryWorkerRuns(t, p, before)
	assert.Equal(t, uint64(2), p.Stats().Recycled["broadcast_refused"])
}

// heldLMRequest is the configure_lm that heldLM holds.
var heldLMRequest = adapter.Request{Command: command.ConfigureLM, Args: json.RawMessage(`{"provider":"dummy","model":"held"}`)}

// hold is what heldLM does with one configure_lm of heldLMRequest's
// model: it says it arrived, waits for its release, then refuses it or
// applies it, whatever its context says (a worker that gets a cancel too
// late).
type hold struct {
	refuse  bool
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

// heldLM is the mock's worker, shared by every worker of a pool, except
// that the configure_lm of heldLMRequest's model takes the next hold, in
// the order the workers get it; those past the last are applied at once.
type heldLM struct {
	steps []*hold
	// start holds the second worker's start (secondWaits) until opened.
	start     chan struct{}
	startOnce sync.Once

	mu     sync.Mutex
	next   int // the next hold
	starts int // the workers started
}

// newHeldLM returns a heldLM with one hold per refuse, which says whether
// that hold refuses the configuration. Every hold is released, and the
// second worker's start opened, before the pool of the test closes: the
// caller makes the pool first, so its Close runs after this cleanup.
func newHeldLM(t *testing.T, refuse ...bool) *heldLM {
	h := &heldLM{start: make(chan struct{})}
	for _, r := range refuse {
		h.steps = append(h.steps, &hold{refuse: r, arrived: make(chan struct{}), release: make(chan struct{})})
	}
	return h
}

// releaseAtCleanup releases every hold and opens the start when the test
// ends, before the pool, made earlier, closes.
func (h *heldLM) releaseAtCleanup(t *testing.T) {
	t.Cleanup(func() {
		for i := range h.steps {
			h.release(i)
		}
		h.open()
	})
}

func (h *heldLM) release(i int) { h.steps[i].once.Do(func() { close(h.steps[i].release) }) }

func (h *heldLM) open() { h.startOnce.Do(func() { close(h.start) }) }

func (h *heldLM) handler() protocol.Handler {
	return heldHandler{Handler: memoryHandler(), h: h}
}

// secondWaits is handler, except that the second worker's start waits
// for open.
func (h *heldLM) secondWaits() protocol.Handler {
	h.mu.Lock()
	h.starts++
	n := h.starts
	h.mu.Unlock()
	if n == 2 {
		<-h.start
	}
	return h.handler()
}

type heldHandler struct {
	protocol.Handler
	h *heldLM
}

func (x heldHandler) Handle(ctx context.Context, req protocol.Request) protocol.Response {
	if req.Command != command.ConfigureLM || !bytes.Contains(req.Args, []byte(`"held"`)) {
		return x.Handler.Handle(ctx, req)
	}
	x.h.mu.Lock()
	i := x.h.next
	x.h.next++
	x.h.mu.Unlock()
	if i < len(x.h.steps) {
		s := x.h.steps[i]
		close(s.arrived)
		<-s.release
		if s.refuse {
			return protocol.Response{ID: req.ID, Error: &protocol.ErrorBody{Code: "failed_precondition", Message: "held, then refused"}}
		}
	}
	return x.Handler.Handle(context.Background(), req)
}

// settled waits until the pool has n ready workers and none starting or
// draining.
func settled(t *testing.T, p *pool.Pool, n int) {
	t.Helper()
	testutil.WaitFor(t, "the pool settled", func() bool {
		st := p.Stats()
		return st.Ready == n && st.Starting == 0 && st.Draining == 0
	})
}

// assertEveryWorkerRuns checks every worker's LM configurations.
func assertEveryWorkerRuns(t *testing.T, p *pool.Pool, want lmStats) {
	t.Helper()
	workers := p.Workers()
	require.NotEmpty(t, workers)
	for _, w := range workers {
		assert.Equal(t, want, workerLMs(t, w), "worker %s", w.Worker().ID)
	}
}
