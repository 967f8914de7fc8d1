package pool_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/testutil"
)

// TestConcurrentBroadcastsOfOneKeyLandInOneOrder: two configure_lm of
// the same LM sent at once reach every worker in the same order, so that
// the workers end with the same configuration, the one a worker started
// later replays.
func TestConcurrentBroadcastsOfOneKeyLandInOneOrder(t *testing.T) {
	opts := pythonOptions(t, 3)
	p := newPool(t, opts)
	ctx := t.Context()
	for round := range 40 {
		var wg sync.WaitGroup
		for _, side := range []string{"a", "b", "c"} {
			wg.Go(func() {
				args := fmt.Sprintf(`{"provider":"dummy","model":"%s%d","name":"shared"}`, side, round)
				assert.NoError(t, p.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(args)}))
			})
		}
		wg.Wait()
		workers := p.Workers()
		require.Len(t, workers, 3)
		first := workerLMs(t, workers[0])
		for _, w := range workers[1:] {
			require.Equal(t, first.LMs["shared"], workerLMs(t, w).LMs["shared"], "round %d: worker %s", round, w.Worker().ID)
		}
	}
	w := p.Workers()[0]
	want := workerLMs(t, w)
	w.Kill()
	testutil.WaitFor(t, "the killed worker restarted", func() bool { return w.Worker().Restarts == 1 && w.Worker().State == "ready" })
	assert.Equal(t, want, workerLMs(t, w), "the restarted worker replays what the others run")
}
