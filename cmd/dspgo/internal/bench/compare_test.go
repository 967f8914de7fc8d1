package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readReport parses the report in testdata/name.
func readReport(t *testing.T, name string) *Report {
	t.Helper()
	path := filepath.Join("testdata", name)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	rep, err := ParseReport(path, data)
	require.NoError(t, err)
	return rep
}

func TestWriteComparison(t *testing.T) {
	old, cur := readReport(t, "old.json"), readReport(t, "new.json")
	var out bytes.Buffer
	require.NoError(t, WriteComparison(&out, old, cur))
	lines := strings.Split(out.String(), "\n")

	assert.Equal(t, "dspgo bench: 2026-12-02 11:30 UTC, commit 222222222222 (modified) against 2026-12-01 10:00 UTC, commit 111111111111", lines[0])
	assert.Equal(t, "machines differ: load average (1 min) 4.5 → 1.25", lines[1], "only what differs, date and commit aside")
	row := func(workload string) []string {
		for _, l := range lines {
			if strings.HasPrefix(l, workload+"  ") {
				return strings.Fields(strings.TrimPrefix(l, workload))
			}
		}
		t.Fatalf("no row %q in:\n%s", workload, out.String())
		return nil
	}
	// unit, old median [min–max], new median [min–max], change, ratio old → new, met old → new
	assert.Equal(t, []string{"calls/s", "17000", "[16500–17500]", "23400", "[23000–24000]", "+37.6%", "better", "0.708", "→", "0.975", "NO", "→", "yes"},
		row("ping, port, 1 in flight"), "a higher rate beyond both runs' spread is better")
	assert.Equal(t, []string{"µs", "25", "[24–26]", "18", "[17–19]", "-28.0%", "better", "1.667", "→", "1.200", "NO", "→", "yes"},
		row("host CPU per ping, port, 1 in flight"), "a lower cost beyond the spread is better")
	assert.Equal(t, []string{"calls/s", "15500", "[15200–16100]", "15800", "[15000–16300]", "+1.9%", "0.923", "→", "0.940", "yes", "→", "yes"},
		row("echo 100 B, port, 1 in flight"), "a change within the spread is not called better or worse")
	assert.Contains(t, out.String(), "\nonly in the old run:\n  a workload since removed\n")
	assert.Contains(t, out.String(), "\nonly in the new run:\n  10,000 in flight, pool of 2, dummy LM delays 10s: errors\n")
}

func TestChangeWorse(t *testing.T) {
	o := Row{Unit: "calls/s", DSPGo: Figure{Median: 100, Min: 95, Max: 105}}
	r := Row{Unit: "calls/s", DSPGo: Figure{Median: 80, Min: 78, Max: 82}}
	assert.Equal(t, "-20.0% worse", change(o, r))
	o.Unit, r.Unit = "MB", "MB"
	assert.Equal(t, "-20.0% better", change(o, r), "less memory is better")
	assert.Equal(t, "—", change(Row{}, r), "no change from a zero median")
	one := Row{Unit: "MB", DSPGo: Figure{Median: 5, Min: 5, Max: 5}}
	assert.Equal(t, "-20.0%", change(Row{Unit: "MB", DSPGo: Figure{Median: 6.25, Min: 6.25, Max: 6.25}}, one),
		"one figure per run says nothing of the noise: no verdict")
}

func TestParseReportRefusesOtherFiles(t *testing.T) {
	_, err := ParseReport("x.json", []byte("[1, 2]"))
	assert.ErrorContains(t, err, "x.json: not a bench report")
	// Any JSON object decodes into a Report: one without named workloads
	// (another program's JSON, null) is no report, not an empty one.
	for _, data := range []string{"{}", "null", `{"rows":null}`, `{"rows":[{}]}`, `{"adapter":"mock"}`} {
		_, err := ParseReport("x.json", []byte(data))
		assert.ErrorContains(t, err, "x.json: not a bench report", data)
	}
	rep, err := ParseReport("x.json", []byte(`{"rows":[{"workload":"ping, port, 1 in flight","unit":"calls/s"}]}`))
	require.NoError(t, err)
	assert.Len(t, rep.Rows, 1)
}
