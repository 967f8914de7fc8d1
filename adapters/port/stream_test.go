package port_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/proc"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/internal/wait"
)

// TestSlowConsumerKeepsWorkerMemoryFlat: a stream of 10,000 chunks to a
// consumer that takes one chunk every millisecond. The worker waits for
// credit instead of buffering: its resident memory stays within 5 MB of
// where it started.
func TestSlowConsumerKeepsWorkerMemoryFlat(t *testing.T) {
	testutil.VerifyNoChildren(t)
	a, err := port.New(context.Background(), port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(),
		Diagnostics: true, Logger: quiet})
	require.NoError(t, err)
	defer a.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pid := a.Worker().PID
	// Warm up the code path once, so the baseline includes it.
	for _, err := range a.Stream(ctx, adapter.Request{Command: "stream_count", Args: json.RawMessage(`{"n":100}`)}) {
		require.NoError(t, err)
	}
	start := proc.RSS(pid)
	require.NotZero(t, start)

	const n = 10_000
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var got int
	var peak uint64
	for c, err := range a.Stream(ctx, adapter.Request{Command: "stream_count", Args: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}) {
		require.NoError(t, err)
		if c.Response != nil {
			assert.JSONEq(t, fmt.Sprintf(`{"count":%d}`, n), string(c.Response.Result))
			break
		}
		require.Equal(t, fmt.Sprint(got), string(c.Data), "in order, none lost")
		got++
		if got%500 == 0 {
			peak = max(peak, proc.RSS(pid))
		}
		<-tick.C // the consumer's pace: one chunk a millisecond
	}
	assert.Equal(t, n, got)
	peak = max(peak, proc.RSS(pid))
	t.Logf("worker RSS: %d kB at the start, %d kB at the peak (+%d kB)", start>>10, peak>>10, (int64(peak)-int64(start))>>10)
	assert.Less(t, int64(peak)-int64(start), int64(5<<20), "the worker's memory stays within 5 MB of its start")
}

// TestManyToolCallsInFlight: 16 react executions at once on one worker,
// each calling a Go tool three times; the tool holds every call until 8
// are running together, so calls from many requests are in flight at
// once.
func TestManyToolCallsInFlight(t *testing.T) {
	testutil.VerifyNoChildren(t)
	a, err := port.New(context.Background(), port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(),
		MaxConcurrency: 16, Logger: quiet})
	require.NoError(t, err)
	defer a.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var running, peak, calls atomic.Int64
	together := make(chan struct{})
	var once sync.Once
	c := dspgo.NewClient(a, dspgo.WithTool("echo", "Returns its arguments.", nil, func(ctx context.Context, args json.RawMessage) (any, error) {
		calls.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if n >= 8 {
			once.Do(func() { close(together) })
		}
		select {
		case <-together:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return json.RawMessage(args), nil
	}))
	step := dspgo.ScriptStep{Tool: "echo", Args: map[string]int{"x": 1}}
	require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Script: []dspgo.ScriptStep{step, step, step}}))
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a"), Kind: dspgo.KindReact})
	require.NoError(t, err)

	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := c.ExecuteDetailed(ctx, p.ID, map[string]any{"q": fmt.Sprint(i)})
			if assert.NoError(t, err) {
				assert.Len(t, e.Trajectory, 3)
				for _, s := range e.Trajectory {
					assert.JSONEq(t, `{"x":1}`, string(s.Observation))
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(48), calls.Load())
	assert.GreaterOrEqual(t, peak.Load(), int64(8), "tool calls ran concurrently")
}

