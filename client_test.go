package dspgo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/command"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var qa = dspgo.MustParseSignature("question -> answer")

func newClient(t *testing.T, opts ...dspgo.Option) (*dspgo.Client, *mock.Adapter) {
	t.Helper()
	a := mock.New(mock.Options{})
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	return dspgo.NewClient(a, opts...), a
}

func TestSessionsExpireAfterIdleTTL(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	advance := func(d time.Duration) { now.Add(int64(d)) }
	c, _ := newClient(t, dspgo.WithSessionTTL(time.Minute), dspgo.WithClock(clock))
	ctx := t.Context()

	idle, busy := c.Session("idle"), c.Session("busy")
	for _, s := range []*dspgo.Session{idle, busy} {
		_, err := s.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: qa})
		require.NoError(t, err)
	}
	_, err := c.CreateProgram(ctx, dspgo.ProgramSpec{ID: "default", Signature: qa})
	require.NoError(t, err)
	assert.Equal(t, 2, c.Stats().Sessions)

	advance(40 * time.Second)
	_, err = busy.Execute(ctx, "p", map[string]any{"question": "?"})
	require.NoError(t, err)
	advance(40 * time.Second) // idle: 80 s unused; busy: 40 s

	assert.Equal(t, 1, c.Stats().Sessions, "the idle session expired")
	_, err = idle.GetProgram(ctx, "p")
	assert.Equal(t, adapter.CodeNotFound, adapter.CodeOf(err), "its programs are gone")
	_, err = busy.GetProgram(ctx, "p")
	assert.NoError(t, err)
	_, err = c.GetProgram(ctx, "default")
	assert.NoError(t, err, "the default scope never expires")
}

func TestConcurrentCreateOfOneIDHasOneWinner(t *testing.T) {
	c, _ := newClient(t)
	var wg sync.WaitGroup
	var won, lost atomic.Int32
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{ID: "same", Signature: qa})
			switch adapter.CodeOf(err) {
			case adapter.CodeOK:
				won.Add(1)
			case adapter.CodeAlreadyExists:
				lost.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 1, won.Load())
	assert.EqualValues(t, 31, lost.Load())
}

func TestFailedCreateReleasesTheID(t *testing.T) {
	c, a := newClient(t)
	a.Inject(mock.Fault{Command: command.CreateProgram, FailNext: 1})
	_, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{ID: "p", Signature: qa})
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err))
	_, err = c.GetProgram(t.Context(), "p")
	assert.Equal(t, adapter.CodeNotFound, adapter.CodeOf(err), "a failed create leaves nothing behind")
	_, err = c.CreateProgram(t.Context(), dspgo.ProgramSpec{ID: "p", Signature: qa})
	assert.NoError(t, err, "the id can be used again")
}

func TestDeleteEvictsOnlyUnsharedSpecs(t *testing.T) {
	c, a := newClient(t)
	ctx := t.Context()
	for _, id := range []string{"a", "b"} {
		_, err := c.CreateProgram(ctx, dspgo.ProgramSpec{ID: id, Signature: qa})
		require.NoError(t, err)
	}
	deletes := func() (n int) {
		for _, call := range a.Calls() {
			if call.Command == command.DeleteProgram {
				n++
			}
		}
		return n
	}
	require.NoError(t, c.DeleteProgram(ctx, "a"))
	assert.Zero(t, deletes(), "b still uses the spec")
	require.NoError(t, c.DeleteProgram(ctx, "b"))
	assert.Equal(t, 1, deletes(), "the last user evicts it")
}

// stub is an adapter whose answers the test chooses.
type stub struct {
	call       func(adapter.Request) (adapter.Response, error)
	broadcasts []adapter.Request
	mu         sync.Mutex
}

func (s *stub) Name() string                       { return "stub" }
func (s *stub) Capabilities() adapter.Capabilities { return adapter.Capabilities{} }
func (s *stub) Close(context.Context) error        { return nil }
func (s *stub) Call(_ context.Context, r adapter.Request) (adapter.Response, error) {
	return s.call(r)
}

type broadcastStub struct{ stub }

func (s *broadcastStub) Broadcast(_ context.Context, r adapter.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broadcasts = append(s.broadcasts, r)
	return nil
}

