package bench

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/internal/lmtest"
)

// inFlight is a workload of thousands of calls in flight on a pool,
// against an LM that answers in a fixed time (issue 21, item 2): the
// dummy LM's delay, or the OpenAI-compatible HTTP provider against the
// test LM server.
type inFlight struct {
	workers, perWorker int
	latency            time.Duration
	http               bool
}

// calls is the number of calls in flight.
func (l inFlight) calls() int { return l.workers * l.perWorker }

// ceiling is the throughput the LM's latency allows: every call in flight
// answered once per latency.
func (l inFlight) ceiling() float64 { return float64(l.calls()) / l.latency.Seconds() }

// name is the workload's name, its rows' prefix.
func (l inFlight) name() string {
	lm := "dummy LM delays"
	if l.http {
		lm = "OpenAI-compatible HTTP, test LM server answers in"
	}
	if l.workers == 2 && l.perWorker == 2048 {
		return fmt.Sprintf("2 workers × 2,048 in flight, %s %v", lm, l.latency)
	}
	return fmt.Sprintf("%s in flight, pool of %d, %s %v", thousands(l.calls()), l.workers, lm, l.latency)
}

// window is the measuring window of one run: at least the suite's run
// duration and two LM latencies, so that every slot completes calls in it
// after the ramp.
func (l inFlight) window(d time.Duration) time.Duration { return max(d, 2*l.latency) }

// measureInFlight runs the workload Runs times and returns its runs and
// the footprint before the first.
func (s Suite) measureInFlight(ctx context.Context, l inFlight) ([]loadRun, footprint, error) {
	var lm *lmtest.Server
	cfg := dspgo.LMConfig{Delay: l.latency}
	if l.http {
		var err error
		if lm, err = lmtest.Start(lmtest.Options{Latency: l.latency, Logger: quiet}); err != nil {
			return nil, footprint{}, err
		}
		defer lm.Close()
		cfg = dspgo.LMConfig{Provider: dspgo.ProviderOpenAI, Model: "test-model", BaseURL: lm.URL(), Engine: "native",
			Timeout: l.latency + 30*time.Second}
	}
	// Return what earlier workloads freed to the system, so that the host's
	// resident memory is this workload's. Twice: what a finalizer keeps
	// (the HTTP workload's thousands of closed connections, some 50 MB) is
	// freed only by the collection after the one that runs it.
	debug.FreeOSMemory()
	debug.FreeOSMemory()
	p, err := pool.New(ctx, pool.Options{Size: l.workers, WorkerConcurrency: l.perWorker, MaxQueue: l.calls(),
		HealthInterval: -1, Logger: quiet, Worker: s.portOptions()})
	if err != nil {
		return nil, footprint{}, err
	}
	defer p.Close(context.Background())
	c := dspgo.NewClient(p)
	if err := c.ConfigureLM(ctx, cfg); err != nil {
		return nil, footprint{}, err
	}
	prog, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
	if err != nil {
		return nil, footprint{}, err
	}
	pids := func() []int {
		var out []int
		for _, w := range p.Stats().PerWorker {
			out = append(out, w.PID)
		}
		return out
	}
	idle := readFootprint(pids())
	in := map[string]any{"question": "What is Go?"}
	call := func(ctx context.Context) error { _, err := c.Execute(ctx, prog.ID, in); return err }
	var runs []loadRun
	for range s.Runs {
		r := load(ctx, l.calls(), l.latency, l.window(s.Duration), pids, s.AtPeak, call)
		if err := ctx.Err(); err != nil {
			return nil, footprint{}, err
		}
		runs = append(runs, r)
		if lm != nil {
			lm.Reset() // forget the recorded requests: the server's memory is not dspgo's
		}
	}
	return runs, idle, nil
}

// inFlightRows measures a workload whose target is a fraction of its
// ceiling.
func (s Suite) inFlightRows(ctx context.Context, l inFlight, minFraction float64) ([]Row, error) {
	runs, idle, err := s.measureInFlight(ctx, l)
	if err != nil {
		return nil, err
	}
	d := over(runs, func(r loadRun) float64 { return r.perSecond })
	ratio := d.Median / l.ceiling()
	r := row(l.name(), "calls/s", nil, d, ratio, fmt.Sprintf("≥ %.2f of %s (the ceiling)", minFraction, thousands(int(l.ceiling()))), ratio >= minFraction)
	r.Note = runsNote(runs, l, idle)
	return []Row{r}, nil
}

