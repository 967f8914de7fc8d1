package remote

// Serving calls: taking, running and answering them; their cancels, credit and probes.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/credit"
)

// take registers a request and serves it on a goroutine of its own: the
// subscription delivers one message at a time.
func (h *Host) take(req micro.Request) {
	reply := req.Reply()
	if reply == "" {
		return // a publish without a reply subject cannot be answered
	}
	if !isInbox(reply) {
		// The host answers only inboxes: a reply subject elsewhere (the
		// state bucket, another host's subjects) would make it write
		// there on the sender's behalf.
		h.log.Warn("dropped a request whose reply subject is not an inbox", "reply", reply, "command", req.Headers().Get(hdrCommand))
		return
	}
	hdr := req.Headers()
	var ctx context.Context
	var cancel context.CancelFunc
	if n, err := strconv.ParseInt(hdr.Get(hdrDeadline), 10, 64); err == nil && n > 0 {
		ctx, cancel = context.WithTimeout(h.callCtx, time.Duration(n)*time.Millisecond)
	} else {
		ctx, cancel = context.WithCancel(h.callCtx)
	}
	data := req.Data()
	hc := &hostCall{cancel: cancel, started: time.Now(), bytes: int64(len(data)) + headerBytes(hdr) + callBytes}
	if w, err := strconv.Atoi(hdr.Get(hdrStream)); err == nil && w > 0 {
		hc.credit = credit.New(w)
	}
	h.inFlightMu.Lock()
	var refusal error
	cmd := hdr.Get(hdrCommand)
	switch held, prev := h.bytes, h.inFlight[reply]; {
	case prev != nil && !prev.answered():
		// Each call has a reply subject of its own: another with the
		// same one would take over the first's cancellation and credit.
		refusal = errorf(adapter.CodeInvalidArgument, Name, cmd, "a call with this reply subject is in flight on host %q", h.id)
	case h.maxBytes > 0 && held > 0 && held+hc.bytes > h.maxBytes:
		refusal = errorf(adapter.CodeResourceExhausted, Name, cmd,
			"host %q holds %d bytes of requests in flight, and this one's %d would pass its limit of %d (HostOptions.MaxInFlightBytes, remote.max_in_flight_bytes): retry later",
			h.id, held, hc.bytes, h.maxBytes)
	}
	if refusal != nil {
		h.inFlightMu.Unlock()
		cancel()
		h.respond(reply, cmd, adapter.Response{}, 0, -1, refusal)
		return
	}
	h.inFlight[reply] = hc // a call answered with this reply subject leaves it to this one
	h.bytes += hc.bytes
	h.inFlightMu.Unlock()
	h.counter.Begin()
	h.serving.Add(1)
	go h.serve(ctx, reply, nats.Header(hdr), data, hc)
}

// headerBytes is the size of a request's headers, which the host keeps as
// long as the call as its arguments.
func headerBytes(hdr micro.Headers) int64 {
	n := 0
	for k, vs := range hdr {
		for _, v := range vs {
			n += len(k) + len(v) + 4 // "k: v\r\n"
		}
	}
	return int64(n)
}

// answerProbe tells the caller of a call that fell silent whether the
// host still has it: a heartbeat if so, statusUnknown if not (it ended
// and its reply was lost, or it never came). The final reply of a call
// goes out before the call leaves inFlight (see serve), so statusUnknown
// never overtakes it. Only the call's own caller may ask: the probe's
// reply subject must be the call's probe subject, on an inbox.
func (h *Host) answerProbe(reply, call string) {
	if reply != probeSubject(call) || !isInbox(reply) {
		h.log.Warn("dropped a probe whose reply subject is not its call's", "reply", reply, "call", call)
		return
	}
	h.inFlightMu.Lock()
	_, ok := h.inFlight[call]
	h.inFlightMu.Unlock()
	m := nats.NewMsg(reply)
	m.Header.Set(hdrHost, h.id)
	if ok {
		m.Header.Set(hdrStatus, statusWorking)
		m.Header.Set(hdrBeatMs, strconv.FormatInt(h.beat.Milliseconds(), 10))
	} else {
		m.Header.Set(hdrStatus, statusUnknown)
	}
	_ = h.nc.PublishMsg(m)
}

