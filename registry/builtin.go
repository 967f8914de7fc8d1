package registry

import (
	"context"
	"os"
	"time"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/protocol"
)

// Builtin returns the factories of dspgo's own adapters: mock, port,
// pool, and memory (the port adapter serving the mock's command set in
// process over the real framing).
func Builtin() []Factory {
	return []Factory{
		{
			Name:         mock.Name,
			Description:  "in-process Go implementation of the command set with the dummy LM; zero set-up; for unit tests",
			Capabilities: adapter.Capabilities{Sessions: true, FaultInjection: true, MaxFrameBytes: protocol.DefaultMaxFrameBytes},
			Open: func(_ context.Context, cfg *config.Config) (adapter.Adapter, error) {
				return mock.New(mock.Options{MaxFrameBytes: cfg.Mock.MaxFrameBytes, Seed: cfg.Mock.Seed}), nil
			},
		},
		{
			Name:         "memory",
			Description:  "one in-memory worker serving the mock's command set over the real framing; protocol tests without Python",
			Capabilities: adapter.Capabilities{Sessions: true, Broadcast: true, Restarts: true, MaxFrameBytes: protocol.DefaultMaxFrameBytes},
			Open: func(ctx context.Context, cfg *config.Config) (adapter.Adapter, error) {
				opts := PortOptions(cfg)
				opts.Name = "memory"
				opts.Handler = func() protocol.Handler { return mock.NewHandler(mock.HandlerOptions{WorkerID: "memory"}) }
				return port.New(ctx, opts)
			},
		},
		{
			Name:         port.Name,
			Description:  "one supervised Python worker process",
			Capabilities: adapter.Capabilities{Sessions: true, Broadcast: true, Restarts: true, MaxFrameBytes: protocol.DefaultMaxFrameBytes},
			Open: func(ctx context.Context, cfg *config.Config) (adapter.Adapter, error) {
				return port.New(ctx, PortOptions(cfg))
			},
		},
		{
			Name:         pool.Name,
			Description:  "a supervised pool of Python workers with queueing, affinity, recycling and health checks",
			Capabilities: adapter.Capabilities{Sessions: true, Broadcast: true, Restarts: true, MaxFrameBytes: protocol.DefaultMaxFrameBytes},
			Open: func(ctx context.Context, cfg *config.Config) (adapter.Adapter, error) {
				return pool.New(ctx, PoolOptions(cfg))
			},
		},
	}
}

// PortOptions translates configuration into port adapter options.
func PortOptions(cfg *config.Config) port.Options {
	p := cfg.Port
	return port.Options{
		Python: cfg.Python.Interpreter, WorkerDir: cfg.Python.WorkerDir, PassEnv: cfg.Python.PassEnv,
		Handlers: cfg.Python.Handlers, StartTimeout: p.StartTimeout, CallTimeout: p.CallTimeout,
		WriteTimeout: p.WriteTimeout, StopGrace: p.StopGrace, MaxFrameBytes: p.MaxFrameBytes,
		MaxConcurrency: p.MaxConcurrency, Restart: restart(p.Restart), Logger: cfg.Logger(os.Stderr),
	}
}

func restart(r config.Restart) port.RestartPolicy {
	jitter := r.Jitter
	if jitter == 0 {
		jitter = -1 // configured as none; port's zero means its default
	}
	return port.RestartPolicy{Min: r.Min, Max: r.Max, Jitter: jitter, MaxRestarts: r.MaxRestarts, Window: r.Window}
}

// PoolOptions translates configuration into pool options; every pool key
// is honoured.
func PoolOptions(cfg *config.Config) pool.Options {
	q := cfg.Pool
	worker := PortOptions(cfg)
	return pool.Options{
		Worker: worker, Size: q.Size, MaxOverflow: q.MaxOverflow, OverflowIdle: q.OverflowIdle,
		Lazy: q.Lazy, StartConcurrency: q.StartConcurrency, MinReady: q.MinReady,
		CheckoutTimeout: q.CheckoutTimeout, MaxQueue: q.MaxQueue, WorkerConcurrency: q.WorkerConcurrency,
		Affinity: pool.Affinity(q.Affinity),
		Recycle: pool.Recycle{MaxCalls: q.Recycle.MaxCalls, MaxAge: q.Recycle.MaxAge, MaxAgeJitter: q.Recycle.MaxAgeJitter,
			MaxIdle: q.Recycle.MaxIdle, MaxRSSBytes: q.Recycle.MaxRSSBytes},
		HealthInterval: q.HealthInterval, HealthTimeout: q.HealthTimeout, Restart: worker.Restart, Logger: worker.Logger,
	}
}

// LMConfig translates configuration into the client's LM configuration.
func LMConfig(cfg *config.Config) dspgo.LMConfig {
	lm := dspgo.LMConfig{Provider: cfg.LM.Provider, Model: cfg.LM.Model, BaseURL: cfg.LM.BaseURL,
		APIKeyEnv: cfg.LM.APIKeyEnv, MaxTokens: cfg.LM.MaxTokens, Timeout: cfg.LM.Timeout, Engine: cfg.LM.Engine}
	if cfg.LM.Temperature >= 0 {
		t := cfg.LM.Temperature
		lm.Temperature = &t
	}
	if lm.Engine == "auto" {
		lm.Engine = ""
	}
	return lm
}

// openTimeout bounds opening an adapter from fx: a pool waits for its
// workers.
func openTimeout(cfg *config.Config) time.Duration { return cfg.Port.StartTimeout + 5*time.Second }
