package bench

import (
	"context"
	"slices"
	"sync"
	"time"
)

// loadRun is one run of a load: many calls in flight against a slow LM.
type loadRun struct {
	// The measuring window, after the ramp: calls completed in it per
	// second, their count, and per call the host's CPU, the host's heap
	// allocations and the workers' CPU spent in it.
	perSecond        float64
	windowCalls      int
	hostCPU, workCPU time.Duration
	allocs           float64
	// The whole run: calls (failed ones included) and failures.
	calls, errors int
	firstErr      string
	// Latency of the successful calls that started in the window.
	p50, p99, max time.Duration
	// peak is the footprint when host and workers together were largest;
	// peakThreads the most threads the workers had at once.
	peak        footprint
	peakThreads int
}

// load keeps n calls of fn in flight against an LM that answers in
// latency. Slot i makes its first call at i/n of latency, so that calls
// arrive at the steady rate n/latency rather than in one burst (the ramp),
// then calls fn back to back. The measuring window follows the ramp;
// a slot makes no call after the window. pids lists the worker processes
// to watch; atEnd, when not nil, is called at the window's end, with the
// calls still in flight. ctx ends the run early.
func load(ctx context.Context, n int, latency, window time.Duration, pids func() []int, atEnd func(), fn func(context.Context) error) loadRun {
	lat := make([][]time.Duration, n)
	errs := make([]int, n)
	calls := make([]int, n)
	inWindow := make([]int, n)
	var firstErr error
	var once sync.Once
	start := time.Now()
	winStart, winEnd := start.Add(latency), start.Add(latency+window)
	done := make(chan struct{})
	watched := make(chan watch, 1)
	go func() { watched <- watchRun(pids, winStart, winEnd, atEnd, done) }()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTimer(time.Until(start.Add(latency * time.Duration(i) / time.Duration(n))))
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			for ctx.Err() == nil {
				begin := time.Now()
				if begin.After(winEnd) {
					return
				}
				err := fn(ctx)
				end := time.Now()
				calls[i]++
				switch {
				case err != nil:
					errs[i]++
					once.Do(func() { firstErr = err })
				case !begin.Before(winStart):
					lat[i] = append(lat[i], end.Sub(begin))
				}
				if err == nil && !end.Before(winStart) && !end.After(winEnd) {
					inWindow[i]++
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	w := <-watched

	var r loadRun
	var all []time.Duration
	for i := range n {
		r.calls += calls[i]
		r.errors += errs[i]
		r.windowCalls += inWindow[i]
		all = append(all, lat[i]...)
	}
	if firstErr != nil {
		r.firstErr = firstErr.Error()
	}
	r.perSecond = float64(r.windowCalls) / window.Seconds()
	if r.windowCalls > 0 && w.measured {
		per := time.Duration(r.windowCalls)
		r.hostCPU = (w.after.hostCPU - w.before.hostCPU) / per
		r.workCPU = (w.after.workerCPU - w.before.workerCPU) / per
		r.allocs = float64(w.after.mallocs-w.before.mallocs) / float64(r.windowCalls)
	}
	if len(all) > 0 {
		slices.Sort(all)
		at := func(q float64) time.Duration { return all[min(len(all)-1, int(q*float64(len(all))))] }
		r.p50, r.p99, r.max = at(0.50), at(0.99), all[len(all)-1]
	}
	r.peak, r.peakThreads = w.peak, w.peakThreads
	return r
}

// watch is what watchRun saw.
type watch struct {
	before, after usage // at the window's start and end
	measured      bool  // both were read
	peak          footprint
	peakThreads   int
}

// watchRun reads the usage at the window's start and end, and the
// footprint every 100 ms, until done is closed; it calls atEnd, when not
// nil, once the usage at the window's end is read.
func watchRun(pids func() []int, winStart, winEnd time.Time, atEnd func(), done <-chan struct{}) watch {
	var w watch
	sample := func() {
		f := readFootprint(pids())
		if f.hostRSS+f.workersRSS > w.peak.hostRSS+w.peak.workersRSS {
			w.peak = f
		}
		w.peakThreads = max(w.peakThreads, f.workerThreads)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	startAt, endAt := time.NewTimer(time.Until(winStart)), time.NewTimer(time.Until(winEnd))
	defer startAt.Stop()
	defer endAt.Stop()
	started := false
	for {
		select {
		case <-tick.C:
			sample()
		case <-startAt.C:
			w.before, started = readUsage(pids()), true
		case <-endAt.C:
			w.after, w.measured = readUsage(pids()), started
			if atEnd != nil {
				atEnd()
			}
		case <-done:
			sample()
			return w
		}
	}
}
