package pool

import (
	"maps"
	"time"

	"github.com/dspgo/dspgo/adapter"
)

// Stats is a snapshot of a pool, in the spirit of database/sql.DBStats.
type Stats struct {
	// Size is the configured number of workers; MaxOverflow the extra
	// ones allowed.
	Size, MaxOverflow int
	// Lazy reports whether workers start on demand.
	Lazy bool

	// Workers counts the pool's workers in every state.
	Workers int
	// Ready counts workers that can take calls; Busy those with no room
	// left; Idle those with no call in flight.
	Ready, Busy, Idle int
	// Starting counts workers starting or restarting after a crash.
	Starting int
	// Draining counts retiring workers finishing their calls.
	Draining int
	// InFlight counts calls holding a worker.
	InFlight int

	// Waiting counts callers queued now.
	Waiting int
	// WaitCount counts callers that had to queue; WaitDuration is the
	// total time they waited.
	WaitCount    uint64
	WaitDuration time.Duration
	// CheckoutTimeouts counts callers that gave up at CheckoutTimeout.
	CheckoutTimeouts uint64

	// Restarts counts worker restarts after crashes; Crashes the crashes
	// seen; HealthFailures the workers killed by a failed health check.
	Restarts, Crashes, HealthFailures uint64
	// StartFailures counts workers that could not start.
	StartFailures uint64
	// Recycled counts retired workers by reason: max_calls, max_age,
	// max_idle, max_rss, overflow_idle, broadcast_refused (a worker that
	// may have applied a broadcast that was refused; see Pool.Broadcast).
	Recycled map[string]uint64
	// Broadcasts counts broadcasts made.
	Broadcasts uint64

	// PerWorker describes each worker, in start order.
	PerWorker []WorkerStats
}

// WorkerStats describes one worker.
type WorkerStats struct {
	// ID is the worker's id, such as "pool-3".
	ID string
	// PID is the OS process id; 0 while none runs or for in-memory
	// workers.
	PID int
	// State is "starting", "ready", "restarting" or "draining".
	State string
	// Overflow reports a worker beyond Size.
	Overflow bool
	// InFlight counts its calls in flight; Calls the calls it served.
	InFlight int
	Calls    uint64
	// RSSBytes is its resident memory at the last health check; 0 when
	// unknown.
	RSSBytes uint64
	// StartedAt is when it became ready; zero while starting.
	StartedAt time.Time
	// Restarts counts its restarts after crashes.
	Restarts uint64
}

// Stats returns a snapshot of the pool.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Size: p.opts.Size, MaxOverflow: p.opts.MaxOverflow, Lazy: p.opts.Lazy,
		Workers: len(p.workers), InFlight: p.inFlight, Waiting: p.waiters.Len(),
		WaitCount: p.st.waitCount, WaitDuration: p.st.waitDuration, CheckoutTimeouts: p.st.checkoutTimeouts,
		Restarts: p.st.retired, Crashes: p.st.crashes, HealthFailures: p.st.healthFailures,
		StartFailures: p.st.startFailures, Recycled: maps.Clone(p.st.recycled), Broadcasts: p.st.broadcasts}
	for _, w := range p.workers {
		ws := WorkerStats{ID: w.id, State: w.state.String(), Overflow: w.overflow, InFlight: w.inFlight,
			Calls: w.served, RSSBytes: w.rss.Load(), StartedAt: w.startedAt}
		if w.p != nil {
			info := w.p.Worker()
			ws.PID, ws.Restarts = info.PID, info.Restarts
			s.Restarts += info.Restarts
			if w.state == ready && info.State != "ready" {
				ws.State = "restarting"
			}
		}
		switch ws.State {
		case "ready":
			s.Ready++
			if w.inFlight >= p.opts.WorkerConcurrency {
				s.Busy++
			}
			if w.inFlight == 0 {
				s.Idle++
			}
		case "starting", "restarting":
			s.Starting++
		case "draining":
			s.Draining++
		}
		s.PerWorker = append(s.PerWorker, ws)
	}
	return s
}

// AdapterStats returns the pool's common counters (adapter.StatsReporter);
// Stats has the detail.
func (p *Pool) AdapterStats() adapter.Stats {
	s := p.Stats()
	out := adapter.Stats{Adapter: p.opts.Name, Workers: s.Ready, Restarts: s.Restarts, Since: p.since}
	p.counter.Fill(&out)
	return out
}
