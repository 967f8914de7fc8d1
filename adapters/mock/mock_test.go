package mock_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/testutil"
)

var ping = adapter.Request{Command: command.Ping}

// TestHundredMocksInParallel is the seed's "mock not started": mocks are
// values, ready when made, sharing nothing, usable and closable in any
// order.
func TestHundredMocksInParallel(t *testing.T) {
	order := rand.Perm(100)
	for _, i := range order {
		t.Run(fmt.Sprint("mock", i), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			a := mock.New(mock.Options{WorkerID: fmt.Sprint("w", i)})
			c := dspgo.NewClient(a)
			id := fmt.Sprint("p", i)
			_, err := c.CreateProgram(ctx, dspgo.ProgramSpec{ID: id, Signature: dspgo.MustParseSignature("question -> answer")})
			require.NoError(t, err)
			out, err := c.Execute(ctx, id, map[string]any{"question": fmt.Sprint(i)})
			require.NoError(t, err)
			assert.Contains(t, out["answer"], "answer ")
			list, err := c.ListPrograms(ctx)
			require.NoError(t, err)
			assert.Len(t, list, 1, "no state shared with the other mocks")
			assert.EqualValues(t, 2, a.Stats().Calls, "create and execute, nothing from other mocks")
			require.NoError(t, a.Close(ctx))
			_, err = a.Call(ctx, ping)
			assert.ErrorIs(t, err, adapter.ErrClosed)
		})
	}
}

func TestLatencyDoesNotSerialiseCallers(t *testing.T) {
	a := mock.New(mock.Options{})
	a.Inject(mock.Fault{Command: command.Ping, Latency: time.Hour})
	const n = 10
	errs := make(chan error, n)
	for range n {
		go func() { _, err := a.Call(t.Context(), ping); errs <- err }()
	}
	testutil.WaitFor(t, "all callers wait at once", func() bool { return a.Stats().InFlight == n })
	_, err := a.Call(t.Context(), adapter.Request{Command: command.Describe})
	require.NoError(t, err, "other commands are not delayed")
	require.NoError(t, a.Close(t.Context()))
	for range n {
		assert.ErrorIs(t, <-errs, adapter.ErrClosed, "Close ends waiting calls")
	}
}

func TestHangUntilContextEnds(t *testing.T) {
	a := mock.New(mock.Options{})
	defer a.Close(t.Context())
	a.Inject(mock.Fault{Hang: true})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := a.Call(ctx, ping)
	assert.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err))
	a.ClearFaults()
	_, err = a.Call(t.Context(), ping)
	assert.NoError(t, err)
}

func TestFailNext(t *testing.T) {
	a := mock.New(mock.Options{})
	defer a.Close(t.Context())
	a.Inject(mock.Fault{Command: command.Ping, FailNext: 2, Code: adapter.CodeResourceExhausted})
	for range 2 {
		_, err := a.Call(t.Context(), ping)
		assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err))
		assert.ErrorContains(t, err, "injected")
	}
	_, err := a.Call(t.Context(), ping)
	assert.NoError(t, err, "only the next two")
	_, err = a.Call(t.Context(), adapter.Request{Command: command.Describe})
	assert.NoError(t, err, "only ping")

	a.Inject(mock.Fault{FailNext: 1})
	_, err = a.Call(t.Context(), adapter.Request{Command: command.Describe})
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err), "a fault for every command, CodeUnavailable by default")
}

func TestFailRateIsSeeded(t *testing.T) {
	count := func(seed uint64) (failed int) {
		a := mock.New(mock.Options{Seed: seed})
		defer a.Close(t.Context())
		a.Inject(mock.Fault{FailRate: 0.3, Code: adapter.CodeInternal})
		for range 1000 {
			if _, err := a.Call(t.Context(), ping); err != nil {
				require.Equal(t, adapter.CodeInternal, adapter.CodeOf(err))
				failed++
			}
		}
		return failed
	}
	first := count(7)
	assert.Equal(t, first, count(7), "the same seed fails the same calls")
	assert.InDelta(t, 300, first, 60)
}

