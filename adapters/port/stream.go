package port

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/credit"
	"github.com/dspgo/dspgo/internal/wire"
	"github.com/dspgo/dspgo/protocol"
)

// extra is what a request beyond a plain call needs: its chunks, and the
// tools its worker may call.
type extra struct {
	ctx    context.Context    // the call's: tools run under it
	end    context.CancelFunc // ends ctx when the call returns
	tools  adapter.Tools
	chunks chan protocol.Chunk // nil when not streaming; capacity: the window
	next   uint64              // the seq the reader expects
	broken chan struct{}       // closed when the worker broke the stream's rules
	why    string

	// The consumer's side, touched by the caller only.
	chunk    protocol.Chunk // the chunk being handed on
	grants   credit.Grants
	taken    uint64 // chunks handed to the consumer
	ctxEnded bool   // take refused a chunk because ctx ended, not because the consumer left
}

// other handles a frame that is not a final response: a chunk, a call to
// a tool, or the worker giving a call up. The reading role's holder runs
// it; it never blocks.
func (c *conn) other(m *protocol.WorkerMessage) {
	switch m.Kind {
	case protocol.KindChunk:
		c.mu.Lock()
		ex := c.extras[m.ID]
		c.mu.Unlock()
		if ex == nil || ex.chunks == nil {
			return // the caller has gone: dropped
		}
		if m.Chunk.Seq != ex.next {
			ex.breakStream(fmt.Sprintf("the worker sent chunk %d where %d was due", m.Chunk.Seq, ex.next))
			return
		}
		select {
		case ex.chunks <- m.Chunk:
			ex.next++
			c.role.woke = true
		default:
			ex.breakStream(fmt.Sprintf("the worker sent chunk %d beyond its credit of %d", m.Chunk.Seq, cap(ex.chunks)))
		}
	case protocol.KindCall:
		c.startTool(m.Call)
	case protocol.KindCancel:
		c.mu.Lock()
		cancel := c.toolRun[m.ID]
		c.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	}
}

func (ex *extra) breakStream(why string) {
	select {
	case <-ex.broken:
	default:
		ex.why = why
		close(ex.broken)
	}
}

// startTool runs a worker's call to a host tool on a goroutine of its
// own, under its parent request's context, and answers it.
func (c *conn) startTool(call protocol.Call) {
	c.mu.Lock()
	ex := c.extras[call.Parent]
	var ctx context.Context
	cancel := func() {}
	if ex != nil && ex.tools != nil {
		ctx, cancel = context.WithCancel(ex.ctx)
		c.toolRun[call.ID] = cancel
	}
	c.tools.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.tools.Done()
		var result json.RawMessage
		var err error
		if ctx == nil {
			err = adapter.Errorf(adapter.CodeFailedPrecondition, "request %d is not in flight or carries no tools", call.Parent)
		} else {
			result, err = adapter.CallTool(ctx, ex.tools, call.Tool, call.Args)
			if err == nil && (len(result) == 0 || !json.Valid(result)) {
				err = adapter.Errorf(adapter.CodeInternal, "tool %q returned invalid JSON", call.Tool)
			}
		}
		c.mu.Lock()
		delete(c.toolRun, call.ID)
		c.mu.Unlock()
		cancel()
		resp := wire.Result(call.ID, result, err)
		resp.Kind = protocol.KindResult
		if werr := c.send(func() error { return c.writer.WriteResponse(&resp) }); werr != nil && protocol.ErrorKind(werr) != "" {
			// A result the codec refuses, too large for a frame or not
			// UTF-8: the worker gets the error instead, never nothing.
			refusal := adapter.Errorf(adapter.CodeInvalidArgument, "the result of tool %q cannot be sent to the worker: %v", call.Tool, werr)
			if protocol.ErrorKind(werr) == "frame_too_large" {
				refusal = adapter.Errorf(adapter.CodeResourceExhausted, "the result of tool %q is over the frame limit", call.Tool)
			}
			resp = wire.Result(call.ID, nil, refusal)
			resp.Kind = protocol.KindResult
			_ = c.send(func() error { return c.writer.WriteResponse(&resp) })
		}
	}()
}

// exchange sends req and waits for its final response, handing each
// chunk to each (nil when not streaming, window 0) and granting credit as
// each returns. Tools the worker calls run under ctx. each returning false
// ends the exchange with errStopped and cancels the request.
func (c *conn) exchange(ctx context.Context, req adapter.Request, window int, each func(protocol.Chunk) bool) (json.RawMessage, error) {
	if window > 0 && !c.hello.has(protocol.FeatureStream) {
		return nil, &adapter.Error{Code: adapter.CodeUnimplemented, Op: req.Command, Adapter: c.name,
			Message: fmt.Sprintf("worker %s does not stream (no %q in its features)", c.hello.WorkerID, protocol.FeatureStream)}
	}
	w, err := c.begin(ctx, req, window)
	if err != nil {
		return nil, err
	}
	if w.ex != nil {
		defer w.ex.end() // ends the request's tool calls still running
	}
	return c.finish(ctx, w, req.Command, each)
}

