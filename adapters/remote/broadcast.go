package remote

// Broadcasts: through a host, or recorded in the shared state without one.

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/program"
)

// Broadcast applies req on every host, current and future: the host that
// takes it applies it to all its workers and writes it to the shared
// state, from which every other host applies it; a host that joins later
// replays it at start. Calls made after Broadcast returns are served only
// by hosts that have applied it. It returns the applying host's error.
//
// With no host serving, Broadcast writes req to the shared state itself,
// unchecked, for the hosts that come: a host that finds it invalid, or
// refuses it (its LM allowlist, see HostOptions.LMBaseURLs), logs the
// error and starts without it. Only configure_lm is a broadcast; another
// command is CodeInvalidArgument.
func (a *Adapter) Broadcast(ctx context.Context, req adapter.Request) error {
	_, err := a.call(ctx, req, callOpts{broadcast: true})
	if !errors.Is(err, errNoHost) {
		return err
	}
	if !slices.Contains(broadcastCommands, req.Command) {
		return errorf(adapter.CodeInvalidArgument, a.name, req.Command, "command %q cannot be broadcast (only %s)", req.Command, strings.Join(broadcastCommands, ", "))
	}
	if err := checkLMName(req.Args); err != nil {
		return err // its key could not be written
	}
	var kv jetstream.KeyValue
	kerr := retry(ctx, a.nc, func(ctx context.Context) (err error) {
		kv, _, err = openBucket(ctx, a.nc, a.subj, a.replicas)
		return err
	})
	if kerr != nil {
		return stateError(a.name, req.Command, errors.Join(err, kerr))
	}
	args := program.Replayable(req.Command, req.Args)
	if len(args) == 0 {
		args = []byte("{}")
	}
	var rev uint64
	kerr = retry(ctx, a.nc, func(ctx context.Context) (err error) {
		rev, err = kv.Put(ctx, broadcastKey(req.Command, args), args)
		return err
	})
	if kerr != nil {
		return stateError(a.name, req.Command, errors.Join(err, kerr))
	}
	a.raiseStateRev(rev)
	a.log.Info("no worker host serves: the broadcast is recorded for the hosts to come", "command", req.Command, "revision", rev)
	return nil
}

func (a *Adapter) raiseStateRev(rev uint64) {
	for {
		old := a.stateRev.Load()
		if rev <= old || a.stateRev.CompareAndSwap(old, rev) {
			return
		}
	}
}
