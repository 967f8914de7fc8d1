package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// ParseReport decodes data, a report written as JSON (bench-results.json)
// read from the file at path, which errors name.
func ParseReport(path string, data []byte) (*Report, error) {
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("%s: not a bench report: %w", path, err)
	}
	// Any JSON object decodes: a report is one with workloads, each named.
	if len(rep.Rows) == 0 {
		return nil, fmt.Errorf("%s: not a bench report: it has no rows (dspgo bench --suite --json writes one per workload)", path)
	}
	for i, r := range rep.Rows {
		if r.Workload == "" || r.Unit == "" {
			return nil, fmt.Errorf("%s: not a bench report: row %d has no workload or no unit", path, i+1)
		}
	}
	return &rep, nil
}

// WriteComparison writes each row of cur against the row of the same
// workload in old: both medians, the change of dspgo's median in percent
// (marked "better" or "worse" when both runs' [min–max] ranges are wider
// than a point and do not overlap, so that a change within the noise is
// not taken for an effect),
// both ratios and both verdicts. Rows found in one report only are listed
// as such, and the machines' differences are printed first.
func WriteComparison(w io.Writer, old, cur *Report) error {
	fmt.Fprintf(w, "dspgo bench: %s against %s\n", describeRun(cur), describeRun(old))
	if diffs := machineDiffs(old.Machine, cur.Machine); len(diffs) > 0 {
		fmt.Fprintf(w, "machines differ: %s\n", strings.Join(diffs, "; "))
	} else {
		fmt.Fprintln(w, "same machine description")
	}
	fmt.Fprintln(w)
	oldRows := map[string]Row{}
	for _, r := range old.Rows {
		oldRows[r.Workload] = r
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tunit\told\tnew\tchange\tratio\tmet")
	var onlyNew []string
	seen := map[string]bool{}
	for _, r := range cur.Rows {
		o, ok := oldRows[r.Workload]
		if !ok {
			onlyNew = append(onlyNew, r.Workload)
			continue
		}
		seen[r.Workload] = true
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.3f → %.3f\t%s → %s\n", r.Workload, r.Unit, fig(o.DSPGo), fig(r.DSPGo),
			change(o, r), o.Ratio, r.Ratio, verdict(o), verdict(r))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var onlyOld []string
	for _, r := range old.Rows {
		if !seen[r.Workload] {
			onlyOld = append(onlyOld, r.Workload)
		}
	}
	for _, list := range []struct {
		side  string
		names []string
	}{{"old", onlyOld}, {"new", onlyNew}} {
		if len(list.names) > 0 {
			fmt.Fprintf(w, "\nonly in the %s run:\n", list.side)
			for _, n := range list.names {
				fmt.Fprintf(w, "  %s\n", n)
			}
		}
	}
	return nil
}

// describeRun names a run by its date and commit.
func describeRun(r *Report) string {
	s := r.Machine.Date.Format("2006-01-02 15:04 UTC")
	if r.Machine.Commit != "" {
		c := r.Machine.Commit[:min(len(r.Machine.Commit), 12)]
		if r.Machine.Modified {
			c += " (modified)"
		}
		s += ", commit " + c
	}
	return s
}

// machineDiffs lists the fields of the machine descriptions that differ
// (the date and commit aside, which always do).
func machineDiffs(a, b Machine) []string {
	var out []string
	add := func(name string, x, y any) {
		if fmt.Sprint(x) != fmt.Sprint(y) {
			out = append(out, fmt.Sprintf("%s %v → %v", name, x, y))
		}
	}
	add("CPU", a.CPUModel, b.CPUModel)
	add("CPUs", a.CPUs, b.CPUs)
	add("GOMAXPROCS", a.GOMAXPROCS, b.GOMAXPROCS)
	add("Go", a.GoVersion, b.GoVersion)
	add("Python", a.PythonVersion, b.PythonVersion)
	add("OS", a.OS, b.OS)
	add("kernel", a.Kernel, b.Kernel)
	if len(a.LoadAverage) > 0 && len(b.LoadAverage) > 0 {
		add("load average (1 min)", a.LoadAverage[0], b.LoadAverage[0])
	}
	return out
}

// change is the relative change of dspgo's median, with "better" or
// "worse" when both runs have a range (min below max) and the ranges do
// not overlap.
func change(o, r Row) string {
	if o.DSPGo.Median == 0 {
		return "—"
	}
	pct := (r.DSPGo.Median - o.DSPGo.Median) / o.DSPGo.Median * 100
	s := fmt.Sprintf("%+.1f%%", pct)
	spread := o.DSPGo.Min < o.DSPGo.Max && r.DSPGo.Min < r.DSPGo.Max // one run, or one figure, tells nothing of the noise
	if spread && (r.DSPGo.Min > o.DSPGo.Max || r.DSPGo.Max < o.DSPGo.Min) {
		up := r.DSPGo.Median > o.DSPGo.Median
		if up == higherIsBetter(r.Unit) {
			s += " better"
		} else {
			s += " worse"
		}
	}
	return s
}

// higherIsBetter tells rates (calls/s, chunks/s) from costs (time, memory,
// errors).
func higherIsBetter(unit string) bool {
	return strings.HasSuffix(unit, "/s")
}

// verdict is a row's met column.
func verdict(r Row) string {
	switch {
	case r.Target == "":
		return "—"
	case r.Met:
		return "yes"
	}
	return "NO"
}
