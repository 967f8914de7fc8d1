package pool

import (
	"context"
	"errors"
	"sync"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
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
// the first error met, and a refused broadcast is not recorded.
func (p *Pool) Broadcast(ctx context.Context, req adapter.Request) error {
	if err := wire.Reserved(p.opts.Name, req); err != nil {
		return err
	}
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
	targets := p.readyLocked()
	p.mu.Unlock()
	if len(targets) == 0 {
		err := p.onWorker(ctx, req, func(w *port.Adapter) (bool, error) { return false, w.Broadcast(ctx, req) })
		if err != nil && !errors.Is(err, adapter.ErrClosed) {
			p.mu.Lock()
			p.broadcasts.Restore(undo)
			p.mu.Unlock()
		}
		return err
	}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = t.Broadcast(ctx, req)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, adapter.ErrClosed) { // a worker retired meanwhile
			// Refused: workers started later get what the others run.
			p.mu.Lock()
			p.broadcasts.Restore(undo)
			p.mu.Unlock()
			return err
		}
	}
	return nil
}

// readyLocked returns the ready workers' adapters. The caller holds p.mu.
func (p *Pool) readyLocked() []*port.Adapter {
	var out []*port.Adapter
	for _, w := range p.workers {
		if w.state == ready {
			out = append(out, w.p)
		}
	}
	return out
}
