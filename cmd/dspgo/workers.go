package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/adapters/remote/remoteconfig"
	"github.com/dspgo/dspgo/internal/secret"
	"github.com/dspgo/dspgo/registry"
)

func (a *app) workersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "workers",
		Short: "Serve the configured backend (a pool by default) to remote callers through NATS",
		Long: `Run a worker host: open the configured backend (adapter, default a pool of
Python workers, with every pool.* key) and serve it on NATS as the micro
service "dspgo": requests arrive on "<remote.prefix>.call" through the queue
group remote.queue_group, so any number of hosts on any number of machines
share the load. Callers use the "remote" adapter. The backend opens with
the configured LM (lm.*; the mock and memory adapters run only the dummy);
each host then replays the shared state (the LM a caller broadcast, program
specs) before it takes a request.

With --embedded-nats the host also runs a NATS server with JetStream on
remote.embedded.listen, for one machine; other hosts and callers connect to
it with --remote-url. Without remote.embedded.users_file the server makes a
host user and a caller user with random passwords and writes them to a file
only this OS user can read (remote.local_credentials_dir), where this
user's hosts and callers find them; everyone else is refused. On SIGTERM or SIGINT the host drains: it stops taking
requests, finishes those in flight (within stop_timeout), closes its
backend and exits 0.`,
		Example: `  dspgo workers --embedded-nats                      # first host, with the server
  dspgo workers --remote-url nats://127.0.0.1:4222  # a second host
  dspgo conformance --adapter remote                 # a caller`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.serveWorkers(cmd.Context()) },
	}
}

func (a *app) serveWorkers(ctx context.Context) error {
	cfg, err := a.load(nil)
	if err != nil {
		return err
	}
	if cfg.Adapter == remote.Name {
		return usagef("use --adapter pool (or port, memory, mock) for the backend the host serves", "a worker host cannot serve the remote adapter")
	}
	// An adapter no registry has is bad usage, said before connecting: a
	// server that cannot be reached would hide it.
	if _, _, err := a.registry().Resolve(cfg); err != nil {
		return unknownAdapter(err)
	}
	nc, release, err := remoteconfig.Connect(ctx, cfg, remote.RoleHost)
	if err != nil {
		return err
	}
	defer release()
	backend, _, err := a.open(ctx, cfg)
	if err != nil {
		return err
	}
	stopCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), cfg.StopTimeout)
	}
	defer func() {
		c, cancel := stopCtx()
		defer cancel()
		_ = backend.Close(c)
	}()
	// The backend runs the configured LM (Open applied it); the shared
	// state, replayed by Serve, wins.
	opts := remoteconfig.HostOptions(cfg)
	opts.Restore = func(ctx context.Context) error {
		return dspgo.NewClient(backend).ConfigureLM(ctx, registry.LMConfig(cfg))
	}
	if p, ok := backend.(*pool.Pool); ok {
		opts.Stats = func() any { return p.Stats() }
	}
	h, err := remote.Serve(ctx, nc, backend, opts)
	if err != nil {
		return err
	}
	workers := 1
	if st, ok := adapter.StatsOf(backend); ok {
		workers = st.Workers
	}
	if path, err := remoteconfig.LocalCredentialsFile(cfg, nc.ConnectedUrl()); err == nil && path != "" {
		fmt.Fprintf(a.stdout, "dspgo workers: the embedded NATS server's users are in %s, readable by this OS user only\n", path)
	}
	fmt.Fprintf(a.stdout, "dspgo workers: host %s serving %s.call on %s with %s (%d workers)\n",
		h.ID(), cfg.Remote.Prefix, secret.URL(nc.ConnectedUrl()), backend.Name(), workers) // a token in the user name too
	<-ctx.Done()
	start := time.Now()
	c, cancel := stopCtx()
	defer cancel()
	err = h.Close(c)
	fmt.Fprintf(a.stdout, "dspgo workers: host %s drained in %v\n", h.ID(), time.Since(start).Round(time.Millisecond))
	return err
}
