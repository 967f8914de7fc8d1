package dspgo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/command"
)

// gated is the mock, but for the calls of one command in a session, each
// of which says it has arrived and waits for the test to release it (or,
// with release nil, says it on arrived when nothing is waiting there
// already, and goes on); it answers compile_program itself, with no
// instructions and no demos.
type gated struct {
	*mock.Adapter
	command string
	arrived chan struct{}
	release chan struct{}
}

func newGated(t *testing.T, cmd string) (*dspgo.Client, *gated) {
	t.Helper()
	_, a := newClient(t)
	g := &gated{Adapter: a, command: cmd, arrived: make(chan struct{}), release: make(chan struct{})}
	return dspgo.NewClient(g), g
}

func (g *gated) Capabilities() adapter.Capabilities {
	caps := g.Adapter.Capabilities()
	caps.Commands = append(slices.Clone(caps.Commands), command.CompileProgram)
	return caps
}

func (g *gated) Call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	if req.Command != g.command || req.Session == "" {
		return g.Adapter.Call(ctx, req)
	}
	if g.release == nil {
		select {
		case g.arrived <- struct{}{}:
		default:
		}
		return g.Adapter.Call(ctx, req)
	}
	g.arrived <- struct{}{}
	<-g.release
	if req.Command == command.CompileProgram {
		return adapter.Response{Result: json.RawMessage(`{"instructions":"","demos":[]}`)}, nil
	}
	return g.Adapter.Call(ctx, req)
}

// backendPrograms returns how many specs the mock holds compiled.
func backendPrograms(t *testing.T, a adapter.Adapter) int {
	t.Helper()
	resp, err := a.Call(t.Context(), adapter.Request{Command: command.GetStats})
	require.NoError(t, err)
	var stats command.StatsResult
	require.NoError(t, json.Unmarshal(resp.Result, &stats))
	return stats.Programs
}

// TestSessionCloseOvertakesCreate: a CreateProgram (or a Compile) of a
// session that Close overtakes while the backend compiles fails with
// ErrSessionClosed, leaves no program in the client, and the backend's
// copy is evicted; the id is a new, empty session.
func TestSessionCloseOvertakesCreate(t *testing.T) {
	ctx := t.Context()
	t.Run("CreateProgram", func(t *testing.T) {
		c, g := newGated(t, command.CreateProgram)
		s := c.Session("s")
		done := make(chan error, 1)
		go func() {
			_, err := s.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: qa})
			done <- err
		}()
		<-g.arrived
		require.NoError(t, s.Close(ctx))
		close(g.release)
		err := <-done
		assert.ErrorIs(t, err, dspgo.ErrSessionClosed)
		assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err))
		assert.Zero(t, backendPrograms(t, g.Adapter), "the backend's copy was evicted")
		assert.Zero(t, c.Stats().Programs)
		list, err := c.Session("s").ListPrograms(ctx)
		require.NoError(t, err)
		assert.Empty(t, list, "the id is a new, empty session")
	})
	t.Run("a spec another program shares stays on the backend", func(t *testing.T) {
		c, g := newGated(t, command.CreateProgram)
		_, err := c.CreateProgram(ctx, dspgo.ProgramSpec{ID: "kept", Signature: qa})
		require.NoError(t, err)
		s := c.Session("s")
		done := make(chan error, 1)
		go func() {
			_, err := s.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: qa})
			done <- err
		}()
		<-g.arrived
		require.NoError(t, s.Close(ctx))
		close(g.release)
		assert.ErrorIs(t, <-done, dspgo.ErrSessionClosed)
		assert.Equal(t, 1, backendPrograms(t, g.Adapter))
		_, err = c.Execute(ctx, "kept", map[string]any{"question": "?"})
		assert.NoError(t, err)
	})
	t.Run("Compile", func(t *testing.T) {
		c, g := newGated(t, command.CompileProgram)
		var s *dspgo.Session
		var p *dspgo.Program
		trainset := []dspgo.Example{{Inputs: map[string]any{"question": "q"}, Outputs: map[string]any{"answer": "a"}}}
		for _, compile := range []func() (*dspgo.Program, error){
			func() (*dspgo.Program, error) { return s.Compile(ctx, p, trainset, nil) },
			func() (*dspgo.Program, error) { return c.Compile(ctx, p, trainset, nil) },
		} {
			s = c.Session("s")
			var err error
			p, err = s.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: qa})
			require.NoError(t, err)
			done := make(chan error, 1)
			go func() {
				_, err := compile()
				done <- err
			}()
			<-g.arrived
			require.NoError(t, s.Close(ctx))
			g.release <- struct{}{}
			assert.ErrorIs(t, <-done, dspgo.ErrSessionClosed)
			list, err := c.Session("s").ListPrograms(ctx)
			require.NoError(t, err)
			assert.Empty(t, list, "the compiled program is not in a new session of the id")
		}
	})
}