func TestCrashAndRestart(t *testing.T) {
	ctx := t.Context()
	a := mock.New(mock.Options{})
	defer a.Close(ctx)
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
	require.NoError(t, err)
	before, err := c.Execute(ctx, p.ID, map[string]any{"q": "x"})
	require.NoError(t, err)

	a.Crash()
	_, err = c.Execute(ctx, p.ID, map[string]any{"q": "x"})
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err))
	assert.Zero(t, a.Stats().Workers)

	a.Restart()
	assert.EqualValues(t, 1, a.Stats().Restarts)
	after, err := c.Execute(ctx, p.ID, map[string]any{"q": "x"})
	require.NoError(t, err, "the client resends the spec the restarted worker lost")
	assert.Equal(t, before, after)

	var resent bool
	for _, call := range a.Calls() {
		var args struct{ Spec json.RawMessage }
		if call.Command == command.ExecuteProgram && json.Unmarshal(call.Args, &args) == nil && args.Spec != nil {
			resent = true
		}
	}
	assert.True(t, resent, "the call log shows the resend")
}

func TestCallLogAndReset(t *testing.T) {
	a := mock.New(mock.Options{MaxCallLog: 10})
	defer a.Close(t.Context())
	_, _ = a.Call(t.Context(), adapter.Request{Command: command.Ping, Session: "s"})
	_, _ = a.Call(t.Context(), adapter.Request{Command: "nope"})
	calls := a.Calls()
	require.Len(t, calls, 2)
	assert.Equal(t, "ping", calls[0].Command)
	assert.Equal(t, "s", calls[0].Session)
	assert.Equal(t, adapter.CodeOK, calls[0].Code)
	assert.Equal(t, adapter.CodeUnimplemented, calls[1].Code)

	for range 25 {
		_, _ = a.Call(t.Context(), ping)
	}
	assert.LessOrEqual(t, len(a.Calls()), 10, "the log is bounded")

	a.Inject(mock.Fault{FailNext: 5})
	a.Crash()
	a.Reset()
	assert.Empty(t, a.Calls())
	_, err := a.Call(t.Context(), ping)
	assert.NoError(t, err, "Reset clears faults and the crash")
}

func TestCodecLimitsApply(t *testing.T) {
	a := mock.New(mock.Options{MaxFrameBytes: 2048})
	defer a.Close(t.Context())
	assert.Equal(t, 2048, a.Capabilities().MaxFrameBytes)
	big, _ := json.Marshal(map[string]string{"x": string(make([]byte, 4096))})
	_, err := a.Call(t.Context(), adapter.Request{Command: command.Ping, Args: big})
	assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err))
	_, err = a.Call(t.Context(), adapter.Request{Command: command.Ping, Args: json.RawMessage(`[1]`)})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "args must be an object, as on the wire")
	_, err = a.Call(t.Context(), adapter.Request{Command: ""})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
}

func TestOpenAIProviderIsRefusedClearly(t *testing.T) {
	a := mock.New(mock.Options{})
	defer a.Close(t.Context())
	err := dspgo.NewClient(a).ConfigureLM(t.Context(), dspgo.LMConfig{Provider: dspgo.ProviderOpenAI, Model: "gpt-4o-mini"})
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "dummy provider only")
}

func TestConcurrentUseUnderRace(t *testing.T) {
	ctx := t.Context()
	a := mock.New(mock.Options{})
	defer a.Close(ctx)
	c := dspgo.NewClient(a)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := c.Session(fmt.Sprint("s", g%4))
			for i := range 20 {
				id := fmt.Sprintf("p%d-%d", g, i)
				_, err := s.CreateProgram(ctx, dspgo.ProgramSpec{ID: id, Signature: dspgo.MustParseSignature("q -> a")})
				assert.NoError(t, err)
				_, err = s.Execute(ctx, id, map[string]any{"q": id})
				assert.NoError(t, err)
				_ = a.Stats()
				_ = a.Calls()
				if i%3 == 0 {
					assert.NoError(t, s.DeleteProgram(ctx, id))
				}
			}
		}()
	}
	wg.Wait()
}
