package conformance_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/conformance"
)

// plain is a mock seen only as an adapter.Adapter: no Stream, no Stats,
// whatever its Capabilities say.
type plain struct {
	m    *mock.Adapter
	caps func(adapter.Capabilities) adapter.Capabilities
}

func (p plain) Name() string { return "plain" }
func (p plain) Call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	return p.m.Call(ctx, req)
}
func (p plain) Capabilities() adapter.Capabilities { return p.caps(p.m.Capabilities()) }
func (p plain) Close(ctx context.Context) error    { return p.m.Close(ctx) }

// harnesses are the helper runs of TestRunSaysWhatItSkipped, by name.
var harnesses = map[string]conformance.Harness{
	// Declares streaming and broadcast, implements neither.
	"liar": {Name: "liar", New: newPlain(func(c adapter.Capabilities) adapter.Capabilities {
		c.Streaming, c.Broadcast = true, true
		return c
	})},
	// Says it does not stream, and its harness does not say it knows.
	"honest": {Name: "honest", New: newPlain(noStreaming)},
	// The same, its harness accepting the skips.
	"accepted": {Name: "accepted", New: newPlain(noStreaming),
		Lacks: []conformance.Need{conformance.NeedStreaming, conformance.NeedStats, conformance.NeedFaults}},
	// A harness accepting a skip that does not happen.
	"stale": {Name: "stale", New: newPlain(noStreaming),
		Lacks: []conformance.Need{conformance.NeedStreaming, conformance.NeedStats, conformance.NeedFaults, conformance.NeedTools}},
}

func noStreaming(c adapter.Capabilities) adapter.Capabilities {
	c.Streaming = false
	return c
}

func newPlain(caps func(adapter.Capabilities) adapter.Capabilities) func(context.Context) (adapter.Adapter, error) {
	return func(context.Context) (adapter.Adapter, error) {
		return plain{m: mock.New(mock.Options{}), caps: caps}, nil
	}
}

const helperEnv = "CONFORMANCE_TEST_HELPER"

// TestHelperRun is TestRunSaysWhatItSkipped's go test run of one harness.
func TestHelperRun(t *testing.T) {
	name := os.Getenv(helperEnv)
	if name == "" {
		t.Skip("a helper of TestRunSaysWhatItSkipped")
	}
	conformance.Run(t, harnesses[name])
}

// TestRunSaysWhatItSkipped runs Run as go test does without -v, in a
// child test process: a declared capability that is not implemented
// fails, skips that the harness does not accept fail with how many cases
// and why, accepted skips pass, and a stale acceptance fails.
func TestRunSaysWhatItSkipped(t *testing.T) {
	run := func(t *testing.T, name string) (string, bool) {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperRun$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+name)
		out, err := cmd.CombinedOutput()
		if err != nil {
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "%s", out)
		}
		return string(out), err == nil
	}
	t.Run("liar", func(t *testing.T) {
		t.Parallel()
		out, ok := run(t, "liar")
		assert.False(t, ok, out)
		assert.Contains(t, out, "--- FAIL: TestHelperRun/TestCases/capabilities_declared")
		assert.Contains(t, out, "declares Capabilities.Streaming but is not an adapter.Streamer")
		assert.Contains(t, out, "declares Capabilities.Broadcast but is not an adapter.Broadcaster")
		assert.Contains(t, out, "stream_chunks skipped: the adapter declares Capabilities.Streaming but is not an adapter.Streamer")
	})
	t.Run("honest", func(t *testing.T) {
		t.Parallel()
		out, ok := run(t, "honest")
		assert.False(t, ok, out)
		assert.NotContains(t, out, "--- FAIL: TestHelperRun/TestCases/", "every case passes or skips")
		assert.Regexp(t, `conformance honest: \d+ of `+strconv.Itoa(len(conformance.Cases()))+` cases skipped, and go test hides skips without -v:`, out)
		assert.Contains(t, out, "6 skipped for want of streaming (stream_chunks, stream_cancel, stream_deadline, stream_producer_error, stream_slow_consumer, streams_32_concurrent): the adapter does not stream (Capabilities.Streaming, adapter.Streamer); implement adapter.Streamer and declare Capabilities.Streaming, or list conformance.NeedStreaming in Harness.Lacks to accept these skips")
		assert.Contains(t, out, "for want of stats (")
		assert.Contains(t, out, "1 skipped for want of faults (crash_recovery): the harness injects no crash (Harness.Faults.Crash)")
	})
	t.Run("accepted", func(t *testing.T) {
		t.Parallel()
		out, ok := run(t, "accepted")
		assert.True(t, ok, out)
		assert.Equal(t, "PASS", strings.TrimSpace(out))
	})
	t.Run("stale", func(t *testing.T) {
		t.Parallel()
		out, ok := run(t, "stale")
		assert.False(t, ok, out)
		assert.Contains(t, out, `Harness.Lacks lists "tools", but the adapter and harness have it: remove it`)
	})
}

// TestRunAllReportsALie: the CLI's runner fails the lie too, and names
// the skips.
func TestRunAllReportsALie(t *testing.T) {
	h := harnesses["liar"]
	outcomes := map[string]conformance.Result{}
	for _, r := range conformance.RunAll(t.Context(), h, nil) {
		outcomes[r.Case] = r
	}
	require.Len(t, outcomes, len(conformance.Cases()))
	lie := outcomes["capabilities_declared"]
	assert.Equal(t, conformance.Failed, lie.Outcome)
	assert.Contains(t, lie.Reason, "declares Capabilities.Streaming but is not an adapter.Streamer")
	assert.Equal(t, conformance.Skipped, outcomes["stream_chunks"].Outcome)
	assert.Equal(t, conformance.Passed, outcomes["ping"].Outcome)
}
