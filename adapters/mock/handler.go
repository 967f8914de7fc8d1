package mock

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/wait"
	"github.com/dspgo/dspgo/internal/wire"
	"github.com/dspgo/dspgo/protocol"
)

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	// WorkerID names the worker in ping and stats replies. Empty means
	// "mock".
	WorkerID string

	// MaxSpecs bounds the compiled-spec cache; the oldest entry is evicted
	// past it (the host resends a spec the worker no longer knows). Zero
	// means 4096.
	MaxSpecs int
}

// Handler is the Go implementation of the worker command set
// (docs/protocol.md): ping, describe, configure_lm, create_program,
// execute_program, delete_program, get_stats, reset, shutdown and cancel,
// with the deterministic dummy language model. It implements
// protocol.Handler, so it can serve an in-memory stream too. It is safe for
// concurrent use; two Handlers never share state.
type Handler struct {
	workerID string
	maxSpecs int
	started  time.Time

	mu       sync.Mutex
	specs    map[string]*program.Compiled
	order    []string                  // spec hashes, oldest first
	lms      map[string]command.LMArgs // by name; "" is the default LM
	calls    map[string]uint64
	failures uint64
	inFlight int
}

var _ protocol.Handler = (*Handler)(nil)

// NewHandler returns a Handler with no programs and the dummy LM.
func NewHandler(opts HandlerOptions) *Handler {
	if opts.WorkerID == "" {
		opts.WorkerID = "mock"
	}
	if opts.MaxSpecs <= 0 {
		opts.MaxSpecs = 4096
	}
	h := &Handler{workerID: opts.WorkerID, maxSpecs: opts.MaxSpecs, started: time.Now()}
	h.resetLocked()
	return h
}

func (h *Handler) resetLocked() {
	h.specs = map[string]*program.Compiled{}
	h.order = nil
	h.lms = map[string]command.LMArgs{"": {Provider: command.ProviderDummy}}
	h.calls = map[string]uint64{}
	h.failures = 0
}

// entry is one command of the command set.
type entry struct {
	description string
	schema      program.Schema // checked before run
	run         func(h *Handler, ctx context.Context, args json.RawMessage) (any, error)
}

var commands map[string]entry

func init() {
	set := func(name, description string, run func(*Handler, context.Context, json.RawMessage) (any, error)) entry {
		return entry{description, program.Schemas[name], run}
	}
	commands = map[string]entry{
		command.Ping:           set(command.Ping, "Answers at once; with initialization true, the handshake.", (*Handler).ping),
		command.Describe:       set(command.Describe, "Lists the commands and their arguments.", (*Handler).describe),
		command.ConfigureLM:    set(command.ConfigureLM, "Sets the default language model, or one of the given name.", (*Handler).configureLM),
		command.CreateProgram:  set(command.CreateProgram, "Validates and compiles a program spec.", (*Handler).createProgram),
		command.ExecuteProgram: set(command.ExecuteProgram, "Runs a program, by spec hash (and spec), on inputs.", (*Handler).executeProgram),
		command.DeleteProgram:  set(command.DeleteProgram, "Drops a compiled spec.", (*Handler).deleteProgram),
		command.GetStats:       set(command.GetStats, "Reports counters.", (*Handler).getStats),
		command.Reset:          set(command.Reset, "Drops every program, counter and named LM and restores the dummy LM.", (*Handler).reset),
		command.Shutdown:       set(command.Shutdown, "Acknowledges; an in-process worker has nothing to stop.", (*Handler).shutdown),
		command.Cancel:         set(command.Cancel, "Acknowledges; in-process calls are cancelled through their context.", (*Handler).cancel),
		cmdStreamCount: {"Streams the integers 0 to n-1; with fail_at, fails before that one (as the Python worker's diagnostics).",
			program.Schema{Args: []program.Arg{{Name: "n", Type: command.ArgInt, Required: true}, {Name: "fail_at", Type: command.ArgInt}}},
			(*Handler).streamCount},
	}
}

// cmdStreamCount is the Python worker's diagnostics command stream_count,
// which the mock always has.
const cmdStreamCount = "stream_count"