// grantCredit takes a stream caller's credit.
func (h *Host) grantCredit(m *nats.Msg) {
	hdr := m.Header
	n, err := strconv.Atoi(hdr.Get(hdrCredit))
	if err != nil || n <= 0 {
		return
	}
	h.inFlightMu.Lock()
	c := h.inFlight[hdr.Get(hdrReplyTo)]
	h.inFlightMu.Unlock()
	if c != nil && c.credit != nil {
		c.credit.Add(n)
	}
}

// cancelCall takes a caller's cancellation of a call (its body names the
// call's reply subject), or a probe of a call (see answerProbe).
func (h *Host) cancelCall(m *nats.Msg) {
	if call := m.Header.Get(hdrProbe); call != "" {
		h.answerProbe(m.Reply, call)
		return
	}
	h.inFlightMu.Lock()
	c := h.inFlight[string(m.Data)]
	h.inFlightMu.Unlock()
	if c != nil {
		c.cancel()
	}
}

func (h *Host) serve(ctx context.Context, reply string, hdr nats.Header, args []byte, hc *hostCall) {
	defer h.serving.Done()
	cmd := hdr.Get(hdrCommand)
	chunks := int64(-1)
	call := h.a.Call
	if cr := hc.credit; cr != nil {
		chunks = 0
		call = func(ctx context.Context, req adapter.Request) (adapter.Response, error) {
			return h.stream(ctx, reply, req, cr, &chunks)
		}
	}
	resp, rev, err := h.run(ctx, cmd, reply, hdr, args, call)
	h.counter.End(err)
	// The call is answered before its reply goes out: a caller that sends
	// its next request once it has the reply is never refused for the
	// bytes of the call it no longer waits on, nor for its reply subject.
	h.inFlightMu.Lock()
	h.bytes -= hc.bytes
	hc.bytes = 0
	h.inFlightMu.Unlock()
	// The reply goes out before the call leaves inFlight: a probe never
	// hears that the host has no such call before the reply is sent, and
	// Close, which waits for inFlight to empty, never returns (and lets
	// its caller close the connection) before the replies are sent.
	h.respond(reply, cmd, resp, rev, chunks, err)
	hc.cancel()
	h.inFlightMu.Lock()
	if h.inFlight[reply] == hc { // not a later call's with the same reply subject
		delete(h.inFlight, reply)
	}
	if len(h.inFlight) == 0 {
		h.idle.Broadcast()
	}
	h.inFlightMu.Unlock()
}

// stream runs req on the backend as a stream, sending each chunk to the
// caller as its credit allows; it returns the final result.
func (h *Host) stream(ctx context.Context, reply string, req adapter.Request, cr *credit.Window, sent *int64) (adapter.Response, error) {
	s, ok := h.a.(adapter.Streamer)
	if !ok || !h.a.Capabilities().Streaming {
		return adapter.Response{}, errorf(adapter.CodeUnimplemented, Name, req.Command, "host %q: its backend %q does not stream", h.id, h.a.Name())
	}
	for c, err := range s.Stream(ctx, req) {
		switch {
		case err != nil:
			return adapter.Response{}, err
		case c.Response != nil:
			return *c.Response, nil
		}
		if err := cr.Take(ctx); err != nil {
			return adapter.Response{}, adapter.Wrap(err, Name, req.Command)
		}
		m := nats.NewMsg(reply)
		m.Header.Set(hdrStatus, statusChunk)
		m.Header.Set(hdrHost, h.id)
		m.Header.Set(hdrSeq, strconv.FormatInt(*sent, 10))
		m.Data = c.Data
		if err := h.nc.PublishMsg(m); err != nil {
			return adapter.Response{}, &adapter.Error{Code: adapter.CodeUnavailable, Op: req.Command, Adapter: Name, Err: fmt.Errorf("sending a chunk: %w", err)}
		}
		*sent++
	}
	return adapter.Response{}, errorf(adapter.CodeInternal, Name, req.Command, "the backend's stream ended without a result")
}

