package bench

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Report is a whole run of the suite, as bench-results.json holds it.
type Report struct {
	// Machine says where, when and from which commit it was measured.
	Machine Machine `json:"machine"`
	// Workers is the pool size of the pool workloads.
	Workers int `json:"workers"`
	// Runs is how many times each figure was measured.
	Runs int `json:"runs"`
	// Duration is the length of one throughput run.
	Duration string `json:"run_duration"`
	// Rows are the workloads' results, in the suite's order.
	Rows []Row `json:"rows"`
}

// WriteReport writes the report as a table: the machine, then one line per
// row, then what limits each missed target and each row's notes.
func WriteReport(w io.Writer, rep *Report) error {
	m := rep.Machine
	fmt.Fprintf(w, "dspgo bench: %s, Python %s, %s (%s), %d CPUs (%s), GOMAXPROCS %d, load average %s, %s\n",
		m.GoVersion, m.PythonVersion, m.OS, m.Kernel, m.CPUs, m.CPUModel, m.GOMAXPROCS, loads(m.LoadAverage), describeRun(rep))
	fmt.Fprintf(w, "pool of %d, %d runs of %s (median [min–max])\n\n", rep.Workers, rep.Runs, rep.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tunit\traw\tdspgo\tratio\ttarget\tmet")
	for _, r := range rep.Rows {
		raw := "—"
		if r.Raw != nil {
			raw = fig(*r.Raw)
		}
		target := r.Target
		if target == "" {
			target = "—"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.3f\t%s\t%s\n", r.Workload, r.Unit, raw, fig(r.DSPGo), r.Ratio, target, verdict(r))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rep.Rows {
		if r.Note != "" {
			fmt.Fprintf(w, "\n%s: %s\n", r.Workload, r.Note)
		}
	}
	for _, r := range rep.Rows {
		if r.Target != "" && !r.Met {
			limit := r.Limit
			if limit == "" {
				limit = "not analysed yet: profile it (docs/performance.md says how)"
			}
			fmt.Fprintf(w, "\nmissed: %s (%s): %s\n", r.Workload, r.Target, limit)
		}
	}
	return nil
}

// loads prints load averages.
func loads(xs []float64) string {
	if len(xs) == 0 {
		return "unknown"
	}
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(s, " ")
}

// fig prints a figure as "median [min–max]", or one number when they are
// equal.
func fig(f Figure) string {
	if f.Min == f.Max {
		return num(f.Median)
	}
	return fmt.Sprintf("%s [%s–%s]", num(f.Median), num(f.Min), num(f.Max))
}

// num prints a number with the digits that matter at its size.
func num(x float64) string {
	switch {
	case x == math.Trunc(x) && math.Abs(x) < 1e15:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case math.Abs(x) >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case math.Abs(x) >= 1:
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'f', 3, 64)
}
