// Package metrics exports dspgo's figures to Prometheus: the adapter's
// counters and, for a pool, every worker's state, read at scrape time; and
// per-command call counts, latency histograms and language model tokens
// recorded by Instrument.
package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"iter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/command"
)

// Namespace prefixes every metric name.
const Namespace = "dspgo"

// Collector reads an adapter's stats at each scrape: adapter.StatsOf for
// every adapter, pool.Stats and port.WorkerInfo for the built-in ones.
type Collector struct {
	a adapter.Adapter

	calls, failures, inFlight, workers, restarts                                                                  *prometheus.Desc
	poolWorkers, poolWaiting, poolWaits, poolWaitSeconds, poolTimeouts, poolCrashes, poolRecycled, poolBroadcasts *prometheus.Desc
	workerInFlight, workerCalls, workerRSS, workerRestarts, workerUp                                              *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector of a's stats; register it with a
// prometheus.Registerer.
func NewCollector(a adapter.Adapter) *Collector {
	labels := []string{"adapter"}
	desc := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, append(labels, extra...), nil)
	}
	return &Collector{a: a,
		calls:           desc("adapter_calls_total", "Calls completed by the adapter."),
		failures:        desc("adapter_failures_total", "Calls that returned an error."),
		inFlight:        desc("adapter_in_flight", "Calls under way."),
		workers:         desc("adapter_workers_ready", "Workers able to serve calls."),
		restarts:        desc("adapter_restarts_total", "Workers restarted after a crash."),
		poolWorkers:     desc("pool_workers", "Pool workers by state.", "state"),
		poolWaiting:     desc("pool_waiting", "Callers queued for a worker."),
		poolWaits:       desc("pool_waits_total", "Callers that had to queue."),
		poolWaitSeconds: desc("pool_wait_seconds_total", "Total time callers queued."),
		poolTimeouts:    desc("pool_checkout_timeouts_total", "Callers that gave up at the checkout timeout."),
		poolCrashes:     desc("pool_crashes_total", "Worker crashes seen."),
		poolRecycled:    desc("pool_recycled_total", "Workers retired, by reason.", "reason"),
		poolBroadcasts:  desc("pool_broadcasts_total", "Broadcasts made."),
		workerInFlight:  desc("worker_in_flight", "Calls in flight on a worker.", "worker"),
		workerCalls:     desc("worker_calls_total", "Calls a worker served.", "worker"),
		workerRSS:       desc("worker_rss_bytes", "A worker's resident memory at the last health check.", "worker"),
		workerRestarts:  desc("worker_restarts_total", "A worker's restarts after crashes.", "worker"),
		workerUp:        desc("worker_up", "1 when a worker is ready, 0 otherwise.", "worker"),
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.calls, c.failures, c.inFlight, c.workers, c.restarts, c.poolWorkers, c.poolWaiting,
		c.poolWaits, c.poolWaitSeconds, c.poolTimeouts, c.poolCrashes, c.poolRecycled, c.poolBroadcasts,
		c.workerInFlight, c.workerCalls, c.workerRSS, c.workerRestarts, c.workerUp} {
		ch <- d
	}
}

// Collect reads the stats now.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	name := c.a.Name()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{name}, labels...)...)
	}
	if s, ok := adapter.StatsOf(c.a); ok {
		counter(c.calls, float64(s.Calls))
		counter(c.failures, float64(s.Failures))
		gauge(c.inFlight, float64(s.InFlight))
		gauge(c.workers, float64(s.Workers))
		counter(c.restarts, float64(s.Restarts))
	}
	switch a := unwrap(c.a).(type) {
	case *pool.Pool:
		s := a.Stats()
		for state, n := range map[string]int{"ready": s.Ready, "busy": s.Busy, "idle": s.Idle, "starting": s.Starting, "draining": s.Draining} {
			gauge(c.poolWorkers, float64(n), state)
		}
		gauge(c.poolWaiting, float64(s.Waiting))
		counter(c.poolWaits, float64(s.WaitCount))
		counter(c.poolWaitSeconds, s.WaitDuration.Seconds())
		counter(c.poolTimeouts, float64(s.CheckoutTimeouts))
		counter(c.poolCrashes, float64(s.Crashes))
		counter(c.poolBroadcasts, float64(s.Broadcasts))
		for reason, n := range s.Recycled {
			counter(c.poolRecycled, float64(n), reason)
		}
		for _, w := range s.PerWorker {
			gauge(c.workerInFlight, float64(w.InFlight), w.ID)
			counter(c.workerCalls, float64(w.Calls), w.ID)
			gauge(c.workerRSS, float64(w.RSSBytes), w.ID)
			counter(c.workerRestarts, float64(w.Restarts), w.ID)
			gauge(c.workerUp, boolFloat(w.State == "ready"), w.ID)
		}
	case *port.Adapter:
		w := a.Worker()
		gauge(c.workerInFlight, float64(w.InFlight), w.ID)
		counter(c.workerRestarts, float64(w.Restarts), w.ID)
		gauge(c.workerUp, boolFloat(w.State == "ready"), w.ID)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Instrumented is an adapter that records per-command call counts, by
// outcome code, latency histograms, and the language model's tokens that
// execute_program results report (usage), by kind. It keeps the wrapped
// adapter's Broadcast and stats.
type Instrumented struct {
	adapter.Adapter
	calls   *prometheus.CounterVec
	latency *prometheus.HistogramVec
	// promptTokens and completionTokens are lm_tokens_total's two kinds.
	promptTokens, completionTokens prometheus.Counter
}

var (
	_ adapter.Broadcaster   = (*Instrumented)(nil)
	_ adapter.StatsReporter = (*Instrumented)(nil)
	_ adapter.Streamer      = (*Instrumented)(nil)
)

// Instrument wraps a and registers its metrics (and a Collector of a)
// with reg: dspgo_calls_total{adapter,command,code},
// dspgo_call_duration_seconds{adapter,command} and
// dspgo_lm_tokens_total{adapter,kind}, kind "prompt" or "completion"
// (both present from the start, at 0).
func Instrument(a adapter.Adapter, reg prometheus.Registerer) (*Instrumented, error) {
	tokens := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "lm_tokens_total",
		Help: "Language model tokens that executions reported, by adapter and kind (prompt, completion)."}, []string{"adapter", "kind"})
	in := &Instrumented{Adapter: a,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "calls_total",
			Help: "Calls by adapter, command and outcome code."}, []string{"adapter", "command", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "call_duration_seconds",
			Help:    "Call latency by adapter and command.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2.5, 14)}, []string{"adapter", "command"}),
		promptTokens:     tokens.WithLabelValues(a.Name(), "prompt"),
		completionTokens: tokens.WithLabelValues(a.Name(), "completion"),
	}
	for _, col := range []prometheus.Collector{in.calls, in.latency, tokens, NewCollector(a)} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// Call calls the wrapped adapter and records the call.
