package bench

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteReport(t *testing.T) {
	rep := &Report{
		Machine: Machine{CPUModel: "Example CPU", CPUs: 2, GOMAXPROCS: 2, GoVersion: "go1.26.8", PythonVersion: "3.11.7",
			OS: "linux/amd64", Kernel: "6.1.0", LoadAverage: []float64{1.5, 1, 0.5}, Commit: "abcdef0123456789",
			Date: time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)},
		Workers: 2, Runs: 3, Duration: "1s",
		Rows: []Row{
			{Workload: "met", Unit: "calls/s", Raw: &Figure{100, 90, 110}, DSPGo: Figure{95, 94, 96}, Ratio: 0.95, Target: "≥ 0.90 of raw", Met: true},
			{Workload: "slow", Unit: "ms", DSPGo: Figure{12, 12, 12}, Ratio: 12, Target: "≤ 10 ms", Limit: "the GIL", Note: "p99 12 ms"},
			{Workload: "untargeted", Unit: "calls/s", DSPGo: Figure{0.5, 0.25, 1234.5}, Ratio: 0.5, Met: true},
		},
	}
	var out bytes.Buffer
	require.NoError(t, WriteReport(&out, rep))
	s := out.String()
	assert.Contains(t, s, "go1.26.8, Python 3.11.7, linux/amd64 (6.1.0), 2 CPUs (Example CPU), GOMAXPROCS 2, load average 1.50 1.00 0.50, 2026-12-06 15:00 UTC, commit abcdef012345\n")
	assert.Regexp(t, `met\s+calls/s\s+100 \[90–110\]\s+95 \[94–96\]\s+0\.950\s+≥ 0\.90 of raw\s+yes\n`, s)
	assert.Regexp(t, `slow\s+ms\s+—\s+12\s+12\.000\s+≤ 10 ms\s+NO\n`, s)
	assert.Regexp(t, `untargeted\s+calls/s\s+—\s+0\.500 \[0\.250–1234\]\s+0\.500\s+—\s+—\n`, s, "a row without a target says so")
	assert.Contains(t, s, "\nslow: p99 12 ms\n")
	assert.Contains(t, s, "\nmissed: slow (≤ 10 ms): the GIL\n")
	assert.NotContains(t, s, "missed: untargeted")
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 4096: "4,096", 10000: "10,000", 1234567: "1,234,567"} {
		assert.Equal(t, want, thousands(n))
	}
}
