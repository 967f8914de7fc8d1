package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/conformance"
	"github.com/dspgo/dspgo/internal/testutil"
)

// TestConformanceOnATerminal: each case shows a status line while it
// runs, which its result line replaces as it ends, in table order.
func TestConformanceOnATerminal(t *testing.T) {
	testutil.VerifyNoChildren(t)
	var out, errOut bytes.Buffer
	no, yes := false, true
	status := run(context.Background(), []string{"conformance", "--adapter", "mock"},
		env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, stdinIsTerminal: &no, stdoutIsTerminal: &yes,
			stderrIsTerminal: &no, environ: func() []string { return nil }})
	require.Equal(t, 0, status, out.String()+errOut.String())
	cases := conformance.Cases()
	// RUN ping 1/n … PASS ping, then RUN of the next case: each result is
	// printed before the next case starts.
	var want strings.Builder
	for i, c := range cases {
		fmt.Fprintf(&want, `\r\x1b\[KRUN   %s\s+%d/%d  \d+\.\ds(\r\x1b\[KRUN   [^\r]*)*\r\x1b\[KPASS  %s\s+\d+(\.\d+)?[µm]?s\n`,
			regexp.QuoteMeta(c.Name), i+1, len(cases), regexp.QuoteMeta(c.Name))
	}
	assert.Regexp(t, "^== mock\n"+want.String()+fmt.Sprintf("%d passed, 0 failed\n$", len(cases)), out.String())
	assert.Empty(t, errOut.String())
}

// TestConformancePiped: without a terminal, lines only; a passing run on
// adapters whose cases kill workers on purpose shows no log.
func TestConformancePiped(t *testing.T) {
	r := cli(t, "", nil, "conformance", "--adapter", "port", "--log-level", "info")
	require.Equal(t, 0, r.status, r.stdout+r.stderr)
	assert.NotContains(t, r.stdout, "\r")
	assert.NotContains(t, r.stdout, "RUN")
	assert.Regexp(t, `(?m)^PASS  crash_recovery\s+\d`, r.stdout)
	assert.NotContains(t, r.stdout+r.stderr, "level=", "no log of a passing case: not the worker's start, not its deliberate crash")
	assert.Empty(t, r.stderr)
}

// TestConformanceFailureShowsItsLogs: a failing case prints its adapter's
// logs under its FAIL line, and only its own.
func TestConformanceFailureShowsItsLogs(t *testing.T) {
	// Frames of 64 KiB: the 1 MiB payload case fails.
	r := cli(t, "", []string{"DSPGO_PORT__MAX_FRAME_BYTES=65536"}, "conformance", "--adapter", "port", "--log-level", "info")
	require.Equal(t, 1, r.status, r.stdout+r.stderr)
	m := regexp.MustCompile(`(?m)^FAIL  payload_1mib .*\n((?:      log: .*\n)+)`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	assert.Contains(t, m[1], `msg="worker started"`)
	assert.Equal(t, 1, strings.Count(m[1], `msg="worker started"`), "the logs of that case's worker only")
	assert.NotRegexp(t, `(?m)^PASS .*\n      log:`, r.stdout, "no logs under a passing case")
	assert.Empty(t, r.stderr)
}

// TestConformanceCannotOpen: a backend that cannot be opened is one line
// saying why and what to do, on stderr, and exit status 1; the adapter
// keeps the source that chose it.
func TestConformanceCannotOpen(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--adapter", "remote", "--remote-url", "nats://" + freeAddr(t)},
			[]string{`no worker host reachable at nats://`, `adapter "remote" set by flag:--adapter`, "start a worker host with: dspgo workers --embedded-nats"}},
		// The URL's password is not shown.
		{[]string{"--adapter", "remote", "--remote-url", "nats://alice:S3CR3T@" + freeAddr(t)},
			[]string{`no worker host reachable at nats://***@127.0.0.1:`, "start a worker host with: dspgo workers --embedded-nats"}},
		{[]string{"--adapter", "port", "--python", "no-such-python"},
			[]string{`cannot open adapter "port"`, "was not found on PATH", "--adapter mock needs none"}},
	} {
		r := cli(t, "", nil, append([]string{"conformance"}, tc.args...)...)
		assert.Equal(t, 1, r.status)
		assert.Empty(t, r.stdout)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
		assert.NotContains(t, r.stderr, "3CR3")
		assert.LessOrEqual(t, strings.Count(r.stderr, "start a worker host"), 1, "what to do, once: %s", r.stderr)
		for _, w := range tc.want {
			assert.Contains(t, r.stderr, w)
		}
	}
}

// TestUnknownAdapterListsNamesOnce: every command refusing an unknown
// adapter says where the name came from and lists the known ones once.
func TestUnknownAdapterListsNamesOnce(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--adapter", "nope", "--signature", "q -> a", "--input", "q=x"},
		{"conformance", "--adapter", "nope"},
		{"config", "explain", "--adapter", "nope"},
		{"bench", "--adapter", "nope"},
	} {
		r := cli(t, "", nil, args...)
		assert.Equal(t, 2, r.status, args)
		assert.Equal(t, `dspgo: adapter "nope" (set by flag:--adapter) is not registered; known adapters: memory, mock, pool, port, remote`+"\n",
			r.stderr, args)
	}
	r := cli(t, "", []string{"DSPGO_ADAPTER=nope"}, "conformance")
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, `adapter "nope" (set by env:DSPGO_ADAPTER) is not registered`)
}
