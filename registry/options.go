package registry

import (
	"time"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/config"
)

// PortOptions translates configuration into port adapter options. The
// worker gets the variables python.pass_env names from the environment
// the configuration was loaded with (config.Config.Environ).
func PortOptions(cfg *config.Config) port.Options {
	p := cfg.Port
	return port.Options{
		Python: cfg.Python.Interpreter, WorkerDir: cfg.Python.WorkerDir, PassEnv: cfg.Python.PassEnv, Environ: cfg.Environ,
		Handlers: cfg.Python.Handlers, StartTimeout: p.StartTimeout, CallTimeout: p.CallTimeout,
		WriteTimeout: p.WriteTimeout, StopGrace: p.StopGrace, MaxFrameBytes: p.MaxFrameBytes,
		MaxConcurrency: p.MaxConcurrency, StreamWindow: p.StreamWindow, Restart: restart(p.Restart), Logger: cfg.Logger(cfg.LogOutput()),
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
		Affinity: adapter.Affinity(q.Affinity),
		Recycle: pool.Recycle{MaxCalls: q.Recycle.MaxCalls, MaxAge: q.Recycle.MaxAge, MaxAgeJitter: q.Recycle.MaxAgeJitter,
			MaxIdle: q.Recycle.MaxIdle, MaxRSSBytes: q.Recycle.MaxRSSBytes},
		HealthInterval: q.HealthInterval, HealthTimeout: q.HealthTimeout, Restart: worker.Restart, Logger: worker.Logger,
	}
}

// LMConfig translates configuration into the client's LM configuration;
// Registry.Open applies it to the adapter it opens.
func LMConfig(cfg *config.Config) dspgo.LMConfig {
	lm := dspgo.LMConfig{Provider: cfg.LM.Provider, Model: cfg.LM.Model, BaseURL: cfg.LM.BaseURL,
		APIKeyEnv: cfg.LM.APIKeyEnv, MaxTokens: cfg.LM.MaxTokens, Timeout: cfg.LM.Timeout, Engine: cfg.LM.Engine, DSPyAdapter: cfg.LM.DSPyAdapter,
		Cache: cfg.LM.Cache, ImageURLs: cfg.LM.ImageURLs}
	if cfg.LM.Temperature >= 0 {
		t := cfg.LM.Temperature
		lm.Temperature = &t
	}
	if lm.Engine == "auto" {
		lm.Engine = ""
	}
	if lm.DSPyAdapter == "chat" { // the default: configurations that leave it unset stay as they were
		lm.DSPyAdapter = ""
	}
	return lm
}

// openTimeout bounds opening an adapter from fx: a pool waits for its
// workers.
func openTimeout(cfg *config.Config) time.Duration { return cfg.Port.StartTimeout + 5*time.Second }
