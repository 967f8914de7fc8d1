// Package adapter defines the contract every dspgo backend implements.
//
// A backend (the in-process mock, one Python worker process, a pool of
// workers, or a third-party driver) is an Adapter: it takes a Request naming
// a command of the worker command set and returns a Response carrying the raw
// JSON result. The typed user API in package dspgo is built on top of it.
//
// Rules every implementation keeps:
//   - Adapters are values, never singletons: two instances never share state.
//   - An adapter returned by its constructor is ready to use; there is no
//     separate start step that can be forgotten.
//   - Close is idempotent, and every call after it fails with ErrClosed.
//   - Every error carries one Code (see Error and CodeOf); context errors map
//     to CodeCanceled and CodeDeadlineExceeded.
//
// This package depends on the standard library only.
package adapter

import (
	"context"
	"encoding/json"
	"iter"
	"sync/atomic"
	"time"
)

// Adapter is a backend that executes worker commands.
//
// Implementations are safe for concurrent use by multiple goroutines.
type Adapter interface {
	// Name returns the adapter's registered name, such as "mock", "port" or
	// "pool". It is used in errors and logs.
	Name() string

	// Call executes one command and returns its raw JSON result. Call
	// honours ctx: when ctx ends first, Call returns promptly with an error
	// whose code is CodeCanceled or CodeDeadlineExceeded, and a reply that
	// arrives later is discarded, never handed to another caller.
	Call(ctx context.Context, req Request) (Response, error)

	// Capabilities reports what the adapter supports. It does not block.
	Capabilities() Capabilities

	// Close releases every resource the adapter holds: processes,
	// goroutines, file descriptors. It returns when they are gone or ctx
	// ends. Close is idempotent: later calls return the first call's result.
	// Every Call after Close fails with ErrClosed.
	Close(ctx context.Context) error
}

// Statser is implemented by adapters that report counters.
type Statser interface {
	// Stats returns a snapshot of the adapter's counters. It does not block
	// on calls in flight.
	Stats() Stats
}

// StatsReporter is implemented by adapters whose Stats method returns a
// richer type of their own (the pool's Stats lists every worker), so they
// cannot be Statsers: AdapterStats returns the common counters.
type StatsReporter interface {
	// AdapterStats returns a snapshot of the adapter's counters.
	AdapterStats() Stats
}

// StatsOf returns a's counters when it reports them, through Statser or
// StatsReporter; the second result is false when it does not.
func StatsOf(a Adapter) (Stats, bool) {
	switch s := a.(type) {
	case Statser:
		return s.Stats(), true
	case StatsReporter:
		return s.AdapterStats(), true
	}
	return Stats{Adapter: a.Name()}, false
}

// Broadcaster is implemented by adapters that run more than one worker. A
// broadcast request reaches every current worker and is replayed to every
// worker started later, in the order broadcasts were made, so no worker ever
// runs with an older configuration than the others.
type Broadcaster interface {
	// Broadcast executes req on every current worker and records it for
	// workers started later. It returns the first error met, if any.
	Broadcast(ctx context.Context, req Request) error
}

// Request is one command for a worker.
type Request struct {
	// Command names the command, such as "ping" or "execute_program".
	// It must not be empty.
	Command string

	// Args is the command's JSON object of arguments. Nil means no
	// arguments and is sent as an empty object.
	Args json.RawMessage

	// Session is the session the request belongs to. Backends with several
	// workers use it for affinity; it never changes a result. Empty means
	// no session.
	Session string

	// Tools runs the host functions the worker may call while it serves
	// the request, with the request's deadline and cancellation. Nil
	// means none: a worker's call fails with CodeFailedPrecondition.
	Tools Tools
}

// Tools runs host functions that a worker calls while it serves a
// request (the tools of a ReAct agent). Implementations are safe for
// concurrent use: many calls may run at once.
type Tools interface {
	// CallTool runs tool name with its JSON arguments and returns its
	// JSON result. An unknown name is CodeNotFound. ctx ends when the
	// request does.
	CallTool(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error)
}

