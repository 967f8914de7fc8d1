package dspgo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// Program kinds for ProgramSpec.Kind.
const (
	// KindPredict maps inputs straight to outputs (DSPy's Predict).
	KindPredict = command.KindPredict
	// KindChainOfThought produces a "reasoning" output before the declared
	// ones (DSPy's ChainOfThought).
	KindChainOfThought = command.KindChainOfThought
	// KindReact runs a ReAct loop: the language model calls the client's
	// tools (WithTool), reads their results, and answers when it is done
	// or after ProgramSpec.MaxIters calls (DSPy's ReAct).
	KindReact = command.KindReact
	// KindModule runs a custom dspy.Module, registered on the workers
	// under ProgramSpec.Module, with ProgramSpec.State loaded: the
	// multi-step programs data scientists write in Python. Only the dspy
	// engine runs one; the dummy LM answers it as a KindPredict of its
	// signature (docs/dspy.md, "Custom modules").
	KindModule = command.KindModule
)

// ProgramSpec describes a program to create.
type ProgramSpec struct {
	// ID is the program's id within its scope (the client's default scope
	// or a session): 1 to 128 letters, digits, '_', '-' or '.'. Empty
	// means a generated id ("prog-" and 16 hex digits).
	ID string

	// Signature is the program's typed inputs and outputs.
	Signature Signature

	// Instructions describe the task to the language model. Empty means
	// none.
	Instructions string

	// Kind is KindPredict, KindChainOfThought, KindReact or KindModule.
	// Empty means KindPredict.
	Kind string

	// Demos are few-shot examples, shown to the language model before the
	// real inputs as DSPy shows a predictor's demos. Each holds a value of
	// its type for every input and output field (and, for
	// KindChainOfThought only, optionally the reasoning); a bad one is
	// CodeInvalidArgument naming its index and field. Demos are part of the
	// spec's Hash. Nil means none. A created Program's Spec holds them
	// converted, as the Go types Execute returns. A KindModule program has
	// none: its predictors' demos are in its State.
	Demos []Demo

	// Module names a KindModule program's dspy.Module: the name a
	// python.handlers module registered it under on the workers
	// (dspgo_worker.dspy_module), letters, digits, '_', '-' and '.', at
	// most 128. Required for KindModule; other kinds leave it empty. Part
	// of the spec's Hash.
	Module string

	// State is a KindModule program's saved state, a JSON object: the file
	// DSPy's module.save("program.json") writes, as it is. The workers
	// load it into the module (load_state) before its first run, so an
	// optimized program runs with its instructions and demos. Nil means
	// none. Part of the spec's Hash; a created Program's Spec holds it in
	// canonical form (docs/protocol.md, "Canonical JSON").
	State json.RawMessage

	// StepInstructions replace, when set, the instructions of a KindReact
	// program's step predictor (dspy.ReAct's ReAct.react), which DSPy
	// otherwise writes from Instructions and the tools (WithTool): what an
	// optimizer such as MIPROv2 found for them, as LoadDSPyProgram reads
	// them from a saved ReAct. Empty means ReAct's own text. Other kinds
	// leave it empty. Part of the spec's Hash when set.
	StepInstructions string

	// StepDemos are a KindReact program's demos of its steps (dspy.ReAct's
	// ReAct.react): each the program's inputs, its Trajectory and, as
	// Outputs, the step's next_thought, next_tool_name and next_tool_args
	// (command.StepOutputs), as BootstrapFewShot fills them and
	// LoadDSPyProgram reads them. Both engines show them to every step.
	// Nil means none. Other kinds have none. Part of the spec's Hash.
	StepDemos []Demo

	// MaxIters bounds a KindReact program's loop: the tool calls before
	// it must answer, 1 to 100. Zero means command.DefaultMaxIters (20,
	// dspy.ReAct's default). Other kinds ignore it.
	MaxIters int

	// LM names the LM configuration (LMConfig.Name) the program's
	// executions run with, whichever Session handle runs them. Empty
	// means the handle's (Session.WithLM), and else the default LM. The
	// name is checked when the program runs, CodeNotFound when no
	// configuration has it. It is not part of the spec's Hash: programs
	// that differ only in their LM share one compiled spec on the workers.
	LM string
}