func TestConfigureLMBroadcastsWhenItCan(t *testing.T) {
	b := &broadcastStub{stub{call: func(r adapter.Request) (adapter.Response, error) {
		t.Errorf("configure_lm must be broadcast, not called: %s", r.Command)
		return adapter.Response{}, nil
	}}}
	require.NoError(t, dspgo.NewClient(b).ConfigureLM(t.Context(), dspgo.LMConfig{Model: "m", Delay: time.Second}))
	require.Len(t, b.broadcasts, 1)
	assert.Equal(t, command.ConfigureLM, b.broadcasts[0].Command)
	assert.JSONEq(t, `{"provider":"dummy","model":"m","delay_ms":1000}`, string(b.broadcasts[0].Args))
}

func TestBackendContractViolationsAreErrors(t *testing.T) {
	ctx := t.Context()
	var hash string
	reply := func(outputs string) func(adapter.Request) (adapter.Response, error) {
		return func(r adapter.Request) (adapter.Response, error) {
			switch r.Command {
			case command.CreateProgram:
				return adapter.Response{Result: json.RawMessage(fmt.Sprintf(`{"spec_hash":%q}`, hash))}, nil
			default:
				return adapter.Response{Result: json.RawMessage(outputs)}, nil
			}
		}
	}
	s := &stub{call: reply(`{"outputs":{"answer":"x"}}`)}
	c := dspgo.NewClient(s)

	hash = "not-the-hash"
	_, err := c.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: qa})
	assert.Equal(t, adapter.CodeInternal, adapter.CodeOf(err))
	assert.ErrorContains(t, err, "disagree")

	two := dspgo.MustParseSignature("question -> answer, score: float")
	reference := mock.New(mock.Options{})
	defer reference.Close(ctx)
	p, err := dspgo.NewClient(reference).CreateProgram(ctx, dspgo.ProgramSpec{Signature: two})
	require.NoError(t, err)
	hash = p.Hash
	_, err = c.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: two})
	require.NoError(t, err)
	_, err = c.Execute(ctx, "p", map[string]any{"question": "?"})
	assert.Equal(t, adapter.CodeInternal, adapter.CodeOf(err))
	assert.ErrorContains(t, err, `output "score" is missing`, "never a placeholder")

	s.call = reply(`{"outputs":{"answer":"x","score":"high"}}`)
	_, err = c.Execute(ctx, "p", map[string]any{"question": "?"})
	assert.ErrorContains(t, err, "output score: expected float")

	s.call = reply(`{"nothing":1}`)
	_, err = c.Execute(ctx, "p", map[string]any{"question": "?"})
	assert.ErrorContains(t, err, "malformed result")
}

func TestSessionNeedsAnID(t *testing.T) {
	c, _ := newClient(t)
	_, err := c.Session("").CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: qa})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
}

func TestSessionRequestsCarryTheSession(t *testing.T) {
	c, a := newClient(t)
	s := c.Session("affinity")
	_, err := s.CreateProgram(t.Context(), dspgo.ProgramSpec{ID: "p", Signature: qa})
	require.NoError(t, err)
	_, err = s.Execute(t.Context(), "p", map[string]any{"question": "?"})
	require.NoError(t, err)
	require.NoError(t, s.Ping(t.Context()))
	for _, call := range a.Calls() {
		assert.Equal(t, "affinity", call.Session, call.Command)
	}
}

// callOnly hides every optional interface of an adapter, Streamer among
// them.
type callOnly struct{ adapter.Adapter }

// On an adapter that does not stream, ExecuteStream gives each output
// whole, in output order, then the outputs.
func TestExecuteStreamWithoutStreamer(t *testing.T) {
	m := mock.New(mock.Options{})
	defer m.Close(context.Background())
	c := dspgo.NewClient(callOnly{m})
	p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a, n: int")})
	require.NoError(t, err)
	var parts []dspgo.StreamPart
	for part, err := range c.ExecuteStream(t.Context(), p.ID, map[string]any{"q": "x"}) {
		require.NoError(t, err)
		parts = append(parts, part)
	}
	require.Len(t, parts, 3)
	out := parts[2].Outputs
	assert.Equal(t, dspgo.StreamPart{Field: "a", Delta: out["a"].(string)}, parts[0])
	assert.Equal(t, dspgo.StreamPart{Field: "n", Delta: fmt.Sprint(out["n"])}, parts[1])
}
