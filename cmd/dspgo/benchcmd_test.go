package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBenchCompareTwoReports(t *testing.T) {
	dir := filepath.Join("internal", "bench", "testdata")
	r := cli(t, "", nil, "bench", "--compare", filepath.Join(dir, "old.json"), "--with", filepath.Join(dir, "new.json"))
	assert.Equal(t, 0, r.status, r.stderr)
	assert.Regexp(t, `(?m)^ping, port, 1 in flight\s+calls/s\s+17000 \[16500–17500\]\s+23400 \[23000–24000\]\s+\+37\.6% better\s+0\.708 → 0\.975\s+NO → yes$`, r.stdout)
	assert.Contains(t, r.stdout, "only in the old run:\n  a workload since removed\n")
	assert.Contains(t, r.stdout, "only in the new run:\n")
}

func TestBenchCompareUsage(t *testing.T) {
	r := cli(t, "", nil, "bench", "--with", "new.json")
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, "--with needs --compare")
	r = cli(t, "", nil, "bench", "--compare", filepath.Join(t.TempDir(), "missing.json"), "--with", "new.json")
	assert.Equal(t, 1, r.status)
	assert.Contains(t, r.stderr, "missing.json")
}

func TestBenchRefusesANonPositiveDurationRunsOrInFlight(t *testing.T) {
	for _, args := range [][]string{
		{"--adapter", "mock", "--duration", "0s"},
		{"--adapter", "mock", "--duration", "-1s"},
		{"--suite", "--only", "none", "--duration", "-1s"},
		{"--suite", "--only", "none", "--runs", "0"},
		{"--adapter", "mock", "--in-flight", "0"},
		{"--adapter", "mock", "--in-flight", "-3"},
	} {
		r := cli(t, "", nil, append([]string{"bench"}, args...)...)
		assert.Equal(t, 2, r.status, "%v: %s", args, r.stderr)
		assert.Regexp(t, `--(duration|runs|in-flight) \S+ is not a`, r.stderr, "%v", args)
		assert.NotContains(t, r.stderr, "pool.worker_concurrency", "%v: the flag is named, not the key it sets", args)
		assert.Empty(t, r.stdout, "%v: nothing measured", args)
	}
}

// TestBenchSaysWhenCallsFail: failed calls are not a measurement of the
// backend: the first error is on stderr and the exit status is 1.
func TestBenchSaysWhenCallsFail(t *testing.T) {
	r := cli(t, "", nil, "bench", "--adapter", "pool", "--workers", "1", "--op", "execute", "--duration", "200ms",
		"--lm-provider", "openai", "--lm-model", "m", "--lm-base-url", "http://127.0.0.1:9/v1", "--lm-engine", "native")
	assert.Equal(t, 1, r.status, r.stderr)
	assert.Contains(t, r.stdout, "pool workers=1 execute")
	assert.Regexp(t, `dspgo bench: pool workers=1 execute: ([0-9]+) of ([0-9]+) calls failed; the first: .*unreachable`, r.stderr)
}

// TestBenchSuiteFlagsNeedTheSuite: --runs, --only and --json without
// --suite would be ignored (a report asked for and never written), so
// they are refused before anything is measured.
func TestBenchSuiteFlagsNeedTheSuite(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report.json")
	for _, args := range [][]string{
		{"--runs", "9"},
		{"--only", "ping"},
		{"--json", report},
	} {
		r := cli(t, "", nil, append([]string{"bench", "--adapter", "mock", "--duration", "10ms"}, args...)...)
		assert.Equal(t, 2, r.status, "%v: %s", args, r.stderr)
		assert.Contains(t, r.stderr, args[0]+" works only with --suite", "%v", args)
		assert.Empty(t, r.stdout, "%v: nothing measured", args)
	}
	assert.NoFileExists(t, report)
}