// TestSessionCloseRacingCreate: CreateProgram and Close run at once, many
// times, Close once the create has started (while the spec compiles in
// the client, mostly), once the backend has it, or once it has returned,
// in turn; either the create returned first and Close deleted its program,
// or it fails with ErrSessionClosed. Either way the id is a new, empty session
// after, and the backend holds only the specs of the creates that
// succeeded.
func TestSessionCloseRacingCreate(t *testing.T) {
	_, a := newClient(t)
	g := &gated{Adapter: a, command: command.CreateProgram, arrived: make(chan struct{}, 1)}
	c := dspgo.NewClient(g)
	ctx := t.Context()
	fields := make([]string, 300) // compiling takes a moment
	for i := range fields {
		fields[i] = fmt.Sprintf("f%d", i)
	}
	sig := dspgo.MustParseSignature(strings.Join(fields, ", ") + " -> answer")
	created, overtaken := 0, 0
	for round := range 200 {
		s := c.Session("s")
		var err error
		var wg sync.WaitGroup
		start, creating, returned := make(chan struct{}), make(chan struct{}), make(chan struct{})
		wg.Go(func() {
			defer close(returned)
			<-start
			close(creating)
			_, err = s.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: sig, Instructions: fmt.Sprint("round ", round)})
		})
		wg.Go(func() {
			<-start
			switch round % 3 {
			case 0:
				<-creating
			case 1:
				select {
				case <-g.arrived:
				case <-returned: // overtaken before it reached the backend
				}
			case 2:
				<-returned
			}
			assert.NoError(t, s.Close(ctx))
		})
		close(start)
		wg.Wait()
		select {
		case <-g.arrived:
		default:
		}
		if err == nil {
			created++
		} else {
			require.ErrorIs(t, err, dspgo.ErrSessionClosed, "round %d", round)
			overtaken++
		}
		list, err := c.Session("s").ListPrograms(ctx)
		require.NoError(t, err)
		require.Empty(t, list, "round %d: the id is a new, empty session", round)
		require.Zero(t, c.Stats().Programs, "round %d", round)
		require.Equal(t, created, backendPrograms(t, a), "round %d: the backend holds the specs of the creates that succeeded", round)
	}
	t.Logf("%d creates returned before Close, %d were overtaken", created, overtaken)
}

// TestSessionsStartWithTheirFirstProgram: a call that only reads a
// session (GetProgram, ListPrograms, Execute, DeleteProgram of a missing
// program) starts none, so failed lookups of many ids hold nothing; the
// first program created starts it, and Close, or the deletion or failed
// create of its last program, ends it.
func TestSessionsStartWithTheirFirstProgram(t *testing.T) {
	c, a := newClient(t)
	ctx := t.Context()
	for i := range 10000 {
		s := c.Session(fmt.Sprint("req-", i))
		_, err := s.Execute(ctx, "nope", nil)
		require.Equal(t, adapter.CodeNotFound, adapter.CodeOf(err), "%v", err)
		_, err = s.GetProgram(ctx, "nope")
		require.Equal(t, adapter.CodeNotFound, adapter.CodeOf(err), "%v", err)
		list, err := s.ListPrograms(ctx)
		require.NoError(t, err)
		require.Empty(t, list)
		require.Equal(t, adapter.CodeNotFound, adapter.CodeOf(s.DeleteProgram(ctx, "nope")))
	}
	assert.Zero(t, c.Stats().Sessions, "failed lookups hold no session")
	assert.Zero(t, c.Stats().Programs)

	s := c.Session("s")
	_, err := s.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: qa})
	require.NoError(t, err)
	_, err = s.CreateProgram(ctx, dspgo.ProgramSpec{ID: "q", Signature: qa})
	require.NoError(t, err)
	assert.Equal(t, 1, c.Stats().Sessions, "the first program started it")
	require.NoError(t, s.DeleteProgram(ctx, "p"))
	assert.Equal(t, 1, c.Stats().Sessions)
	require.NoError(t, s.DeleteProgram(ctx, "q"))
	assert.Zero(t, c.Stats().Sessions, "the deletion of its last program ended it")
	_, err = s.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: qa})
	require.NoError(t, err, "its id starts a new one")
	assert.Equal(t, 1, c.Stats().Sessions)
	require.NoError(t, s.Close(ctx))
	assert.Zero(t, c.Stats().Sessions)

	a.Inject(mock.Fault{Command: command.CreateProgram, FailNext: 1, Code: adapter.CodeUnavailable})
	_, err = c.Session("t").CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: qa})
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(err))
	_, err = c.Session("t").CreateProgram(ctx, dspgo.ProgramSpec{ID: "bad id", Signature: qa})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.Zero(t, c.Stats().Sessions, "a failed create starts no session")
}

// TestReadsOfUnknownSessionsLeaveTTLAlone: with a TTL, reading a session
// keeps it alive, and reading an unknown one starts none.
func TestReadsOfUnknownSessionsLeaveTTLAlone(t *testing.T) {
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	c, _ := newClient(t, dspgo.WithSessionTTL(time.Minute), dspgo.WithClock(clock))
	ctx := t.Context()
	s := c.Session("s")
	_, err := s.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: qa})
	require.NoError(t, err)
	now.Add(int64(50 * time.Second))
	_, err = s.GetProgram(ctx, "p")
	require.NoError(t, err)
	_, err = c.Session("other").GetProgram(ctx, "p")
	assert.Equal(t, adapter.CodeNotFound, adapter.CodeOf(err))
	now.Add(int64(50 * time.Second))
	assert.Equal(t, 1, c.Stats().Sessions, "read 50 s ago: alive; the unknown one never started")
	now.Add(int64(11 * time.Second))
	assert.Zero(t, c.Stats().Sessions, "idle past the TTL")
}