// toolProxy runs a caller's tools for a request: each call goes back to
// the caller through NATS, under the request's context.
type toolProxy struct {
	nc      *nats.Conn
	subject string
}

// CallTool calls the caller's tool and returns its result.
func (t toolProxy) CallTool(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
	m := nats.NewMsg(t.subject)
	m.Header.Set(hdrTool, name)
	m.Data = args
	r, err := t.nc.RequestMsgWithContext(ctx, m)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, errorf(adapter.CodeUnavailable, Name, "tool", "tool %q: the caller is gone", name)
	case err != nil:
		return nil, adapter.Wrap(err, Name, "tool")
	}
	if err := replyError(r, Name, "tool", "the caller"); err != nil {
		return nil, err
	}
	return r.Data, nil
}

// run executes one request, with the shared state's help.
func (h *Host) run(ctx context.Context, cmd, reply string, hdr nats.Header, args []byte, call func(context.Context, adapter.Request) (adapter.Response, error)) (adapter.Response, uint64, error) {
	if cmd == "" {
		return adapter.Response{}, 0, errorf(adapter.CodeInvalidArgument, Name, "", "request without the %s header", hdrCommand)
	}
	if rev := headerUint(hdr, hdrStateRev); rev > 0 {
		if err := h.waitState(ctx, rev); err != nil {
			return adapter.Response{}, 0, adapter.Wrap(err, Name, cmd)
		}
	}
	req := adapter.Request{Command: cmd, Args: args, Session: hdr.Get(hdrSession)}
	if subject := hdr.Get(hdrTools); subject != "" {
		if subject != toolsSubject(reply) {
			return adapter.Response{}, 0, errorf(adapter.CodeInvalidArgument, Name, cmd, "the %s header must name the tools subject of the request's own inbox", hdrTools)
		}
		req.Tools = toolProxy{nc: h.nc, subject: subject}
	}
	if hdr.Get(hdrBcast) != "" {
		rev, err := h.broadcast(ctx, req)
		return adapter.Response{Result: json.RawMessage(`{}`)}, rev, err
	}
	checked, err := h.checkLM(cmd, req.Args)
	if err != nil {
		return adapter.Response{}, 0, err
	}
	req.Args = checked
	resp, err := call(ctx, req)
	switch cmd {
	case command.CreateProgram:
		if err == nil {
			h.recordSpec(ctx, args, resp.Result)
		}
	case command.ExecuteProgram:
		if isSpecNotFound(err) {
			if withSpec := h.fetchSpec(ctx, args); withSpec != nil {
				req.Args = withSpec
				resp, err = call(ctx, req)
			}
		}
	case command.DeleteProgram:
		if err == nil || adapter.CodeOf(err) == adapter.CodeNotFound {
			h.forgetSpec(ctx, args)
		}
	case command.Reset:
		if err == nil {
			err = h.restoreShared(ctx)
		}
	}
	return resp, 0, err
}

// respond sends the final reply of a call.
func (h *Host) respond(reply, cmd string, resp adapter.Response, rev uint64, chunks int64, err error) {
	m := nats.NewMsg(reply)
	m.Header.Set(hdrHost, h.id)
	if chunks >= 0 {
		m.Header.Set(hdrChunks, strconv.FormatInt(chunks, 10))
	}
	if err == nil {
		m.Data = resp.Result
		if resp.Worker != "" {
			m.Header.Set(hdrWorker, resp.Worker)
		}
		if rev > 0 {
			m.Header.Set(hdrStateRev, strconv.FormatUint(rev, 10))
		}
		if int64(len(m.Data)+1024) > h.nc.MaxPayload() {
			err = errorf(adapter.CodeResourceExhausted, Name, cmd, "the result of %d bytes is over the server's payload limit of %d bytes", len(m.Data), h.nc.MaxPayload())
		}
	}
	if err != nil {
		setError(m, err)
		m.Header.Del(hdrWorker)
	}
	if perr := h.nc.PublishMsg(m); perr != nil {
		h.log.Warn("sending a reply failed", "command", cmd, "err", perr)
	}
}
