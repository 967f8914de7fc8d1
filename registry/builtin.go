package registry

import (
	"context"
	"sync"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/protocol"
)

// Builtin returns the factories of dspgo's own adapters linked into the
// program: always mock, memory (the port adapter serving the mock's
// command set in process over the real framing), port and pool; then
// every factory an adapter package registered with Register, in the
// order they registered. The remote adapter (worker hosts through NATS)
// is one of those: it, and NATS with it, is linked only into a program
// that imports its registering package, as dspgo's CLI does:
//
//	import _ "github.com/dspgo/dspgo/adapters/remote/remoteconfig"
//
// The mock and memory adapters run only the dummy LM
// (Factory.LMProviders).
func Builtin() []Factory {
	registered.Lock()
	defer registered.Unlock()
	return append(own(), registered.factories...)
}

// own are the factories of the adapters this package links.
func own() []Factory {
	return []Factory{
		{
			Name:         mock.Name,
			Description:  "in-process Go implementation of the command set with the dummy LM; zero set-up; for unit tests",
			Capabilities: CapabilitiesOf(func(context.Context) (adapter.Adapter, error) { return mock.New(mock.Options{}), nil }),
			LMProviders:  []string{dspgo.ProviderDummy},
			Open: func(_ context.Context, cfg *config.Config) (adapter.Adapter, error) {
				return mock.New(mock.Options{MaxFrameBytes: cfg.Mock.MaxFrameBytes, Seed: cfg.Mock.Seed}), nil
			},
		},
		{
			Name:         memoryName,
			Description:  "one in-memory worker serving the mock's command set over the real framing; protocol tests without Python",
			Capabilities: CapabilitiesOf(openInMemoryPort),
			LMProviders:  []string{dspgo.ProviderDummy},
			Open: func(ctx context.Context, cfg *config.Config) (adapter.Adapter, error) {
				return port.New(ctx, inMemory(PortOptions(cfg)))
			},
		},
		{
			Name:        port.Name,
			Description: "one supervised Python worker process",
			// Asked of the port adapter over an in-memory worker: the port's
			// own features and those the worker announces, as the Python
			// worker announces them too.
			Capabilities: CapabilitiesOf(openInMemoryPort),
			Open: func(ctx context.Context, cfg *config.Config) (adapter.Adapter, error) {
				return port.New(ctx, PortOptions(cfg))
			},
		},
		{
			Name:        pool.Name,
			Description: "a supervised pool of Python workers with queueing, affinity, recycling and health checks",
			Capabilities: CapabilitiesOf(func(ctx context.Context) (adapter.Adapter, error) {
				return pool.New(ctx, pool.Options{Worker: inMemory(port.Options{}), Size: 1})
			}),
			Open: func(ctx context.Context, cfg *config.Config) (adapter.Adapter, error) {
				return pool.New(ctx, PoolOptions(cfg))
			},
		},
	}
}

// memoryName is the name of the in-memory port adapter.
const memoryName = "memory"

// inMemory makes opts serve the mock's command set from an in-memory
// worker instead of a Python process.
func inMemory(opts port.Options) port.Options {
	opts.Name = memoryName
	opts.Handler = func() protocol.Handler { return mock.NewHandler(mock.HandlerOptions{WorkerID: memoryName}) }
	return opts
}

// openInMemoryPort opens a port adapter over an in-memory worker with the
// default options.
func openInMemoryPort(ctx context.Context) (adapter.Adapter, error) {
	return port.New(ctx, inMemory(port.Options{}))
}

// CapabilitiesOf returns a Factory.Capabilities that opens an adapter with
// open, asks it for its Capabilities and closes it. Commands and
// MaxConcurrency, which depend on the worker and the configuration, are
// left zero. Listings call it, so open should start nothing outside the
// process (an in-memory worker, a server on loopback).
func CapabilitiesOf(open func(ctx context.Context) (adapter.Adapter, error)) func(ctx context.Context) (adapter.Capabilities, error) {
	return func(ctx context.Context) (adapter.Capabilities, error) {
		a, err := open(ctx)
		if err != nil {
			return adapter.Capabilities{}, err
		}
		caps := a.Capabilities()
		if err := a.Close(context.WithoutCancel(ctx)); err != nil {
			return adapter.Capabilities{}, err
		}
		caps.Commands, caps.MaxConcurrency = nil, 0
		return caps, nil
	}
}

// registered are the factories adapter packages registered.
var registered struct {
	sync.Mutex
	factories []Factory
}

// Register adds f to the factories Builtin returns. An adapter package
// whose dependencies local programs should not link (the remote adapter's
// NATS) calls it from its init function, so that importing the package,
// for its effect alone if need be, is what makes the adapter available,
// as database/sql drivers and go-cloud's URL openers do. Register panics
// when New would refuse f next to the built-in and registered factories
// (no name, no Open, a name taken); it is meant for program start, not
// for choosing adapters at run time: build a Registry with New for that.
func Register(f Factory) {
	registered.Lock()
	defer registered.Unlock()
	if _, err := New(append(append(own(), registered.factories...), f)...); err != nil {
		panic(err)
	}
	registered.factories = append(registered.factories, f)
}

// linkable are adapters dspgo provides in packages of their own: the
// package whose import registers each, by adapter name.
var linkable = map[string]string{
	"remote": "github.com/dspgo/dspgo/adapters/remote/remoteconfig",
}
