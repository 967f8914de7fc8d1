package replay_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/replay"
)

func lm(args string) adapter.Request {
	return adapter.Request{Command: command.ConfigureLM, Args: json.RawMessage(args)}
}

func TestRecordKeepsOnePerKey(t *testing.T) {
	var l replay.Log
	l.Record(lm(`{"provider":"dummy","model":"a"}`))
	l.Record(lm(`{"provider":"dummy","model":"fast","name":"fast"}`))
	l.Record(lm(`{"provider":"dummy","model":"b"}`))
	got := l.List()
	require.Len(t, got, 2, "the default LM replaced, the named one kept")
	assert.JSONEq(t, `{"provider":"dummy","model":"fast","name":"fast"}`, string(got[0].Args))
	assert.JSONEq(t, `{"provider":"dummy","model":"b"}`, string(got[1].Args), "the later one last, in order")
}

// TestRecordDropsVerify: a configure_lm is recorded without "verify",
// which checks a configuration once: a worker started during an outage of
// the LM must not fail on it. Restore still finds it.
func TestRecordDropsVerify(t *testing.T) {
	var l replay.Log
	l.Record(lm(`{"provider":"dummy","model":"a"}`))
	undo := l.Record(lm(`{"provider":"openai","model":"m","verify":true}`))
	require.Len(t, l.List(), 1)
	assert.JSONEq(t, `{"provider":"openai","model":"m"}`, string(l.List()[0].Args))
	l.Restore(undo)
	assert.JSONEq(t, `{"provider":"dummy","model":"a"}`, string(l.List()[0].Args), "restored by what was recorded")
	l.Record(adapter.Request{Command: "other", Args: json.RawMessage(`{"verify":true}`)})
	assert.JSONEq(t, `{"verify":true}`, string(l.List()[1].Args), "only configure_lm's")
}

func TestRestore(t *testing.T) {
	var l replay.Log
	l.Record(lm(`{"provider":"dummy","model":"a"}`))
	l.Restore(l.Record(lm(`{"provider":"dummy","model":"refused"}`)))
	require.Len(t, l.List(), 1)
	assert.JSONEq(t, `{"provider":"dummy","model":"a"}`, string(l.List()[0].Args), "the replaced one is back")

	l.Restore(l.Record(lm(`{"provider":"dummy","model":"x","name":"new"}`)))
	assert.Len(t, l.List(), 1, "a refused broadcast that replaced none leaves none")

	refused := l.Record(lm(`{"provider":"dummy","model":"refused"}`))
	l.Record(lm(`{"provider":"dummy","model":"later"}`))
	l.Restore(refused)
	assert.JSONEq(t, `{"provider":"dummy","model":"later"}`, string(l.List()[0].Args), "a later broadcast is never undone")
}

// TestRestoreReportsAChange: Restore says whether a worker that applied
// the refused broadcast may run another configuration than the log now
// holds.
func TestRestoreReportsAChange(t *testing.T) {
	var l replay.Log
	assert.True(t, l.Restore(l.Record(lm(`{"provider":"dummy","model":"a"}`))), "it replaced none")
	l.Record(lm(`{"provider":"dummy","model":"a"}`))
	assert.False(t, l.Restore(l.Record(lm(`{"provider":"dummy","model":"a","verify":true}`))), "the same again (verify is not recorded)")
	assert.True(t, l.Restore(l.Record(lm(`{"provider":"dummy","model":"b"}`))), "another one")
	refused := l.Record(lm(`{"provider":"dummy","model":"b"}`))
	l.Record(lm(`{"provider":"dummy","model":"c"}`))
	assert.True(t, l.Restore(refused), "replaced meanwhile by another")
	assert.JSONEq(t, `{"provider":"dummy","model":"c"}`, string(l.List()[0].Args))
}

// TestRestoreInTurn: a broadcast refused after a later one of the same
// key was refused puts back the one it replaced.
func TestRestoreInTurn(t *testing.T) {
	var l replay.Log
	l.Record(lm(`{"provider":"dummy","model":"a"}`))
	first := l.Record(lm(`{"provider":"dummy","model":"b"}`))
	l.Restore(l.Record(lm(`{"provider":"dummy","model":"c"}`)))
	assert.JSONEq(t, `{"provider":"dummy","model":"b"}`, string(l.List()[0].Args))
	assert.True(t, l.Restore(first))
	assert.JSONEq(t, `{"provider":"dummy","model":"a"}`, string(l.List()[0].Args))
}

