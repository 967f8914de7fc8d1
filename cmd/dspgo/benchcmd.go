package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/cmd/dspgo/internal/bench"
	"github.com/dspgo/dspgo/command"
)

func (a *app) benchCmd() *cobra.Command {
	var (
		op, workers, format, jsonPath, only   string
		compare, with, cpuProfile, memProfile string
		inFlight, runs                        int
		duration                              time.Duration
		suite                                 bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ping or execute throughput and latency over a sweep of worker counts",
		Long: `Measure throughput and latency (p50, p90, p99, max) of ping or execute on the
configured adapter, for each worker count of --workers (pool.size; other
adapters run once). --in-flight is the calls kept in flight per worker.
execute runs the configured LM (lm.*), the offline dummy by default: with
a real model it measures that model too, and pays for its calls. When
calls fail, stderr says how many and the first error, and the exit status
is 1: their figures measure the failure, not the backend.

--suite runs every workload of docs/performance.md against the raw
baseline and checks the targets; --compare OLD.json runs it too and then
prints each row's change against that earlier report (--with NEW.json
compares two reports without running anything).`,
		Example: "  dspgo bench --op execute --workers 1,2,4 --duration 2s\n  dspgo bench --adapter mock --format json\n" +
			"  dspgo bench --suite --json bench-results.json\n  dspgo bench --compare old.json --only ping --cpuprofile cpu.prof",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if with != "" {
				if compare == "" {
					return usagef("give the earlier report with --compare", "--with needs --compare")
				}
				return a.benchCompare(compare, with)
			}
			if !suite && compare == "" {
				// The suite's flags would be ignored without it: a report
				// asked for with --json would silently not be written.
				for _, name := range []string{"runs", "only", "json"} {
					if cmd.Flags().Changed(name) {
						return usagef("add --suite, or leave --"+name+" out", "--%s works only with --suite (or --compare)", name)
					}
				}
			}
			if duration <= 0 {
				return usagef("give a positive time, such as --duration 2s", "--duration %v is not a measuring time", duration)
			}
			if runs < 1 {
				return usagef("give at least one run, such as --runs 3", "--runs %d is not a number of runs", runs)
			}
			if inFlight < 1 {
				// Said of the flag: pool.worker_concurrency, which it
				// sets, is no key the user wrote.
				return usagef("give at least one call, such as --in-flight 4", "--in-flight %d is not a number of calls", inFlight)
			}
			stop, err := startProfiles(cpuProfile)
			if err != nil {
				return err
			}
			var atPeak func() // the heap profile at the end of each window of thousands of calls in flight
			peakWritten := false
			if memProfile != "" {
				atPeak = func() {
					if err := writeHeapProfile(memProfile); err != nil {
						fmt.Fprintf(a.stderr, "dspgo bench: heap profile: %v\n", err)
					}
					peakWritten = true
				}
			}
			defer func() {
				if perr := stop(); perr != nil && err == nil {
					err = perr
				}
				if !peakWritten {
					if perr := writeHeapProfile(memProfile); perr != nil && err == nil {
						err = perr
					}
				}
			}()
			if suite || compare != "" {
				return a.benchSuite(cmd.Context(), runs, duration, only, jsonPath, compare, atPeak)
			}
			if op != "ping" && op != "execute" {
				return usagef("use --op ping or --op execute", "unknown operation %q", op)
			}
			if format != "table" && format != "json" {
				return usagef("use --format table or json", "unknown format %q", format)
			}
			counts, err := parseCounts(workers)
			if err != nil {
				return err
			}
			cfg, err := a.load(nil)
			if err != nil {
				return err
			}
			if _, res, err := a.registry().Resolve(cfg); err != nil {
				return unknownAdapter(err)
			} else if res.Name != "pool" {
				counts = counts[:1] // only a pool has a worker count to sweep
			}
			var results []bench.Result
			for _, n := range counts {
				r, err := a.benchOne(cmd.Context(), n, op, inFlight, duration)
				if err != nil {
					return err
				}
				results = append(results, r)
			}
			if format == "json" {
				b, _ := json.MarshalIndent(results, "", "  ")
				fmt.Fprintln(a.stdout, string(b))
			} else if err := bench.WriteTable(a.stdout, results); err != nil {
				return err
			}
			return a.benchFailures(results)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&op, "op", "ping", "operation: ping or execute")
	fl.StringVar(&workers, "workers", "1,2", "worker counts to sweep (pool), comma-separated")
	fl.IntVar(&inFlight, "in-flight", 4, "calls in flight per worker")
	fl.DurationVar(&duration, "duration", 2*time.Second, "measuring time per worker count")
	fl.StringVar(&format, "format", "table", "output: table or json")
	fl.BoolVar(&suite, "suite", false, "run every workload against the raw baseline and check the targets (docs/performance.md)")
	fl.IntVar(&runs, "runs", 3, "with --suite: runs per figure (median, min, max)")
	fl.StringVar(&only, "only", "", "with --suite: only the workloads whose name contains this")
	fl.StringVar(&jsonPath, "json", "", "with --suite: also write the report as JSON to this file")
	fl.StringVar(&compare, "compare", "", "run the suite, then print each row's change against this earlier JSON report")
	fl.StringVar(&with, "with", "", "with --compare: compare this JSON report instead of running the suite")
	fl.StringVar(&cpuProfile, "cpuprofile", "", "write the host's CPU profile of the run to this file (go tool pprof)")
	fl.StringVar(&memProfile, "memprofile", "", "write the host's heap profile to this file at the end of the run, and with --suite at the end of each window of thousands of calls in flight (go tool pprof -sample_index=inuse_space or alloc_objects)")
	return cmd
}