// Streamer is implemented by adapters that stream results: the worker
// sends pieces of the result as it produces them, and the final result
// last.
type Streamer interface {
	// Stream runs req as Call does and yields each chunk in order as it
	// arrives, then one last Chunk whose Response is set (the final
	// result); or an error, always last. Nothing runs until the sequence
	// is ranged over. The producer waits for the consumer: the adapter
	// grants it a bounded window of chunks and tops it up as the range
	// loop takes them, so a slow consumer never makes anything buffer
	// without bound. Leaving the loop early, or ctx ending, cancels the
	// producer on the worker, which runs its clean-up.
	Stream(ctx context.Context, req Request) iter.Seq2[Chunk, error]
}

// Chunk is one element of a stream: a piece of the result, or the end.
type Chunk struct {
	// Seq counts the stream's chunks from 0.
	Seq uint64

	// Data is the piece, as the worker sent it; nil in the last element.
	Data json.RawMessage

	// Response is set in the last element only: the final result.
	Response *Response
}

// Response is the result of one successful command.
type Response struct {
	// Result is the command's raw JSON result, exactly as the worker sent
	// it; callers decode it once, where they need it.
	Result json.RawMessage

	// Worker identifies the worker that served the request, such as
	// "pool-3". Empty when the adapter has a single anonymous worker.
	Worker string
}

// Capabilities describes what an adapter supports. The conformance suite
// skips the cases whose capability an adapter does not declare and says so.
// The zero value declares nothing beyond the basic command set.
type Capabilities struct {
	// Commands lists the commands the adapter accepts. Nil means the
	// adapter does not say.
	Commands []string

	// Sessions reports whether programs can be scoped to a Request.Session.
	Sessions bool

	// Broadcast reports whether the adapter implements Broadcaster.
	Broadcast bool

	// Restarts reports whether the adapter replaces a crashed worker and
	// keeps serving.
	Restarts bool

	// FaultInjection reports whether the adapter can inject faults for
	// tests (see the conformance harness).
	FaultInjection bool

	// MaxConcurrency is the number of calls the adapter runs at once.
	// Zero means no fixed limit.
	MaxConcurrency int

	// MaxFrameBytes is the largest request or response the adapter
	// carries, in bytes. Zero means no limit.
	MaxFrameBytes int

	// Streaming reports whether the adapter implements Streamer.
	Streaming bool

	// Tools reports whether workers can call Request.Tools.
	Tools bool
}

// Stats is a snapshot of an adapter's counters. Adapters with more detail
// (such as the pool) offer their own richer type as well.
type Stats struct {
	// Adapter is the adapter's name.
	Adapter string

	// Calls counts calls that have completed, successfully or not.
	Calls uint64

	// Failures counts completed calls that returned an error.
	Failures uint64

	// InFlight is the number of calls under way when the snapshot was taken.
	InFlight int

	// Workers is the number of workers currently able to serve calls.
	Workers int

	// Restarts counts workers replaced after a crash or a recycle.
	Restarts uint64

	// Since is when the adapter was created.
	Since time.Time
}

// CallCounter counts an adapter's calls for its Stats. The zero value is
// ready; it is safe for concurrent use. Call Begin when a call starts and
// End with its error when it ends.
type CallCounter struct {
	calls, failures atomic.Uint64
	inFlight        atomic.Int64
}

// Begin records a call starting.
func (c *CallCounter) Begin() { c.inFlight.Add(1) }

// End records the end of a call begun with Begin, failed when err is not
// nil.
func (c *CallCounter) End(err error) {
	c.inFlight.Add(-1)
	c.calls.Add(1)
	if err != nil {
		c.failures.Add(1)
	}
}

// Fill sets the counters of s: Calls, Failures and InFlight.
func (c *CallCounter) Fill(s *Stats) {
	s.Calls, s.Failures, s.InFlight = c.calls.Load(), c.failures.Load(), int(c.inFlight.Load())
}

// CallTool runs tool name of t for a worker, as every adapter must: no
// tools is CodeFailedPrecondition, and a tool that panics returns
// CodeInternal instead of crashing the host.
func CallTool(ctx context.Context, t Tools, name string, args json.RawMessage) (result json.RawMessage, err error) {
	if t == nil {
		return nil, Errorf(CodeFailedPrecondition, "tool %q: the request carries no tools", name)
	}
	defer func() {
		if p := recover(); p != nil {
			result, err = nil, Errorf(CodeInternal, "tool %q panicked: %v", name, p)
		}
	}()
	return t.CallTool(ctx, name, args)
}
