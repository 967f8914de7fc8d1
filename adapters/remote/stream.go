package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/dspgo/dspgo/adapter"
)

// DefaultStreamWindow is the credit of a remote stream: the chunks a host
// may send ahead of the consumer.
const DefaultStreamWindow = 16

// errStopped: the consumer left the stream; the host was told.
var errStopped = adapter.Errorf(adapter.CodeCanceled, "the consumer stopped reading the stream")

// Stream runs req on a host as a stream (see adapter.Streamer). The host
// streams from its own backend, and sends at most DefaultStreamWindow
// chunks ahead of the range loop, which grants it more as it takes them.
// Leaving the loop early cancels the request on the host.
func (a *Adapter) Stream(ctx context.Context, req adapter.Request) iter.Seq2[adapter.Chunk, error] {
	return func(yield func(adapter.Chunk, error) bool) {
		var seq uint64
		stopped := false
		resp, err := a.call(ctx, req, callOpts{window: DefaultStreamWindow, each: func(m *nats.Msg) bool {
			seq++
			if !yield(adapter.Chunk{Seq: seq - 1, Data: m.Data}, nil) {
				stopped = true
				return false
			}
			return true
		}})
		switch {
		case stopped:
		case err != nil:
			yield(adapter.Chunk{}, err)
		default:
			yield(adapter.Chunk{Seq: seq, Response: &resp}, nil)
		}
	}
}

// onChunk queues a chunk of a streamed call; one out of order or beyond
// the credit breaks the stream instead of being buffered.
func (a *Adapter) onChunk(p *pending, m *nats.Msg) {
	if h := m.Header.Get(hdrHost); h != "" {
		p.host.Store(&h)
	}
	if p.chunks == nil {
		return
	}
	seq := headerUint(m.Header, hdrSeq)
	switch {
	case seq > p.next:
		// NATS drops messages only while a connection is down.
		p.breakStream(adapter.CodeUnavailable, fmt.Sprintf("chunks %d to %d of the stream were lost on the way (the connection dropped them)", p.next, seq-1))
		return
	case seq < p.next:
		p.breakStream(adapter.CodeInternal, fmt.Sprintf("the host sent chunk %d where %d was due", seq, p.next))
		return
	}
	select {
	case p.chunks <- m:
		p.next++
	default:
		p.breakStream(adapter.CodeInternal, fmt.Sprintf("the host sent chunk %d beyond its credit of %d", seq, cap(p.chunks)))
	}
}

func (p *pending) breakStream(code adapter.Code, why string) {
	p.breakOne.Do(func() {
		p.whyCode, p.why = code, why
		close(p.broken)
	})
}

// grant sends the host of a stream n more chunks of credit.
func (a *Adapter) grant(p *pending, reply string, n int) {
	h := p.host.Load()
	if h == nil {
		return // no chunk has come yet, so no credit is owed
	}
	m := nats.NewMsg(a.subj.hostCredit(*h))
	m.Header.Set(hdrReplyTo, reply)
	m.Header.Set(hdrCredit, strconv.Itoa(n))
	a.tellMsg(m)
}

// runTool runs a tool a host calls for the call p, and answers the host.
// A call that has ended, or carries no tools, is refused.
func (a *Adapter) runTool(p *pending, m *nats.Msg) {
	name := m.Header.Get(hdrTool)
	if p == nil || p.tools == nil {
		a.answerTool(m, name, nil, adapter.Errorf(adapter.CodeFailedPrecondition, "tool %q: the call is over or carries no tools", name))
		return
	}
	a.toolRuns.Add(1)
	go func() {
		defer a.toolRuns.Done()
		result, err := adapter.CallTool(p.ctx, p.tools, name, json.RawMessage(m.Data))
		a.answerTool(m, name, result, err)
	}()
}

func (a *Adapter) answerTool(m *nats.Msg, name string, result json.RawMessage, err error) {
	r := nats.NewMsg(m.Reply)
	if err == nil && !json.Valid(result) {
		err = adapter.Errorf(adapter.CodeInternal, "tool %q returned invalid JSON", name)
	}
	if err != nil {
		setError(r, err)
	} else {
		r.Data = result
	}
	_ = a.nc.PublishMsg(r)
}
