package bench

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/protocol"
)

// TestPlainClientServesEveryCallAndStops: callers on several goroutines each
// get their own reply from two workers; stop ends the readers with no
// reply left unread, so the workers then serve the raw baseline's calls.
func TestPlainClientServesEveryCallAndStops(t *testing.T) {
	testutil.VerifyNoChildren(t)
	var raws []*rawWorker
	for range 2 {
		rw, err := startRaw(testutil.Python(t), testutil.PythonDir())
		require.NoError(t, err)
		defer rw.stop()
		raws = append(raws, rw)
	}
	pc := newPlainClient(raws)
	const callers, calls = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, callers*calls)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				if err := pc.call(protocol.Request{Command: command.Ping}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, cw := range pc.workers {
		assert.Empty(t, cw.waiting, "every reply reached its caller")
		assert.Zero(t, cw.inFlight.Load())
	}
	assert.Greater(t, raws[0].nextID, uint64(calls), "both workers took calls")
	assert.Greater(t, raws[1].nextID, uint64(calls), "both workers took calls")
	pc.stop()

	for _, rw := range raws {
		rw.nextID++
		resp, err := rw.call(&protocol.Request{ID: rw.nextID, Command: command.Ping})
		assert.NoError(t, err)
		assert.Equal(t, rw.nextID, resp.ID, "the worker's output holds nothing of the plain client's run")
	}
	r := rawMeasure("after", raws, 4, 100*time.Millisecond, protocol.Request{Command: command.Ping})
	assert.Empty(t, r.FirstError)
	assert.Positive(t, r.Calls)
}

// TestPlainClientFailsWhenAWorkerIsGone: a call to a worker whose reader
// ended returns an error instead of waiting forever.
func TestPlainClientFailsWhenAWorkerIsGone(t *testing.T) {
	testutil.VerifyNoChildren(t)
	rw, err := startRaw(testutil.Python(t), testutil.PythonDir())
	require.NoError(t, err)
	pc := newPlainClient([]*rawWorker{rw})
	rw.stop() // the worker exits: the reader reads the end of its output
	<-pc.workers[0].dead
	assert.Error(t, pc.call(protocol.Request{Command: command.Ping}))
	pc.stop()
}
