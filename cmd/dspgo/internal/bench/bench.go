// Package bench measures throughput and latency of a call under a fixed
// number of calls in flight: the harness behind `dspgo bench`.
package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"text/tabwriter"
	"time"
)

// Result is one measurement.
type Result struct {
	// Name labels the measurement, such as "pool workers=2 ping".
	Name string `json:"name"`
	// InFlight is the number of calls kept in flight.
	InFlight int `json:"in_flight"`
	// Calls counts completed calls; Errors the failed ones.
	Calls  int `json:"calls"`
	Errors int `json:"errors"`
	// Elapsed is the measured time.
	Elapsed time.Duration `json:"elapsed_ns"`
	// PerSecond is Calls / Elapsed.
	PerSecond float64 `json:"per_second"`
	// Latency percentiles and maximum of successful calls.
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
	// FirstError is the first failure, if any.
	FirstError string `json:"first_error,omitempty"`
}

// Measure calls fn from inFlight goroutines until duration has passed (at
// least one call each) and returns the figures. ctx ends it early.
func Measure(ctx context.Context, name string, inFlight int, duration time.Duration, fn func(context.Context) error) Result {
	inFlight = max(inFlight, 1)
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	lat := make([][]time.Duration, inFlight)
	errs := make([]int, inFlight)
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for g := range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil || len(lat[g])+errs[g] == 0 {
				t := time.Now()
				err := fn(context.WithoutCancel(ctx))
				if err != nil {
					errs[g]++
					once.Do(func() { firstErr = err })
					if ctx.Err() != nil {
						return
					}
					continue
				}
				lat[g] = append(lat[g], time.Since(t))
			}
		}()
	}
	wg.Wait()
	return summarize(name, inFlight, time.Since(start), lat, errs, firstErr)
}

// summarize turns per-goroutine latencies and error counts into a Result.
func summarize(name string, inFlight int, elapsed time.Duration, lat [][]time.Duration, errs []int, firstErr error) Result {
	r := Result{Name: name, InFlight: inFlight, Elapsed: elapsed}
	var all []time.Duration
	for g := range lat {
		all = append(all, lat[g]...)
		r.Errors += errs[g]
	}
	r.Calls = len(all) + r.Errors
	r.PerSecond = float64(r.Calls) / r.Elapsed.Seconds()
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	if len(all) > 0 {
		slices.Sort(all)
		at := func(q float64) time.Duration { return all[min(len(all)-1, int(q*float64(len(all))))] }
		r.P50, r.P90, r.P99, r.Max = at(0.50), at(0.90), at(0.99), all[len(all)-1]
	}
	return r
}

// WriteTable writes results as an aligned table.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "name\tin flight\tcalls\terrors\tcalls/s\tp50\tp90\tp99\tmax\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%v\t%v\t%v\t%v\t\n", r.Name, r.InFlight, r.Calls, r.Errors, r.PerSecond,
			round(r.P50), round(r.P90), round(r.P99), round(r.Max))
	}
	return tw.Flush()
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(time.Millisecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