// TestRestoreTakesBackItsOwnRecord: two broadcasts of the same arguments
// at once, the first refused: its Restore leaves the second's record.
func TestRestoreTakesBackItsOwnRecord(t *testing.T) {
	var l replay.Log
	refused := l.Record(lm(`{"provider":"dummy","model":"a","name":"x"}`))
	l.Record(lm(`{"provider":"dummy","model":"a","name":"x"}`))
	assert.False(t, l.Restore(refused), "the log holds the same")
	require.Len(t, l.List(), 1)
	assert.JSONEq(t, `{"provider":"dummy","model":"a","name":"x"}`, string(l.List()[0].Args))
}

func TestReplay(t *testing.T) {
	var mu sync.Mutex
	var l replay.Log
	var sent []string
	require.NoError(t, l.Replay(&mu, func(req adapter.Request) error { sent = append(sent, string(req.Args)); return nil }, noRefusal(t)))
	assert.Empty(t, sent)
	assert.False(t, mu.TryLock(), "success returns with the lock held")
	mu.Unlock()

	l.Record(lm(`{"provider":"dummy","model":"a"}`))
	first := true
	err := l.Replay(&mu, func(req adapter.Request) error {
		sent = append(sent, string(req.Args))
		if first { // a broadcast recorded while replaying is replayed too
			first = false
			mu.Lock()
			l.Record(lm(`{"provider":"dummy","model":"b"}`))
			mu.Unlock()
		}
		return nil
	}, noRefusal(t))
	require.NoError(t, err)
	mu.Unlock()
	assert.Equal(t, []string{`{"provider":"dummy","model":"a"}`, `{"provider":"dummy","model":"b"}`}, sent)

	boom := errors.New("boom")
	assert.ErrorIs(t, l.Replay(&mu, func(adapter.Request) error { return boom }, noRefusal(t)), boom)
	assert.True(t, mu.TryLock(), "failure returns with the lock free")
}

func noRefusal(t *testing.T) func(adapter.Request, error) {
	return func(req adapter.Request, err error) { t.Errorf("refused %s: %v", req.Args, err) }
}

// TestReplayDropsWhatTheWorkerRefuses: a broadcast a new worker refuses
// as invalid leaves the log, the one it replaced comes back and reaches
// the worker (the replay starts over), so it cannot keep later workers
// from starting; any other refusal, which may pass, ends the replay.
func TestReplayDropsWhatTheWorkerRefuses(t *testing.T) {
	var mu sync.Mutex
	var l replay.Log
	l.Record(lm(`{"provider":"dummy","model":"a"}`))
	l.Record(lm(`{"provider":"dummy","model":"good","name":"fast"}`))
	l.Record(lm(`{"provider":"dummy","model":"b","name":"other"}`))
	l.Record(lm(`{"provider":"dummy","model":"bad","name":"fast","temperature":9}`))
	invalid := &adapter.Error{Code: adapter.CodeInvalidArgument, Op: command.ConfigureLM,
		Remote: &adapter.RemoteError{Code: adapter.CodeInvalidArgument, Message: "temperature 9 is outside [0, 2]"}}
	var sent []string
	var dropped []error
	err := l.Replay(&mu, func(req adapter.Request) error {
		sent = append(sent, string(req.Args))
		if bytes.Contains(req.Args, []byte(`"bad"`)) {
			return fmt.Errorf("replaying: %w", invalid)
		}
		return nil
	}, func(req adapter.Request, err error) { dropped = append(dropped, err) })
	require.NoError(t, err)
	mu.Unlock()
	require.Len(t, dropped, 1)
	assert.ErrorIs(t, dropped[0], invalid)
	require.Len(t, l.List(), 3)
	assert.JSONEq(t, `{"provider":"dummy","model":"good","name":"fast"}`, string(l.List()[2].Args), "the replaced one is back")
	assert.JSONEq(t, `{"provider":"dummy","model":"good","name":"fast"}`, sent[len(sent)-1], "and the worker got it")

	// A refusal that may pass (dspy failed to import) keeps the broadcast
	// and fails the start, which is retried.
	unavailable := &adapter.Error{Code: adapter.CodeFailedPrecondition, Op: command.ConfigureLM,
		Remote: &adapter.RemoteError{Code: adapter.CodeFailedPrecondition, Message: "dspy cannot be imported"}}
	err = l.Replay(&mu, func(req adapter.Request) error {
		if bytes.Contains(req.Args, []byte(`"good"`)) {
			return unavailable
		}
		return nil
	}, noRefusal(t))
	assert.ErrorIs(t, err, unavailable)
	assert.True(t, mu.TryLock(), "failure returns with the lock free")
	mu.Unlock()
	assert.Len(t, l.List(), 3, "nothing dropped")
}
