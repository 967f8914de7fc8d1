package metrics_test

import (
	"context"
	"encoding/json"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/metrics"
	"github.com/dspgo/dspgo/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

func TestInstrumentedPool(t *testing.T) {
	ctx := t.Context()
	p, err := pool.New(ctx, pool.Options{Size: 2, Logger: testutil.Discard,
		Worker: port.Options{Handler: func() protocol.Handler { return mock.NewHandler(mock.HandlerOptions{}) }}})
	require.NoError(t, err)
	defer p.Close(context.Background())
	reg := prometheus.NewRegistry()
	a, err := metrics.Instrument(p, reg)
	require.NoError(t, err)

	c := dspgo.NewClient(a)
	require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{}))
	prog, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
	require.NoError(t, err)
	for range 3 {
		_, err := c.Execute(ctx, prog.ID, map[string]any{"q": "x"})
		require.NoError(t, err)
	}
	_, err = a.Call(ctx, adapter.Request{Command: "nope"})
	require.Error(t, err)

	text := scrape(t, reg)
	for _, want := range []string{
		`dspgo_calls_total{adapter="pool",code="ok",command="execute_program"} 3`,
		`dspgo_calls_total{adapter="pool",code="unimplemented",command="nope"} 1`,
		`dspgo_calls_total{adapter="pool",code="ok",command="configure_lm"} 1`,
		`dspgo_call_duration_seconds_count{adapter="pool",command="execute_program"} 3`, // no SpecNotFound bounce: one call each
		`dspgo_pool_workers{adapter="pool",state="ready"} 2`,
		`dspgo_pool_broadcasts_total{adapter="pool"} 1`,
		`dspgo_worker_up{adapter="pool",worker="pool-1"} 1`,
		`dspgo_adapter_failures_total{adapter="pool"} 1`,
	} {
		assert.Contains(t, text, want)
	}
	s, ok := adapter.StatsOf(a)
	assert.True(t, ok, "the wrapper keeps the stats")
	assert.EqualValues(t, 5, s.Calls, "create, 3 executes and the failure (the broadcast is not a call)")
}

func TestInstrumentedMock(t *testing.T) {
	m := mock.New(mock.Options{})
	defer m.Close(context.Background())
	reg := prometheus.NewRegistry()
	a, err := metrics.Instrument(m, reg)
	require.NoError(t, err)
	_, err = a.Call(t.Context(), adapter.Request{Command: command.Ping})
	require.NoError(t, err)
	require.NoError(t, a.Broadcast(t.Context(), adapter.Request{Command: command.ConfigureLM, Args: []byte(`{"provider":"dummy"}`)}),
		"an adapter without Broadcast gets a call")
	text := scrape(t, reg)
	assert.Contains(t, text, `dspgo_adapter_calls_total{adapter="mock"} 2`)
	assert.Contains(t, text, `dspgo_calls_total{adapter="mock",code="ok",command="ping"} 1`)
}

// An instrumented adapter still streams, and counts a stream as one call.
func TestInstrumentedStreams(t *testing.T) {
	m := mock.New(mock.Options{})
	defer m.Close(context.Background())
	reg := prometheus.NewRegistry()
	a, err := metrics.Instrument(m, reg)
	require.NoError(t, err)
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
	require.NoError(t, err)
	parts := 0
	for part, err := range c.ExecuteStream(t.Context(), p.ID, map[string]any{"q": "x"}) {
		require.NoError(t, err)
		parts++
		if part.Outputs != nil {
			assert.Equal(t, 4, parts, "three deltas of the answer, then the outputs")
		}
	}
	assert.Contains(t, scrape(t, reg), `dspgo_calls_total{adapter="mock",code="ok",command="execute_program"} 1`)
}

// usageFake answers execute_program with a result whose usage is the
// request's args (absent when the request has none), as a worker calling
// a real LM does, and streams one chunk before that result.
type usageFake struct{}

func (usageFake) Name() string { return "fake" }
func (usageFake) Capabilities() adapter.Capabilities {
	return adapter.Capabilities{Streaming: true}
}
func (usageFake) Close(context.Context) error { return nil }

func (usageFake) Call(_ context.Context, req adapter.Request) (adapter.Response, error) {
	result := `{"outputs":{"a":"x"},"spec_hash":"h"`
	if len(req.Args) > 0 {
		result += `,"usage":` + string(req.Args)
	}
	return adapter.Response{Result: json.RawMessage(result + "}")}, nil
}

func (f usageFake) Stream(ctx context.Context, req adapter.Request) iter.Seq2[adapter.Chunk, error] {
	return func(yield func(adapter.Chunk, error) bool) {
		if !yield(adapter.Chunk{Data: json.RawMessage(`{"field":"a","delta":"x"}`)}, nil) {
			return
		}
		resp, err := f.Call(ctx, req)
		yield(adapter.Chunk{Seq: 1, Response: &resp}, err)
	}
}

// Tokens are counted by kind from execute results, called and streamed,
// that carry usage; other results and commands add nothing.
func TestInstrumentedCountsTokens(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := metrics.Instrument(usageFake{}, reg)
	require.NoError(t, err)
	text := scrape(t, reg)
	assert.Contains(t, text, `dspgo_lm_tokens_total{adapter="fake",kind="prompt"} 0`, "both kinds are there from the start")
	assert.Contains(t, text, `dspgo_lm_tokens_total{adapter="fake",kind="completion"} 0`)

	usage := json.RawMessage(`{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120}`)
	exec := adapter.Request{Command: command.ExecuteProgram, Args: usage}
	for range 2 {
		_, err := a.Call(t.Context(), exec)
		require.NoError(t, err)
	}
	for _, err := range a.Stream(t.Context(), exec) {
		require.NoError(t, err)
	}
	_, err = a.Call(t.Context(), adapter.Request{Command: command.ExecuteProgram}) // no usage: the dummy LM
	require.NoError(t, err)
	_, err = a.Call(t.Context(), adapter.Request{Command: "echo", Args: usage}) // not an execution
	require.NoError(t, err)

	text = scrape(t, reg)
	assert.Contains(t, text, `dspgo_lm_tokens_total{adapter="fake",kind="prompt"} 300`)
	assert.Contains(t, text, `dspgo_lm_tokens_total{adapter="fake",kind="completion"} 60`)
	assert.Contains(t, text, `dspgo_calls_total{adapter="fake",code="ok",command="execute_program"} 4`)
}

// The dummy LM reports no usage: the counters stay at zero.
func TestDummyCountsNoTokens(t *testing.T) {
	m := mock.New(mock.Options{})
	defer m.Close(context.Background())
	reg := prometheus.NewRegistry()
	a, err := metrics.Instrument(m, reg)
	require.NoError(t, err)
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
	require.NoError(t, err)
	_, err = c.Execute(t.Context(), p.ID, map[string]any{"q": "x"})
	require.NoError(t, err)
	assert.Contains(t, scrape(t, reg), `dspgo_lm_tokens_total{adapter="mock",kind="prompt"} 0`)
}