// Demo is one few-shot example of a program (ProgramSpec.Demos), the
// command set's command.Demo:
//
//	type Demo struct {
//		Inputs    map[string]any // a value for every input field (but an Optional one), by name
//		Outputs   map[string]any // a value for every declared output field
//		Reasoning string         // KindChainOfThought and KindReact only; empty means none
//		Trajectory *string       // KindReact only; nil means none
//	}
//
// Each value converts to its field's type as an execution's inputs do;
// other kinds than KindChainOfThought and KindReact must leave Reasoning
// empty, and other kinds than KindReact Trajectory nil.
type Demo = command.Demo

// Program is a created program. Its fields are read-only.
type Program struct {
	// ID is the program's id within its scope.
	ID string
	// Session is the session that owns the program; empty for the
	// client's default scope.
	Session string
	// Spec is the program's normalized spec: types in canonical form, Kind
	// filled in.
	Spec ProgramSpec
	// Hash identifies the spec: the hex SHA-256 of its canonical JSON. Two
	// programs with the same spec have the same hash; ID, MaxIters and LM
	// are not part of it.
	Hash string
	// CreatedAt is when the program was created.
	CreatedAt time.Time

	compiled *program.Compiled
	// tools are the tools a KindReact program's executions send (the
	// client's WithTool), in order; nil for other kinds.
	tools []command.ToolSpec
	// execHead and execHeadSpec are execute_program's arguments up to the
	// inputs, without and with the spec.
	execHead, execHeadSpec []byte
}

// OutputFields lists the fields an execution returns, in order:
// "reasoning" first for KindChainOfThought, then the declared outputs.
func (p *Program) OutputFields() []Field { return slices.Clone(p.compiled.OutputFields()) }

// CreateProgram validates spec, compiles it on the backend and records it
// in the client's default scope. A bad spec is CodeInvalidArgument; an id
// already used in the scope is CodeAlreadyExists (never an overwrite).
func (c *Client) CreateProgram(ctx context.Context, spec ProgramSpec) (*Program, error) {
	return c.createProgram(ctx, "", nil, nil, spec)
}

// GetProgram returns the program with the id, or a CodeNotFound error.
func (c *Client) GetProgram(ctx context.Context, id string) (*Program, error) {
	return c.getProgram(ctx, "", id)
}

// ListPrograms returns the default scope's programs sorted by id.
func (c *Client) ListPrograms(ctx context.Context) ([]*Program, error) {
	return c.listPrograms(ctx, "")
}

// DeleteProgram deletes the program with the id, or returns a CodeNotFound
// error. The program is gone from the client even when the backend's cache
// eviction that follows fails; that failure is returned.
func (c *Client) DeleteProgram(ctx context.Context, id string) error {
	return c.deleteProgram(ctx, "", id)
}