// tenThousand measures 10,000 calls in flight on one host: errors,
// resident memory of the host and its workers, and latency above the
// LM's.
func (s Suite) tenThousand(ctx context.Context, l inFlight) ([]Row, error) {
	runs, idle, err := s.measureInFlight(ctx, l)
	if err != nil {
		return nil, err
	}
	name := l.name()
	d := over(runs, func(r loadRun) float64 { return r.perSecond })
	tput := row(name+": throughput", "calls/s", nil, d, d.Median/l.ceiling(), "", true)
	tput.Note = runsNote(runs, l, idle)
	errs := over(runs, func(r loadRun) float64 { return float64(r.errors) })
	mem := over(runs, func(r loadRun) float64 { return mb(r.peak.hostRSS + r.peak.workersRSS) })
	above := over(runs, func(r loadRun) float64 { return ms(r.p99 - l.latency) })
	errRow := row(name+": errors", "calls", nil, errs, errs.Max, "0", errs.Max == 0)
	if errs.Max > 0 {
		for _, r := range runs {
			if r.firstErr != "" {
				errRow.Note = "first error: " + r.firstErr
				break
			}
		}
	}
	return []Row{tput, errRow,
		row(name+": host + workers resident memory", "MB", nil, mem, mem.Median, "≤ 300 MB", mem.Median <= 300),
		row(name+": p99 latency above the LM's", "ms", nil, above, above.Median, "≤ 10 ms", above.Median <= 10),
	}, nil
}

// runsNote gives a load's costs per call and its footprint, each as
// median [min–max] over the runs; idle is the footprint before the load.
func runsNote(runs []loadRun, l inFlight, idle footprint) string {
	f := func(get func(loadRun) float64) string { return fig(over(runs, get)) }
	calls := float64(l.calls())
	return fmt.Sprintf("per call in the window: host CPU %s µs, %s host allocations, workers' CPU %s µs; "+
		"p50 %s ms, p99 %s ms; peak resident memory: host %s MB (%.1f MB before the load; Go heap %s MB, goroutine stacks %s MB, freed and not returned %s MB, runtime %s MB), "+
		"workers %s MB (%s KB per call in flight above idle); "+
		"worker threads %s; calls %s, errors %s",
		f(func(r loadRun) float64 { return us(r.hostCPU) }),
		f(func(r loadRun) float64 { return r.allocs }),
		f(func(r loadRun) float64 { return us(r.workCPU) }),
		f(func(r loadRun) float64 { return ms(r.p50) }),
		f(func(r loadRun) float64 { return ms(r.p99) }),
		f(func(r loadRun) float64 { return mb(r.peak.hostRSS) }),
		mb(idle.hostRSS),
		f(func(r loadRun) float64 { return mb(r.peak.hostHeap) }),
		f(func(r loadRun) float64 { return mb(r.peak.hostStacks) }),
		f(func(r loadRun) float64 { return mb(r.peak.hostFree) }),
		f(func(r loadRun) float64 { return mb(r.peak.hostRuntime) }),
		f(func(r loadRun) float64 { return mb(r.peak.workersRSS) }),
		f(func(r loadRun) float64 { return (float64(r.peak.workersRSS) - float64(idle.workersRSS)) / 1024 / calls }),
		f(func(r loadRun) float64 { return float64(r.peakThreads) }),
		f(func(r loadRun) float64 { return float64(r.calls) }),
		f(func(r loadRun) float64 { return float64(r.errors) }))
}

// over is the figure of one quantity over the runs.
func over(runs []loadRun, get func(loadRun) float64) Figure {
	xs := make([]float64, len(runs))
	for i, r := range runs {
		xs[i] = get(r)
	}
	return figure(xs)
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
func mb(b uint64) float64        { return float64(b) / (1 << 20) }

// thousands writes n with a comma between thousands: 10,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
