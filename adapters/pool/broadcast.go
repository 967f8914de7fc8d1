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
// named LM is kept). It returns the first error met.
func (p *Pool) Broadcast(ctx context.Context, req adapter.Request) error {
	if err := wire.Reserved(p.opts.Name, req); err != nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return adapter.Wrap(adapter.ErrClosed, p.opts.Name, req.Command)
	}
	undo := p.broadcasts.Record(req)
	p.st.broadcasts++
	var targets []*port.Adapter
	for _, w := range p.workers {
		if w.state == ready {
			targets = append(targets, w.p)
		}
	}
	p.mu.Unlock()
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