// createProgram creates a program in a session's scope ("" the default
// scope). closed is the flag of the Session handle the call came through
// (nil for the Client's), and from the scope that held the program
// Compile compiled (nil for CreateProgram): when the session is closed
// before the program is stored, or while the backend compiles it, the
// create fails with ErrSessionClosed and leaves no program behind.
func (c *Client) createProgram(ctx context.Context, session string, closed *atomic.Bool, from *scope, spec ProgramSpec) (*Program, error) {
	const op = command.CreateProgram
	if err := ctx.Err(); err != nil {
		return nil, adapter.Wrap(err, c.a.Name(), op)
	}
	if err := program.CheckLMName("lm", spec.LM); err != nil {
		return nil, adapter.Wrap(err, c.a.Name(), op)
	}
	if path, problem := checkSpecValues(spec); path != "" {
		return nil, c.errorf(adapter.CodeInvalidArgument, op, "%s: %s", path, problem)
	}
	compiled, err := program.Compile(command.Spec{Signature: spec.Signature, Instructions: spec.Instructions, Kind: spec.Kind, Demos: spec.Demos,
		Module: spec.Module, State: spec.State, StepInstructions: spec.StepInstructions, StepDemos: spec.StepDemos})
	if err != nil {
		return nil, adapter.Wrap(err, c.a.Name(), op)
	}
	id := spec.ID
	if id == "" {
		id = newProgramID()
	} else if err := checkID(id); err != nil {
		return nil, c.errorf(adapter.CodeInvalidArgument, op, "%v", err)
	}
	p := &Program{
		ID: id, Session: session, Hash: compiled.Hash, compiled: compiled,
		Spec: ProgramSpec{ID: id, Signature: compiled.Spec.Signature, Instructions: compiled.Spec.Instructions, Kind: compiled.Spec.Kind,
			Demos: compiled.Spec.Demos, Module: compiled.Spec.Module, State: compiled.Spec.State,
			StepInstructions: compiled.Spec.StepInstructions, StepDemos: compiled.Spec.StepDemos, LM: spec.LM},
	}
	if compiled.Spec.Kind == command.KindReact {
		if c.opts.toolErr != nil {
			return nil, c.errorf(adapter.CodeInvalidArgument, op, "%v", c.opts.toolErr)
		}
		if spec.MaxIters < 0 || spec.MaxIters > command.MaxIters {
			return nil, c.errorf(adapter.CodeInvalidArgument, op, "max_iters must be from 1 to %d, got %d", command.MaxIters, spec.MaxIters)
		}
		p.Spec.MaxIters = spec.MaxIters
	}
	wire := program.WireSpec(compiled.Spec) // the spec as backends read it, in create_program and execute_program alike
	if err := p.encodeHeads(c.opts.tools.specs(), &wire); err != nil {
		return nil, c.errorf(adapter.CodeInvalidArgument, op, "%v", err)
	}

	// Reserve the id before the backend call, so that a concurrent create
	// of the same id fails instead of overwriting. The closed flag is read
	// under c.mu, which Close takes after setting it: a Close that has
	// not dropped the scope yet drops the reservation with it.
	c.mu.Lock()
	if closed != nil && closed.Load() || from != nil && from.closed {
		c.mu.Unlock()
		return nil, c.sessionClosed(op)
	}
	sc := c.startLocked(session)
	if sc.programs[id] != nil {
		c.mu.Unlock()
		return nil, c.errorf(adapter.CodeAlreadyExists, op, "program %q already exists%s", id, inSession(session))
	}
	p.CreatedAt = c.opts.now()
	sc.programs[id] = p
	sc.creating++
	c.mu.Unlock()

	args, err := json.Marshal(command.CreateArgs{ProgramID: id, Spec: wire})
	if err == nil {
		var resp adapter.Response
		resp, err = c.a.Call(ctx, adapter.Request{Command: op, Args: args, Session: session})
		if err == nil {
			err = c.checkHash(op, resp.Result, compiled.Hash)
		}
	}
	c.mu.Lock()
	sc.creating--
	if err == nil && !sc.closed {
		c.endIfEmptyLocked(session, sc) // when a DeleteProgram took the reserved id
		c.mu.Unlock()
		return p, nil
	}
	c.removeLocked(sc, p)
	evict := err == nil && !c.hashInUseLocked(p.Hash)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// Close dropped the scope while the backend compiled the program: the
	// backend's copy goes too, unless another program shares it. An
	// eviction that fails leaves a cache entry that nothing names, as a
	// failed DeleteProgram's does; the create failed all the same.
	if evict {
		_ = c.evict(ctx, session, p.Hash)
	}
	return nil, c.sessionClosed(op)
}

// encodeHeads encodes the fixed parts of execute_program's arguments:
// {"program_id":…,"spec_hash":…,["spec":…,]"inputs": and the caller
// appends the inputs and the closing brace. Inputs are last, so the tools
// and max_iters of a react program come before them. wire is the spec as
// backends read it (program.WireSpec), for the head that carries it.
func (p *Program) encodeHeads(tools []command.ToolSpec, wire *command.Spec) error {
	args := command.ExecuteArgs{ProgramID: p.ID, SpecHash: p.Hash, Inputs: json.RawMessage("0")}
	if p.compiled.Spec.Kind == command.KindReact {
		args.Tools = tools
		p.tools = tools
		if p.Spec.MaxIters > 0 {
			args.MaxIters = &p.Spec.MaxIters
		}
		if args.Tools == nil {
			args.Tools = []command.ToolSpec{}
		}
	}
	head := func(spec *command.Spec) ([]byte, error) {
		a := args
		a.Spec = spec
		b, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		return b[:len(b)-len(`0}`)], nil // cut the placeholder inputs and the brace
	}
	var err error
	if p.execHead, err = head(nil); err == nil {
		p.execHeadSpec, err = head(wire)
	}
	return err
}