// benchFailures says on stderr, for each result with failed calls, how
// many failed and the first error (figures of failed calls measure the
// failure, not the backend), and returns errFailed when any failed.
func (a *app) benchFailures(results []bench.Result) error {
	failed := false
	for _, r := range results {
		if r.Errors > 0 {
			failed = true
			fmt.Fprintf(a.stderr, "dspgo bench: %s: %d of %d calls failed; the first: %s\n", r.Name, r.Errors, r.Calls, strings.Join(strings.Fields(r.FirstError), " "))
		}
	}
	if failed {
		return errFailed
	}
	return nil
}

// benchSuite runs bench.Suite and prints its table, and its comparison
// with the report at comparePath when that is not empty; atPeak is
// Suite.AtPeak.
func (a *app) benchSuite(ctx context.Context, runs int, d time.Duration, only, jsonPath, comparePath string, atPeak func()) error {
	var old *bench.Report
	if comparePath != "" {
		var err error
		if old, err = readReport("--compare", comparePath); err != nil {
			return err
		}
	}
	cfg, err := a.load(nil)
	if err != nil {
		return err
	}
	s := bench.Suite{Python: cfg.Python.Interpreter, WorkerDir: cfg.Python.WorkerDir, Runs: runs, Duration: d, Only: only,
		Workers: cfg.Pool.Size, Progress: func(w string) { fmt.Fprintf(a.stderr, "dspgo bench: %s…\n", w) }}
	s.AtPeak = atPeak
	rep, err := s.Run(ctx)
	if err != nil {
		return err
	}
	if err := bench.WriteReport(a.stdout, rep); err != nil {
		return err
	}
	if jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if old != nil {
		fmt.Fprintln(a.stdout)
		return bench.WriteComparison(a.stdout, old, rep)
	}
	return nil
}

// benchCompare prints the report at newPath against the one at oldPath.
func (a *app) benchCompare(oldPath, newPath string) error {
	old, err := readReport("--compare", oldPath)
	if err != nil {
		return err
	}
	cur, err := readReport("--with", newPath)
	if err != nil {
		return err
	}
	return bench.WriteComparison(a.stdout, old, cur)
}

// readReport reads the bench report at path, named by flag (readFile's
// limit).
func readReport(flag, path string) (*bench.Report, error) {
	data, err := readFile(flag, path, "give a report that dspgo bench --json wrote")
	if err != nil {
		return nil, err
	}
	return bench.ParseReport(path, data)
}

// startProfiles starts the CPU profile when cpuPath is not empty; the
// function it returns stops it.
func startProfiles(cpuPath string) (stop func() error, err error) {
	if cpuPath == "" {
		return func() error { return nil }, nil
	}
	cpu, err := os.Create(cpuPath)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		_ = cpu.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return cpu.Close()
	}, nil
}

// writeHeapProfile writes the heap profile (what is in use now, and every
// allocation so far) to path; an empty path writes nothing.
func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func parseCounts(s string) ([]int, error) {
	var counts []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 {
			return nil, usagef("write --workers 1,2,4", "bad worker count %q", part)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

func (a *app) benchOne(ctx context.Context, workers int, op string, inFlight int, d time.Duration) (bench.Result, error) {
	cfg, err := a.load(map[string]any{"pool.size": workers, "pool.worker_concurrency": inFlight})
	if err != nil {
		return bench.Result{}, err
	}
	backend, res, err := a.open(ctx, cfg)
	if err != nil {
		return bench.Result{}, err
	}
	defer backend.Close(context.Background())
	call := func(ctx context.Context) error {
		_, err := backend.Call(ctx, adapter.Request{Command: command.Ping})
		return err
	}
	if op == "execute" {
		c := dspgo.NewClient(backend)
		p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
		if err != nil {
			return bench.Result{}, err
		}
		in := map[string]any{"question": "What is Go?"}
		call = func(ctx context.Context) error { _, err := c.Execute(ctx, p.ID, in); return err }
	}
	name := fmt.Sprintf("%s %s", res.Name, op)
	if res.Name == "pool" {
		name = fmt.Sprintf("pool workers=%d %s", workers, op)
	}
	return bench.Measure(ctx, name, workers*inFlight, d, call), nil
}
