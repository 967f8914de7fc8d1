// Package remoteconfig opens the remote adapter and worker hosts from
// dspgo's configuration (remote.*) and registers the remote adapter with
// the registry. Importing it is what links the remote adapter, and NATS
// with it, into a program; a program that opens only the mock, port or
// pool adapters leaves it out and links no NATS:
//
//	import _ "github.com/dspgo/dspgo/adapters/remote/remoteconfig"
//
// registry.Builtin then lists "remote" too, and so does a registry built
// from it. A registry built from chosen factories takes Factory().
package remoteconfig

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/adapters/remote/embedded"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/registry"
)

func init() { registry.Register(Factory()) }

// Factory returns the remote adapter's factory: worker hosts on any
// number of machines (dspgo workers) reached through NATS, connected as
// remote.* says (Connect). Its workers are shared
// (registry.Factory.SharedWorkers): a caller that sets no lm.* key leaves
// the hosts' LM alone. Its capabilities are asked of a remote adapter on
// an embedded server on loopback, with no host.
func Factory() registry.Factory {
	return registry.Factory{
		Name:          remote.Name,
		Description:   "worker hosts on any number of machines (\"dspgo workers\"), reached through NATS",
		Capabilities:  registry.CapabilitiesOf(openProbe),
		Open:          open,
		SharedWorkers: true,
	}
}

// openProbe opens a remote adapter on an embedded server of its own on
// loopback, whose users are known to this process only; closing the
// adapter stops the server.
func openProbe(ctx context.Context) (adapter.Adapter, error) {
	local, err := embedded.NewLocal()
	if err != nil {
		return nil, err
	}
	srv, err := embedded.Start(ctx, embedded.Options{Port: -1, Users: local.Users()})
	if err != nil {
		return nil, err
	}
	nc, err := remote.Dial(ctx, remote.DialOptions{URL: srv.ClientURL(), User: local.Caller.Name, Password: local.Caller.Password})
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	return openOn(ctx, nc, func() {
		nc.Close()
		srv.Shutdown()
	}, remote.Options{})
}

// open opens the remote adapter cfg describes.
func open(ctx context.Context, cfg *config.Config) (adapter.Adapter, error) {
	nc, release, err := Connect(ctx, cfg, remote.RoleCaller)
	if err != nil {
		return nil, err
	}
	r := cfg.Remote
	return openOn(ctx, nc, release, remote.Options{Prefix: r.Prefix, Heartbeat: r.Heartbeat, Affinity: adapter.Affinity(r.Affinity),
		CallTimeout: cfg.Port.CallTimeout, Replicas: r.Replicas, Logger: cfg.Logger(cfg.LogOutput())})
}

// openOn opens a remote adapter with opts on nc; closing it calls release,
// as does a failure to open.
func openOn(ctx context.Context, nc *nats.Conn, release func(), opts remote.Options) (adapter.Adapter, error) {
	opts.Conn, opts.OnClose = nc, release
	a, err := remote.New(ctx, opts)
	if err != nil {
		release()
		return nil, err
	}
	return a, nil
}