// executeArgs encodes execute_program's arguments around the already
// encoded inputs, with the spec when withSpec and the LM configuration's
// name when lm is not empty; the fixed parts are encoded once, at
// creation.
func (p *Program) executeArgs(inputs []byte, withSpec bool, lm string) json.RawMessage {
	head := p.execHead
	if withSpec {
		head = p.execHeadSpec
	}
	b := make([]byte, 0, len(head)+len(inputs)+len(lm)+len(`,"lm":""}`))
	b = append(append(b, head...), inputs...)
	if lm != "" {
		// A checked name (program.CheckLMName) needs no escaping.
		b = append(append(append(b, `,"lm":"`...), lm...), '"')
	}
	return append(b, '}')
}

// lm is the name of the LM configuration the program runs with when
// executed through a handle whose LM is handleLM.
func (p *Program) lm(handleLM string) string {
	if p.Spec.LM != "" {
		return p.Spec.LM
	}
	return handleLM
}

// checkHash verifies that the backend hashed the spec as the client did;
// a mismatch means the two disagree on the spec and outputs would differ.
func (c *Client) checkHash(op string, result json.RawMessage, want string) error {
	var r command.CreateResult
	if err := json.Unmarshal(result, &r); err != nil {
		return c.errorf(adapter.CodeInternal, op, "malformed result from the backend: %v", err)
	}
	if r.SpecHash != want {
		return c.errorf(adapter.CodeInternal, op, "the backend hashed the spec as %q, the client as %q: they disagree on the program", r.SpecHash, want)
	}
	return nil
}

func checkID(id string) error {
	switch {
	case len(id) > program.MaxIDBytes:
		return fmt.Errorf("program id %.20q… is longer than %d bytes", id, program.MaxIDBytes)
	case !program.IsID(id):
		return fmt.Errorf("program id %q may hold only letters, digits, '_', '-' and '.'", id)
	}
	return nil
}

func newProgramID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "prog-" + hex.EncodeToString(b[:])
}

func (c *Client) getProgram(ctx context.Context, session, id string) (*Program, error) {
	if err := ctx.Err(); err != nil {
		return nil, adapter.Wrap(err, c.a.Name(), "get_program")
	}
	p, _, err := c.lookup(session, "get_program", id)
	return p, err
}

func (c *Client) listPrograms(ctx context.Context, session string) ([]*Program, error) {
	if err := ctx.Err(); err != nil {
		return nil, adapter.Wrap(err, c.a.Name(), "list_programs")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sc := c.useLocked(session)
	if sc == nil {
		return []*Program{}, nil
	}
	list := make([]*Program, 0, len(sc.programs))
	for _, p := range sc.programs {
		list = append(list, p)
	}
	slices.SortFunc(list, func(a, b *Program) int { return strings.Compare(a.ID, b.ID) })
	return list, nil
}

func (c *Client) deleteProgram(ctx context.Context, session, id string) error {
	const op = command.DeleteProgram
	if err := ctx.Err(); err != nil {
		return adapter.Wrap(err, c.a.Name(), op)
	}
	c.mu.Lock()
	sc := c.useLocked(session)
	if sc == nil || sc.programs[id] == nil {
		c.mu.Unlock()
		return c.errorf(adapter.CodeNotFound, op, "program %q not found%s", id, inSession(session))
	}
	p := sc.programs[id]
	c.removeLocked(sc, p)
	shared := c.hashInUseLocked(p.Hash)
	c.mu.Unlock()
	if shared {
		return nil
	}
	return c.evict(ctx, session, p.Hash)
}

// hashInUseLocked reports whether any program still has the hash. The
// caller holds c.mu.
func (c *Client) hashInUseLocked(hash string) bool {
	for _, sc := range c.scopes {
		for _, p := range sc.programs {
			if p.Hash == hash {
				return true
			}
		}
	}
	return false
}

// evict asks the backend to drop its compiled copy of a spec. A backend
// that does not have it (another worker compiled it) is not an error.
func (c *Client) evict(ctx context.Context, session, hash string) error {
	args, _ := json.Marshal(command.DeleteArgs{SpecHash: hash})
	_, err := c.a.Call(ctx, adapter.Request{Command: command.DeleteProgram, Args: args, Session: session})
	if adapter.CodeOf(err) == adapter.CodeNotFound {
		return nil
	}
	return err
}