// Commands lists the command set's names, sorted.
func Commands() []string {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Handle runs one request of the command set.
func (h *Handler) Handle(ctx context.Context, req protocol.Request) protocol.Response {
	cmd, ok := commands[req.Command]
	h.mu.Lock()
	h.calls[req.Command]++
	h.inFlight++
	h.mu.Unlock()

	var result any
	var err error
	if !ok {
		err = adapter.Errorf(adapter.CodeUnimplemented, "unknown command %q; known commands: %v", req.Command, Commands())
	} else if err = cmd.schema.Check(req.Command, req.Args); err == nil {
		if err = ctx.Err(); err == nil {
			result, err = cmd.run(h, ctx, req.Args)
		}
	}
	var raw []byte
	if err == nil {
		raw, err = json.Marshal(result)
	}

	h.mu.Lock()
	h.inFlight--
	if err != nil {
		h.failures++
	}
	h.mu.Unlock()
	return wire.Result(req.ID, raw, err)
}

// decodeArgs decodes a command's arguments, which its schema has checked
// (keys matched exactly, types right); what the schema does not see (a
// value out of an int's range, say) is CodeInvalidArgument.
func decodeArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return adapter.Errorf(adapter.CodeInvalidArgument, "arguments: %v", err)
	}
	return nil
}

func (h *Handler) ping(_ context.Context, raw json.RawMessage) (any, error) {
	// As the Python worker's: other arguments are let through, and only
	// the exact key "initialization" asks for the handshake.
	if !protocol.IsInitPing(raw) {
		return command.PingResult{Pong: true, WorkerID: h.workerID, PID: os.Getpid()}, nil
	}
	return command.InitResult{
		ProtocolVersion: protocol.Version, WorkerVersion: "go-mock", PID: os.Getpid(),
		WorkerID: h.workerID, Commands: Commands(), MaxFrameBytes: protocol.DefaultMaxFrameBytes,
		Features: []string{protocol.FeatureCall, protocol.FeatureStream},
	}, nil
}

func (h *Handler) describe(context.Context, json.RawMessage) (any, error) {
	names := Commands()
	result := command.DescribeResult{ProtocolVersion: protocol.Version, Commands: make([]command.CommandInfo, len(names))}
	for i, name := range names {
		c := commands[name]
		info := command.CommandInfo{Name: name, Description: c.description, Args: make(map[string]command.ArgInfo, len(c.schema.Args))}
		for _, arg := range c.schema.Args {
			info.Args[arg.Name] = command.ArgInfo{Type: arg.Type, Required: arg.Required}
		}
		result.Commands[i] = info
	}
	return result, nil
}