// TestRefusedBroadcastIsNotReplayed: a broadcast the worker refuses is
// not kept for the next worker, which gets the last accepted one; a
// worker that dies while it runs a broadcast gets it on restart.
func TestRefusedBroadcastIsNotReplayed(t *testing.T) {
	a := newMemory(t, port.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	model := func() string {
		t.Helper()
		var stats struct{ LM struct{ Model string } }
		require.True(t, wait.Until(ctx, func() bool {
			resp, err := a.Call(ctx, adapter.Request{Command: "get_stats"})
			return err == nil && json.Unmarshal(resp.Result, &stats) == nil
		}))
		return stats.LM.Model
	}
	require.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"good"}`)}))
	err := a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"nonsense"}`)})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	a.Kill()
	assert.Equal(t, "good", model(), "the restarted worker runs the last accepted configuration")
}

// TestStreamFromOpenAICompatibleServer: the native engine asks a local
// OpenAI-compatible server for a stream and hands the answer on as the
// server sends it. The server holds the rest of its reply until the
// consumer has received the first piece, so a worker that waited for the
// whole reply could never finish.
func TestStreamFromOpenAICompatibleServer(t *testing.T) {
	testutil.VerifyNoChildren(t)
	firstPiece := make(chan struct{})
	var asked atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Stream bool `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		asked.Store(body.Stream)
		w.Header().Set("Content-Type", "text/event-stream")
		send := func(text string) {
			b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]string{"content": text}}}})
			fmt.Fprintf(w, "data: %s\n\n", b)
			w.(http.Flusher).Flush()
		}
		send("[[ ## answer ## ]]\n")
		send("Paris is")
		select {
		case <-firstPiece:
		case <-r.Context().Done():
			return
		case <-time.After(30 * time.Second):
			return
		}
		send(" the capital of France.")
		send("\n\n[[ ## completed ## ]]")
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	defer srv.Close()

	a := newPython(t, port.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := dspgo.NewClient(a)
	require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Provider: dspgo.ProviderOpenAI, Model: "fake", BaseURL: srv.URL, Engine: "native"}))
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
	require.NoError(t, err)
	var text string
	var once sync.Once
	var outputs map[string]any
	for part, err := range c.ExecuteStream(ctx, p.ID, map[string]any{"question": "What is the capital of France?"}) {
		require.NoError(t, err)
		if part.Outputs != nil {
			outputs = part.Outputs
			continue
		}
		assert.Equal(t, "answer", part.Field)
		text += part.Delta
		once.Do(func() { close(firstPiece) })
	}
	assert.True(t, asked.Load(), "the worker asked the server for a stream")
	assert.Equal(t, "Paris is the capital of France.", text)
	assert.Equal(t, map[string]any{"answer": "Paris is the capital of France."}, outputs)
}

// TestStreamEnds: a stream whose consumer leaves stops its producer on
// the worker (nothing stays in flight there); a stream whose worker dies
// ends with CodeUnavailable, never hangs.
func TestStreamEnds(t *testing.T) {
	testutil.VerifyNoChildren(t)
	a := newPython(t, port.Options{Diagnostics: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	endless := adapter.Request{Command: "stream_count", Args: json.RawMessage(`{"n":100000000}`)}

	got := 0
	for _, err := range a.Stream(ctx, endless) {
		require.NoError(t, err)
		if got++; got == 5 {
			break
		}
	}
	workerInFlight := func() int {
		resp, err := a.Call(ctx, adapter.Request{Command: "get_stats"})
		require.NoError(t, err)
		var s struct {
			InFlight int `json:"in_flight"`
		}
		require.NoError(t, json.Unmarshal(resp.Result, &s))
		return s.InFlight
	}
	require.True(t, wait.Until(ctx, func() bool { return workerInFlight() == 0 }), "the producer stopped")

	var last error
	n := 0
	for c, err := range a.Stream(ctx, endless) {
		require.NoError(t, last, "nothing after the error")
		if err != nil {
			last = err
			continue
		}
		require.Nil(t, c.Response)
		if n++; n == 3 {
			a.Kill()
		}
	}
	assert.Equal(t, adapter.CodeUnavailable, adapter.CodeOf(last), "%v", last)
}
