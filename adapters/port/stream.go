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
	ctx    context.Context // the call's: tools run under it
	tools  adapter.Tools
	chunks chan protocol.Chunk // nil when not streaming; capacity: the window
	next   uint64              // the seq the reader expects
	broken chan struct{}       // closed when the worker broke the stream's rules
	why    string
}

// other handles a frame that is not a final response: a chunk, a call to
// a tool, or the worker giving a call up. The reading role's holder runs
// it; it never blocks.
func (c *conn) other(m protocol.WorkerMessage) {
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
	op := req.Command
	if window > 0 && !c.hello.has(protocol.FeatureStream) {
		return nil, &adapter.Error{Code: adapter.CodeUnimplemented, Op: op, Adapter: c.name,
			Message: fmt.Sprintf("worker %s does not stream (no %q in its features)", c.hello.WorkerID, protocol.FeatureStream)}
	}
	id := c.nextID.Add(1)
	ch := make(chan protocol.Response, 1)
	var ex *extra
	if window > 0 || req.Tools != nil {
		callCtx, endCall := context.WithCancel(ctx)
		defer endCall() // ends the request's tool calls still running
		ex = &extra{ctx: callCtx, tools: req.Tools, broken: make(chan struct{})}
		if window > 0 {
			ex.chunks = make(chan protocol.Chunk, window)
		}
	}
	c.mu.Lock()
	c.pending[id] = ch
	if ex != nil {
		c.extras[id] = ex
	}
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		delete(c.extras, id)
		c.mu.Unlock()
	}
	select {
	case <-c.dead:
		forget()
		return nil, notSent(c.failure(op))
	default:
	}
	giveUp := func() {
		forget()
		select {
		case c.cancels <- id:
		default: // the canceller is backed up; the worker finishes the request and its reply is dropped
		}
	}

	preq := protocol.Request{ID: id, Command: req.Command, Args: req.Args, Session: req.Session, Stream: window}
	if deadline, ok := ctx.Deadline(); ok {
		// Rounded up, so the worker never gives up before the host does.
		preq.DeadlineMS = max(1, (time.Until(deadline) + time.Millisecond - 1).Milliseconds())
	}
	if err := c.write(&preq); err != nil {
		forget()
		switch protocol.ErrorKind(err) {
		case "frame_too_large":
			return nil, &adapter.Error{Code: adapter.CodeResourceExhausted, Op: op, Adapter: c.name, Err: err}
		case "":
			return nil, notSent(c.failure(op)) // a partial frame is never run: the worker dies of it
		}
		return nil, &adapter.Error{Code: adapter.CodeInvalidArgument, Op: op, Adapter: c.name, Err: err}
	}

	w := &waiter{id: id, reply: ch, ex: ex}
	var taken uint64
	grants := credit.NewGrants(window)
	ctxEnded := false // take refused a chunk because ctx ended, not because the consumer left
	take := func(ck protocol.Chunk) bool {
		if ctx.Err() != nil {
			ctxEnded = true // no chunk after the deadline or a cancel
			return false
		}
		if !each(ck) {
			return false
		}
		taken++
		if n := grants.Took(); n > 0 {
			grant := protocol.Credit{ID: id, Credit: n}
			_ = c.send(func() error { return c.writer.WriteCredit(&grant) })
		}
		return true
	}
	for {
		got, resp, ck := c.await(ctx, w)
		switch got {
		case gotChunk:
			if !take(ck) {
				giveUp()
				if ctxEnded {
					return nil, adapter.Wrap(ctx.Err(), c.name, op)
				}
				return nil, errStopped
			}
		case gotReply:
			// Every chunk came before the response: hand on the rest.
			for ex != nil && len(ex.chunks) > 0 {
				if !take(<-ex.chunks) {
					forget()
					if ctxEnded {
						return nil, adapter.Wrap(ctx.Err(), c.name, op)
					}
					return nil, errStopped
				}
			}
			forget()
			if window > 0 && (!resp.Streamed || resp.Chunks != taken) {
				return nil, &adapter.Error{Code: adapter.CodeInternal, Op: op, Adapter: c.name,
					Message: fmt.Sprintf("the worker's final response counts %d chunks, the host received %d: the stream lost chunks", resp.Chunks, taken)}
			}
			if !resp.Success {
				return nil, wire.Error(c.name, op, resp.Error)
			}
			return resp.Result, nil
		case gotBroken:
			giveUp()
			return nil, &adapter.Error{Code: adapter.CodeInternal, Op: op, Adapter: c.name, Message: ex.why}
		case gotCtx:
			giveUp()
			return nil, adapter.Wrap(ctx.Err(), c.name, op)
		case gotDead:
			forget()
			return nil, c.failure(op)
		}
	}
}

// errStopped: the consumer of a stream left it; the request was
// cancelled.
var errStopped = adapter.Errorf(adapter.CodeCanceled, "the consumer stopped reading the stream")