func (in *Instrumented) Call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	start := time.Now()
	resp, err := in.Adapter.Call(ctx, req)
	in.record(req.Command, start, err)
	if err == nil {
		in.countTokens(req.Command, resp.Result)
	}
	return resp, err
}

func (in *Instrumented) record(command string, start time.Time, err error) {
	name := in.Adapter.Name()
	in.latency.WithLabelValues(name, command).Observe(time.Since(start).Seconds())
	in.calls.WithLabelValues(name, command, adapter.CodeOf(err).String()).Inc()
}

// usageKey is what a result carrying usage contains; a result without it
// (the dummy LM's) is not decoded again.
var usageKey = []byte(`"usage"`)

// countTokens adds the usage an execute_program result reports to the
// token counters.
func (in *Instrumented) countTokens(cmd string, result json.RawMessage) {
	if cmd != command.ExecuteProgram || !bytes.Contains(result, usageKey) {
		return
	}
	var r command.ExecuteResult
	if json.Unmarshal(result, &r) != nil || r.Usage == nil {
		return
	}
	if r.Usage.PromptTokens > 0 {
		in.promptTokens.Add(float64(r.Usage.PromptTokens))
	}
	if r.Usage.CompletionTokens > 0 {
		in.completionTokens.Add(float64(r.Usage.CompletionTokens))
	}
}

// Broadcast broadcasts through the wrapped adapter when it is a
// Broadcaster, and calls it otherwise, as the client would.
func (in *Instrumented) Broadcast(ctx context.Context, req adapter.Request) error {
	start := time.Now()
	var err error
	if b, ok := in.Adapter.(adapter.Broadcaster); ok {
		err = b.Broadcast(ctx, req)
	} else {
		_, err = in.Adapter.Call(ctx, req)
	}
	in.record(req.Command, start, err)
	return err
}

// Stream streams through the wrapped adapter and records the stream as
// one call, from its start to its last element; an adapter that does not
// stream yields its Call's result as the only element.
func (in *Instrumented) Stream(ctx context.Context, req adapter.Request) iter.Seq2[adapter.Chunk, error] {
	return func(yield func(adapter.Chunk, error) bool) {
		start := time.Now()
		s, ok := in.Adapter.(adapter.Streamer)
		if !ok {
			resp, err := in.Adapter.Call(ctx, req)
			in.record(req.Command, start, err)
			if err != nil {
				yield(adapter.Chunk{}, err)
				return
			}
			in.countTokens(req.Command, resp.Result)
			yield(adapter.Chunk{Response: &resp}, nil)
			return
		}
		var err error
		for c, cerr := range s.Stream(ctx, req) {
			err = cerr
			if cerr == nil && c.Response != nil {
				in.countTokens(req.Command, c.Response.Result)
			}
			if !yield(c, cerr) {
				if cerr == nil && c.Response == nil {
					err = context.Canceled // the consumer left before the end
				}
				break
			}
		}
		in.record(req.Command, start, err)
	}
}

// AdapterStats returns the wrapped adapter's counters.
func (in *Instrumented) AdapterStats() adapter.Stats {
	s, _ := adapter.StatsOf(in.Adapter)
	return s
}

// Unwrap returns the wrapped adapter.
func (in *Instrumented) Unwrap() adapter.Adapter { return in.Adapter }

func unwrap(a adapter.Adapter) adapter.Adapter {
	for {
		u, ok := a.(interface{ Unwrap() adapter.Adapter })
		if !ok {
			return a
		}
		a = u.Unwrap()
	}
}
