package pool

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/replay"
	"github.com/dspgo/dspgo/internal/wire"
)

// Broadcast runs req on every ready worker and records it for every
// worker started later, in order, so no worker runs with another
// configuration. A later broadcast of the same command replaces the
// recorded one; for configure_lm, the one of the same LM name (every
// named LM is kept). With no worker ready (a lazy pool before its first
// call, every worker restarting) it runs req on the first worker a call
// would get, starting one if the pool is lazy, so that a broadcast no
// worker takes is refused now rather than recorded unchecked. It returns
// the first error met, and a refused broadcast is not recorded: the
// record goes back to what it was, and every worker that may have applied
// it (one that accepted it, one whose answer never came, one started
// while it ran) is recycled, so that after Broadcast returns every worker
// that takes calls runs the recorded configuration again. Broadcasts of
// one key (two configure_lm of one LM name) run one after the other, so
// that they reach the record and every worker in one order.
func (p *Pool) Broadcast(ctx context.Context, req adapter.Request) error {
	if err := wire.Reserved(p.opts.Name, req); err != nil {
		return err
	}
	done, err := p.turns.Take(ctx, req)
	if err != nil {
		return adapter.Wrap(err, p.opts.Name, req.Command)
	}
	defer done()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return adapter.Wrap(adapter.ErrClosed, p.opts.Name, req.Command)
	}
	none := p.countLocked(func(w *worker) bool { return w.state == ready }) == 0
	p.mu.Unlock()
	if none {
		select {
		case p.checking <- struct{}{}:
			defer func() { <-p.checking }()
		case <-ctx.Done():
			return adapter.Wrap(ctx.Err(), p.opts.Name, req.Command)
		case <-p.life.Done():
			return adapter.Wrap(adapter.ErrClosed, p.opts.Name, req.Command)
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return adapter.Wrap(adapter.ErrClosed, p.opts.Name, req.Command)
	}
	undo := p.broadcasts.Record(req)
	p.st.broadcasts++
	p.recorded++
	seq := p.recorded
	targets := p.readyLocked()
	p.mu.Unlock()
	if len(targets) == 0 {
		// Every worker ready from now on went into service after the
		// record, the one that runs req too: takeBack finds them all.
		err := p.onWorker(ctx, req, func(w *port.Adapter) (bool, error) { return false, w.Broadcast(ctx, req) })
		if err != nil && !errors.Is(err, adapter.ErrClosed) {
			p.takeBack(undo, seq, nil)
		}
		return err
	}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = t.p.Broadcast(ctx, req)
		}()
	}
	wg.Wait()
	var refusal error
	for _, err := range errs {
		if err != nil && !errors.Is(err, adapter.ErrClosed) { // ErrClosed: a worker retired meanwhile
			refusal = err
			break
		}
	}
	if refusal == nil {
		return nil
	}
	var applied []*worker
	for i, err := range errs {
		if mayHaveApplied(err) {
			applied = append(applied, targets[i])
		}
	}
	p.takeBack(undo, seq, applied)
	return refusal
}

// mayHaveApplied reports whether a worker whose port.Adapter.Broadcast
// returned err may run the broadcast: it accepted it (nil: the port also
// returns nil when its worker died with the broadcast, which the restarted
// worker then gets from the port's own record), or its answer never came
// (the context ended first, the call timed out). Only the worker's own
// refusal says that it did not apply it: a worker applies a broadcast
// only when it succeeds. Any other error counts as applied, one the port
// raised before sending too (a frame over the limit), at the cost of a
// needless recycle. A worker closed meanwhile (ErrClosed) runs nothing.
func mayHaveApplied(err error) bool {
	return err == nil || wire.Remote(err) == nil && !errors.Is(err, adapter.ErrClosed)
}

// takeBack undoes a refused broadcast, recorded as the seq-th: the record
// goes back to what it was, and the workers that may have applied it are
// recycled, so that their replacements start from the record. Those are
// the workers in applied, and those that went into service after it was
// recorded: they were given it by the replay. Workers still starting see
// the refusal (Pool.refusals) and start again (see run). A broadcast the
// same as the one the record holds after it (a configure_lm sent again)
// changed nothing on the workers that applied it: nothing is recycled.
//
// Recycling, rather than sending the workers what they ran before, is the
// one undo that always exists: a named LM that was not configured before
// cannot be unconfigured, nor can a reset or a command of the worker's
// handlers be taken back, and a worker's port keeps its own record of the
// broadcast, which it would replay after a crash. A fresh worker runs
// exactly the record. The recycled workers drain as for any recycling:
// they take no new call, the calls they run, which began while the
// broadcast ran, finish, and their sessions bind anew (under
// AffinityStrict, a session's next call is told ErrSessionWorkerGone).
func (p *Pool) takeBack(undo replay.Undo, seq uint64, applied []*worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.broadcasts.Restore(undo) || p.closed {
		return // the same as the record (a configuration sent again), or every worker stops
	}
	p.refusals++
	for _, w := range slices.Clone(p.workers) {
		if w.state == ready && (w.recorded >= seq || slices.Contains(applied, w)) {
			p.retireLocked(w, "broadcast_refused")
		}
	}
	p.growLocked() // a lazy pool starts no replacement, but its waiters need one
}

// readyLocked returns the ready workers. The caller holds p.mu.
func (p *Pool) readyLocked() []*worker {
	var out []*worker
	for _, w := range p.workers {
		if w.state == ready {
			out = append(out, w)
		}
	}
	return out
}