func (h *Handler) configureLM(_ context.Context, raw json.RawMessage) (any, error) {
	var lm command.LMArgs
	if err := decodeArgs(raw, &lm); err != nil {
		return nil, err
	}
	if err := program.ValidateLM(lm); err != nil {
		return nil, err
	}
	if lm.Provider != command.ProviderDummy {
		return nil, adapter.Errorf(adapter.CodeFailedPrecondition, "the mock runs the dummy provider only, not %q; use the port or pool adapter for a real LM", lm.Provider)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, known := h.lms[lm.Name]; !known && len(h.lms) > program.MaxNamedLMs { // the default is one of them
		return nil, program.TooManyLMs(lm.Name)
	}
	h.lms[lm.Name] = lm
	return command.ConfigureLMResult{Provider: lm.Provider, Model: lm.Model, Engine: "native"}, nil
}

// compile compiles a spec and caches it, evicting the oldest past the
// bound.
func (h *Handler) compile(spec command.Spec) (*program.Compiled, error) {
	c, err := program.Compile(spec)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.specs[c.Hash]; !ok {
		h.specs[c.Hash] = c
		h.order = append(h.order, c.Hash)
		for len(h.order) > h.maxSpecs {
			delete(h.specs, h.order[0])
			h.order = h.order[1:]
		}
	}
	return c, nil
}

func (h *Handler) createProgram(_ context.Context, raw json.RawMessage) (any, error) {
	var args command.CreateArgs
	if err := decodeArgs(raw, &args); err != nil {
		return nil, err
	}
	c, err := h.compile(args.Spec)
	if err != nil {
		return nil, err
	}
	return command.CreateResult{SpecHash: c.Hash}, nil
}

func (h *Handler) executeProgram(ctx context.Context, raw json.RawMessage) (any, error) {
	var args command.ExecuteArgs
	if err := decodeArgs(raw, &args); err != nil {
		return nil, err
	}
	var c *program.Compiled
	if args.Spec == nil && args.SpecHash == "" {
		return nil, program.MissingArg(command.ExecuteProgram, "spec_hash") // required unless spec is sent
	}
	if args.Spec != nil {
		var err error
		if c, err = h.compile(*args.Spec); err != nil {
			return nil, err
		}
		if args.SpecHash != "" && args.SpecHash != c.Hash {
			return nil, adapter.Errorf(adapter.CodeInvalidArgument, "spec_hash %q does not match the spec, whose hash is %q", args.SpecHash, c.Hash)
		}
	} else {
		h.mu.Lock()
		c = h.specs[args.SpecHash]
		h.mu.Unlock()
		if c == nil {
			return nil, &adapter.Error{Code: adapter.CodeNotFound, Remote: &adapter.RemoteError{
				Code: adapter.CodeNotFound, Type: command.SpecNotFoundType,
				Message: fmt.Sprintf("spec %q is not compiled on this worker; send the spec", args.SpecHash)}}
		}
	}
	maxIters, err := checkTools(&args)
	if err != nil {
		return nil, err
	}
	inputs, err := decodeInputs(args.Inputs)
	if err != nil {
		return nil, err
	}
	converted, err := c.Inputs(inputs)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	lm, ok := h.lms[args.LM]
	h.mu.Unlock()
	if !ok {
		return nil, program.LMNotFound(args.LM)
	}
	delay := time.Duration(lm.DelayMS) * time.Millisecond
	script := lm.Script
	if delay > 0 && !wait.Sleep(ctx, delay) {
		return nil, ctx.Err()
	}
	var trajectory *[]command.Step
	if c.Spec.Kind == command.KindReact {
		steps, err := h.react(ctx, script, maxIters)
		if err != nil {
			return nil, err
		}
		trajectory = &steps
	}
	outputs, err := c.DummyOutputs(converted)
	if err != nil {
		return nil, err
	}
	if err := stream(ctx, c, outputs, lm.FailAfterChunks); err != nil {
		return nil, err
	}
	rawOut, err := json.Marshal(outputs)
	if err != nil {
		return nil, err
	}
	return command.ExecuteResult{Outputs: rawOut, SpecHash: c.Hash, Trajectory: trajectory}, nil
}

func decodeInputs(raw json.RawMessage) (map[string]any, error) {
	var inputs map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&inputs); err != nil || inputs == nil {
		return nil, adapter.Errorf(adapter.CodeInvalidArgument, "inputs must be a JSON object")
	}
	return inputs, nil
}

func (h *Handler) deleteProgram(_ context.Context, raw json.RawMessage) (any, error) {
	var args command.DeleteArgs
	if err := decodeArgs(raw, &args); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.specs[args.SpecHash]; !ok {
		return nil, adapter.Errorf(adapter.CodeNotFound, "spec %q is not compiled on this worker", args.SpecHash)
	}
	delete(h.specs, args.SpecHash)
	for i, hash := range h.order {
		if hash == args.SpecHash {
			h.order = append(h.order[:i], h.order[i+1:]...)
			break
		}
	}
	return command.DeleteResult{Deleted: true}, nil
}

func (h *Handler) getStats(context.Context, json.RawMessage) (any, error) {
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	h.mu.Lock()
	defer h.mu.Unlock()
	calls := make(map[string]uint64, len(h.calls))
	for k, v := range h.calls {
		calls[k] = v
	}
	lms := map[string]command.LMInfo{}
	for name, lm := range h.lms {
		if name != "" {
			lms[name] = command.LMInfo{Provider: lm.Provider, Model: lm.Model}
		}
	}
	lm := h.lms[""]
	return command.StatsResult{
		WorkerID: h.workerID, PID: os.Getpid(), Programs: len(h.specs), Calls: calls,
		Failures: h.failures, InFlight: h.inFlight - 1, // this call is not counted
		RSSBytes: mem.Sys, LM: command.LMInfo{Provider: lm.Provider, Model: lm.Model}, LMs: lms,
		UptimeMS: time.Since(h.started).Milliseconds(),
	}, nil
}

func (h *Handler) reset(context.Context, json.RawMessage) (any, error) {
	h.mu.Lock()
	h.resetLocked()
	h.mu.Unlock()
	return command.ResetResult{Reset: true}, nil
}

func (h *Handler) shutdown(context.Context, json.RawMessage) (any, error) {
	return command.ShutdownResult{Stopping: true}, nil
}

func (h *Handler) cancel(_ context.Context, raw json.RawMessage) (any, error) {
	var args command.CancelArgs // its schema requires id
	if err := decodeArgs(raw, &args); err != nil {
		return nil, err
	}
	return command.CancelResult{ID: args.ID, State: "unknown"}, nil
}
