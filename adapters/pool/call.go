package pool

import (
	"context"
	"errors"
	"iter"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/wire"
)

// Call runs one command on a worker: the session's worker under affinity,
// else the least loaded. A call that never reached its worker (the worker
// died first) is sent to another. The commands only the pool's workers'
// adapters send (protocol.Reserved: shutdown, cancel, the init ping) are
// refused with CodeInvalidArgument, as by Stream and Broadcast: a caller
// can never stop or confuse a worker.
func (p *Pool) Call(ctx context.Context, req adapter.Request) (adapter.Response, error) {
	p.counter.Begin()
	var resp adapter.Response
	err := p.onWorker(ctx, req, func(pa *port.Adapter) (bool, error) {
		var err error
		resp, err = pa.Call(ctx, req)
		return false, err
	})
	p.counter.End(err)
	return resp, err
}

// Stream runs req as a stream on one worker (see adapter.Streamer), which
// it holds until the stream ends. A worker that died before it got the
// request is replaced, as for Call; once a chunk has been yielded the
// stream is never resent.
func (p *Pool) Stream(ctx context.Context, req adapter.Request) iter.Seq2[adapter.Chunk, error] {
	return func(yield func(adapter.Chunk, error) bool) {
		p.counter.Begin()
		stopped := false
		err := p.onWorker(ctx, req, func(pa *port.Adapter) (yielded bool, err error) {
			for c, err := range pa.Stream(ctx, req) {
				if err != nil {
					return yielded, err
				}
				yielded = true
				if !yield(c, nil) {
					stopped = true
					return true, nil
				}
			}
			return yielded, nil
		})
		p.counter.End(err)
		if err != nil && !stopped {
			yield(adapter.Chunk{}, err)
		}
	}
}

// onWorker runs req with run on a worker it checks out, and releases the
// worker after. When the request never reached the worker (port.ErrNotSent:
// it died first) and run handed nothing to the caller yet (delivered
// false), the request goes to another worker, at most once per worker the
// pool may have, and never under AffinityStrict, whose session has only
// its own worker. A call that Close cut fails with ErrClosed.
func (p *Pool) onWorker(ctx context.Context, req adapter.Request, run func(*port.Adapter) (delivered bool, err error)) error {
	op := req.Command
	if err := wire.Reserved(p.opts.Name, req); err != nil {
		return err // never reaches a worker
	}
	if err := ctx.Err(); err != nil {
		return adapter.Wrap(err, p.opts.Name, op)
	}
	for attempt := 0; ; attempt++ {
		w, err := p.checkout(ctx, req.Session, op)
		if err != nil {
			return err
		}
		delivered, err := run(w.p)
		p.release(w, err == nil)
		if err != nil && !delivered && errors.Is(err, port.ErrNotSent) &&
			p.opts.Affinity != adapter.AffinityStrict && attempt < p.opts.Size+p.opts.MaxOverflow {
			continue
		}
		if p.cutByClose(ctx, err) {
			err = wire.Closed(p.opts.Name, op)
		}
		return err
	}
}

// cutByClose reports whether err ended a call because Close stopped its
// worker under it (killed, or cancelled by its shutdown) rather than for
// the call's own sake.
func (p *Pool) cutByClose(ctx context.Context, err error) bool {
	if err == nil || !p.isClosed() {
		return false
	}
	code := adapter.CodeOf(err)
	return errors.Is(err, adapter.ErrClosed) || code == adapter.CodeUnavailable || code == adapter.CodeCanceled && ctx.Err() == nil
}