// begin registers a waiter for req under a new id and writes the request.
// Its frame is gone before the caller waits, so the request's encoding
// adds nothing to a waiting caller's stack.
func (c *conn) begin(ctx context.Context, req adapter.Request, window int) (*waiter, error) {
	op := req.Command
	w := getWaiter(c.nextID.Add(1))
	if window > 0 || req.Tools != nil {
		ex := &extra{tools: req.Tools, broken: make(chan struct{})}
		ex.ctx, ex.end = context.WithCancel(ctx)
		if window > 0 {
			ex.chunks = make(chan protocol.Chunk, window)
			ex.grants = credit.NewGrants(window)
		}
		w.ex = ex
	}
	c.mu.Lock()
	c.pending[w.id] = w
	if w.ex != nil {
		c.extras[w.id] = w.ex
	}
	c.mu.Unlock()
	fail := func(err error) (*waiter, error) {
		c.forget(w)
		if w.ex != nil {
			w.ex.end()
		}
		return nil, err
	}
	select {
	case <-c.dead:
		return fail(notSent(c.failure(op)))
	default:
	}
	preq := protocol.Request{ID: w.id, Command: req.Command, Args: req.Args, Session: req.Session, Stream: window}
	if deadline, ok := ctx.Deadline(); ok {
		// Rounded up, so the worker never gives up before the host does.
		preq.DeadlineMS = max(1, (time.Until(deadline) + time.Millisecond - 1).Milliseconds())
	}
	if err := c.write(&preq); err != nil {
		switch protocol.ErrorKind(err) {
		case "frame_too_large":
			return fail(&adapter.Error{Code: adapter.CodeResourceExhausted, Op: op, Adapter: c.name, Err: err})
		case "":
			return fail(notSent(c.failure(op))) // a partial frame is never run: the worker dies of it
		}
		return fail(&adapter.Error{Code: adapter.CodeInvalidArgument, Op: op, Adapter: c.name, Err: err})
	}
	return w, nil
}

// finish waits for w's final response, handing its chunks on to each.
func (c *conn) finish(ctx context.Context, w *waiter, op string, each func(protocol.Chunk) bool) (json.RawMessage, error) {
	ex := w.ex
	for {
		switch c.await(ctx, w) {
		case gotChunk:
			if !c.take(ctx, w, each) {
				c.giveUp(w)
				return nil, c.stopped(ctx, w, op)
			}
		case gotReply:
			// Every chunk came before the response: hand on the rest.
			for ex != nil && len(ex.chunks) > 0 {
				ex.chunk = <-ex.chunks
				if !c.take(ctx, w, each) {
					c.forget(w)
					return nil, c.stopped(ctx, w, op)
				}
			}
			if ex != nil {
				c.forget(w) // its extras: route took it out of pending already
			}
			resp := &w.resp
			if ex != nil && ex.chunks != nil && (!resp.Streamed || resp.Chunks != ex.taken) {
				return nil, &adapter.Error{Code: adapter.CodeInternal, Op: op, Adapter: c.name,
					Message: fmt.Sprintf("the worker's final response counts %d chunks, the host received %d: the stream lost chunks", resp.Chunks, ex.taken)}
			}
			result, err := resp.Result, error(nil)
			if !resp.Success {
				err = wire.Error(c.name, op, resp.Error)
			}
			if ex == nil {
				putWaiter(w) // its reply was delivered: nobody holds it any more
			}
			return result, err
		case gotBroken:
			c.giveUp(w)
			return nil, &adapter.Error{Code: adapter.CodeInternal, Op: op, Adapter: c.name, Message: ex.why}
		case gotCtx:
			c.giveUp(w)
			return nil, adapter.Wrap(ctx.Err(), c.name, op)
		case gotDead:
			c.forget(w)
			return nil, c.failure(op)
		}
	}
}

// take hands w.ex.chunk to each and grants the worker credit for it; false
// when ctx has ended (no chunk after the deadline or a cancel) or each
// refused it.
func (c *conn) take(ctx context.Context, w *waiter, each func(protocol.Chunk) bool) bool {
	ex := w.ex
	if ctx.Err() != nil {
		ex.ctxEnded = true
		return false
	}
	if !each(ex.chunk) {
		return false
	}
	ex.taken++
	if n := ex.grants.Took(); n > 0 {
		grant := protocol.Credit{ID: w.id, Credit: n}
		_ = c.send(func() error { return c.writer.WriteCredit(&grant) })
	}
	return true
}

// stopped is the error of a stream that take ended.
func (c *conn) stopped(ctx context.Context, w *waiter, op string) error {
	if w.ex.ctxEnded {
		return adapter.Wrap(ctx.Err(), c.name, op)
	}
	return errStopped
}

// forget unregisters w: a reply for it that comes later is dropped.
func (c *conn) forget(w *waiter) {
	c.mu.Lock()
	delete(c.pending, w.id)
	delete(c.extras, w.id)
	c.mu.Unlock()
}

// giveUp unregisters w and asks the worker to cancel its request.
func (c *conn) giveUp(w *waiter) {
	c.forget(w)
	select {
	case c.cancels <- w.id:
	default: // the canceller is backed up; the worker finishes the request and its reply is dropped
	}
}

// errStopped: the consumer of a stream left it; the request was
// cancelled.
var errStopped = adapter.Errorf(adapter.CodeCanceled, "the consumer stopped reading the stream")
