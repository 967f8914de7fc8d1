package pool

import (
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
)

// Name is the pool adapter's registered name.
const Name = "pool"

// Options configure a pool. Every option is honoured; none is overridden
// by a hard-coded value. The zero value starts GOMAXPROCS Python workers.
type Options struct {
	// Name is the pool's name in errors, logs and stats. Empty means
	// "pool". Workers are named "<Name>-1", "<Name>-2", ….
	Name string

	// Worker configures each worker (a port adapter). Its Name, WorkerID,
	// MaxConcurrency, NoWait, OnReady and OnCrash are set by the pool; the
	// interpreter and the worker files are resolved once for all workers.
	Worker port.Options

	// Size is the number of workers the pool keeps. Zero means
	// runtime.GOMAXPROCS(0).
	Size int

	// MaxOverflow is how many workers beyond Size the pool starts while
	// callers queue. Zero means none.
	MaxOverflow int

	// OverflowIdle is how long an overflow worker may sit idle before it
	// is stopped. Zero means 30 s.
	OverflowIdle time.Duration

	// Lazy starts workers on demand, when a call finds none free (or a
	// broadcast, such as a configure_lm, finds none running), up to
	// Size. False starts Size workers in New, at most StartConcurrency at
	// a time, and keeps the pool at Size.
	Lazy bool

	// StartConcurrency is how many workers start at once. Zero means 8.
	StartConcurrency int

	// MinReady is how many workers must be ready before an eager New
	// returns; New fails only when none could start. Zero means Size.
	MinReady int

	// CheckoutTimeout bounds the wait for a free worker. Zero means 30 s;
	// the caller's context may end the wait sooner.
	CheckoutTimeout time.Duration

	// MaxQueue is how many callers may wait for a worker; one more is
	// refused at once with CodeResourceExhausted. Zero means 1024.
	MaxQueue int

	// WorkerConcurrency is the number of calls in flight on one worker.
	// Zero means 4.
	WorkerConcurrency int

	// Affinity routes sessions to workers (see adapter.Affinity). Empty
	// means adapter.AffinityPrefer.
	Affinity adapter.Affinity

	// Recycle retires workers, draining them first.
	Recycle Recycle

	// HealthInterval is how often each ready worker is pinged on the
	// worker's control path, which never queues behind calls. Zero means
	// 10 s; negative disables health checks.
	HealthInterval time.Duration

	// HealthTimeout bounds one health ping; a worker that fails it is
	// killed and restarted. Zero means 5 s.
	HealthTimeout time.Duration

	// Restart is the backoff for restarting crashed workers and retrying
	// workers that failed to start. The zero value means port's defaults.
	Restart port.RestartPolicy

	// Logger receives the pool's and the workers' logs. Nil discards
	// them (the pool logs only through the logger it is given).
	Logger *slog.Logger
}

// Recycle lists the reasons to retire a worker. A retiring worker takes
// no new calls, finishes the ones in flight, then stops; a new one takes
// its place. Zero fields are off.
type Recycle struct {
	// MaxCalls retires a worker after it has served this many calls.
	MaxCalls uint64
	// MaxAge retires a worker this long after it started.
	MaxAge time.Duration
	// MaxAgeJitter adds up to this much, at random per worker, to MaxAge,
	// so workers started together do not retire together.
	MaxAgeJitter time.Duration
	// MaxIdle retires a worker that has served no call for this long.
	MaxIdle time.Duration
	// MaxRSSBytes retires a worker whose resident memory exceeds it, read
	// from /proc at each health check.
	MaxRSSBytes uint64
}

func (o *Options) setDefaults() error {
	if o.Name == "" {
		o.Name = Name
	}
	if o.Size == 0 {
		o.Size = runtime.GOMAXPROCS(0)
	}
	if o.OverflowIdle == 0 {
		o.OverflowIdle = 30 * time.Second
	}
	if o.StartConcurrency == 0 {
		o.StartConcurrency = 8
	}
	if o.MinReady == 0 && o.Size > 0 {
		o.MinReady = o.Size // an invalid Size is reported alone, not as MinReady's too
	}
	if o.CheckoutTimeout == 0 {
		o.CheckoutTimeout = 30 * time.Second
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = 1024
	}
	if o.WorkerConcurrency == 0 {
		o.WorkerConcurrency = 4
	}
	if o.Affinity == "" {
		o.Affinity = adapter.AffinityPrefer
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = 10 * time.Second
	}
	if o.HealthTimeout == 0 {
		o.HealthTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var bad []string
	if o.Size < 1 {
		bad = append(bad, fmt.Sprintf("Size %d must be at least 1", o.Size))
	}
	for _, f := range []struct {
		name  string
		value int
	}{{"MaxOverflow", o.MaxOverflow}, {"StartConcurrency", o.StartConcurrency}, {"MinReady", o.MinReady},
		{"MaxQueue", o.MaxQueue}, {"WorkerConcurrency", o.WorkerConcurrency}} {
		if f.value < 0 {
			bad = append(bad, fmt.Sprintf("%s %d must not be negative", f.name, f.value))
		}
	}
	if o.Size >= 1 && o.MinReady > o.Size {
		bad = append(bad, fmt.Sprintf("MinReady %d exceeds Size %d", o.MinReady, o.Size))
	}
	if o.CheckoutTimeout < 0 || o.OverflowIdle < 0 || o.HealthTimeout < 0 || o.Recycle.MaxAge < 0 || o.Recycle.MaxAgeJitter < 0 || o.Recycle.MaxIdle < 0 {
		bad = append(bad, "durations must not be negative (except HealthInterval, where negative disables)")
	}
	if !o.Affinity.Valid() {
		bad = append(bad, fmt.Sprintf("Affinity %q is unknown (known: none, prefer, strict)", o.Affinity))
	}
	if len(bad) > 0 {
		return fmt.Errorf("invalid options: %s", strings.Join(bad, "; "))
	}
	return nil
}
