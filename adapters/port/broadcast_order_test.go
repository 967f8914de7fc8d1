package port_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
)

// TestConcurrentBroadcastsOfOneKeyLandInOneOrder: of configure_lm calls
// of one LM sent at once, the worker ends with the one the adapter
// recorded, which a restarted worker replays.
func TestConcurrentBroadcastsOfOneKeyLandInOneOrder(t *testing.T) {
	a := newPython(t, port.Options{MaxConcurrency: 4})
	ctx := t.Context()
	for round := range 8 {
		var wg sync.WaitGroup
		for _, side := range []string{"a", "b", "c", "d"} {
			wg.Go(func() {
				args := fmt.Sprintf(`{"provider":"dummy","model":"%s%d","name":"shared"}`, side, round)
				assert.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(args)}))
			})
		}
		wg.Wait()
		before := sharedLM(t, a)
		restarts := a.Worker().Restarts
		a.Kill()
		testutil.WaitFor(t, "restarted", func() bool { return a.Worker().Restarts > restarts && a.Worker().State == "ready" })
		require.Equal(t, before, sharedLM(t, a), "round %d: the restarted worker replays what the worker ran", round)
	}
}

// sharedLM is the model of the worker's LM named "shared".
func sharedLM(t *testing.T, a *port.Adapter) string {
	t.Helper()
	out, err := call(t, a, t.Context(), "get_stats", "")
	require.NoError(t, err)
	var st struct {
		LMs map[string]struct{ Model string } `json:"lms"`
	}
	require.NoError(t, json.Unmarshal(out, &st))
	return st.LMs["shared"].Model
}
