package dspgo

import (
	"context"
	"iter"
	"sync/atomic"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// Session is a scope of programs within a Client. Programs created in a
// session are invisible to other sessions and to the client's default
// scope; every request carries the session id, so backends with several
// workers can send it back to the worker that served it (an optimisation,
// never a condition for correctness). A Session is safe for concurrent use.
//
// A Session is a handle: WithLM makes another handle on the same session
// that runs its programs with a named LM configuration.
type Session struct {
	c      *Client
	id     string
	closed *atomic.Bool // shared by the handles WithLM makes
	lm     string       // the LM of programs that name none; "" is the default
	lmErr  error        // a bad name given to WithLM
}

// ID returns the session's id.
func (s *Session) ID() string { return s.id }

// WithLM returns a handle on the same session that runs the session's
// programs that name no LM (ProgramSpec.LM empty) with the LM
// configuration of that name (LMConfig.Name): Execute, ExecuteDetailed,
// ExecuteStream, Evaluate and Compile. A program that names its own LM keeps it. Empty
// means the default LM, as on a handle from Client.Session. The receiver
// is unchanged; both handles share the session's programs and its Close.
// A name that is not 1 to 64 letters, digits, '_' or '-' makes every
// call on the returned handle fail with CodeInvalidArgument; a name no
// configuration has makes executions fail with CodeNotFound.
func (s *Session) WithLM(name string) *Session {
	h := &Session{c: s.c, id: s.id, closed: s.closed, lm: name}
	if err := program.CheckLMName("lm", name); err != nil {
		h.lmErr = adapter.Wrap(err, s.c.a.Name(), "")
	}
	return h
}

// LM returns the name of the LM configuration the handle runs programs
// that name none with; empty means the default LM.
func (s *Session) LM() string { return s.lm }

// check returns an error when the session cannot be used.
func (s *Session) check(op string) error {
	if s.id == "" {
		return s.c.errorf(adapter.CodeInvalidArgument, op, "session id is empty")
	}
	if s.closed.Load() {
		return s.c.sessionClosed(op)
	}
	if s.lmErr != nil {
		return adapter.Wrap(s.lmErr, "", op)
	}
	return nil
}

// CreateProgram creates a program in the session (see
// Client.CreateProgram).
func (s *Session) CreateProgram(ctx context.Context, spec ProgramSpec) (*Program, error) {
	if err := s.check(command.CreateProgram); err != nil {
		return nil, err
	}
	return s.c.createProgram(ctx, s.id, s.closed, nil, spec)
}

// GetProgram returns the session's program with the id.
func (s *Session) GetProgram(ctx context.Context, id string) (*Program, error) {
	if err := s.check("get_program"); err != nil {
		return nil, err
	}
	return s.c.getProgram(ctx, s.id, id)
}

// ListPrograms returns the session's programs sorted by id.
func (s *Session) ListPrograms(ctx context.Context) ([]*Program, error) {
	if err := s.check("list_programs"); err != nil {
		return nil, err
	}
	return s.c.listPrograms(ctx, s.id)
}

// DeleteProgram deletes the session's program with the id.
func (s *Session) DeleteProgram(ctx context.Context, id string) error {
	if err := s.check(command.DeleteProgram); err != nil {
		return err
	}
	return s.c.deleteProgram(ctx, s.id, id)
}

// Execute runs the session's program on inputs (see Client.Execute).
func (s *Session) Execute(ctx context.Context, programID string, inputs map[string]any) (map[string]any, error) {
	if err := s.check(command.ExecuteProgram); err != nil {
		return nil, err
	}
	return s.c.execute(ctx, s.id, s.lm, programID, inputs)
}

// ExecuteDetailed runs the session's program (see Client.ExecuteDetailed).
func (s *Session) ExecuteDetailed(ctx context.Context, programID string, inputs map[string]any) (*Execution, error) {
	if err := s.check(command.ExecuteProgram); err != nil {
		return nil, err
	}
	return s.c.executeDetailed(ctx, s.id, s.lm, programID, inputs)
}

// ExecuteStream runs the session's program as a stream (see
// Client.ExecuteStream).
func (s *Session) ExecuteStream(ctx context.Context, programID string, inputs map[string]any) iter.Seq2[StreamPart, error] {
	if err := s.check(command.ExecuteProgram); err != nil {
		return func(yield func(StreamPart, error) bool) { yield(StreamPart{}, err) }
	}
	return s.c.executeStream(ctx, s.id, s.lm, programID, inputs)
}

// Compile optimizes a program of the session and creates the optimized
// program in the session (see Client.Compile). The optimizer runs with
// the LM the handle runs prog with: prog's own, else the handle's
// (WithLM). A program of another scope is CodeNotFound.
func (s *Session) Compile(ctx context.Context, prog *Program, trainset []Example, metric Metric, opts ...CompileOption) (*Program, error) {
	if err := s.checkProgram(command.CompileProgram, prog); err != nil {
		return nil, err
	}
	return s.c.compile(ctx, s.lm, s.closed, prog, trainset, metric, opts)
}

// Evaluate scores a program of the session on a devset (see
// Client.Evaluate), executing it with the LM the handle runs it with:
// prog's own, else the handle's (WithLM). A program of another scope is
// CodeNotFound.
func (s *Session) Evaluate(ctx context.Context, prog *Program, devset []Example, metric Metric, opts ...EvaluateOption) (*Evaluation, error) {
	if err := s.checkProgram(evaluateOp, prog); err != nil {
		return nil, err
	}
	return s.c.evaluate(ctx, s.lm, prog, devset, metric, opts)
}

// checkProgram returns an error when the session cannot be used or prog
// is a program of another scope (a nil prog is the client's to report).
func (s *Session) checkProgram(op string, prog *Program) error {
	if err := s.check(op); err != nil {
		return err
	}
	if prog != nil && prog.Session != s.id {
		return s.c.errorf(adapter.CodeNotFound, op, "program %q%s is not a program of session %q", prog.ID, inSession(prog.Session), s.id)
	}
	return nil
}

// Ping checks that the backend answers, with the session's affinity.
func (s *Session) Ping(ctx context.Context) error {
	if err := s.check(command.Ping); err != nil {
		return err
	}
	_, err := s.c.a.Call(ctx, adapter.Request{Command: command.Ping, Session: s.id})
	return err
}

// Close ends the session and deletes its programs. Every later call on
// this Session fails with ErrSessionClosed, and so does a CreateProgram
// or Compile of the session that has not returned (through any handle,
// or the Client's Compile of one of its programs): its program is not
// kept, and the backend is asked to drop its copy. The id may be used
// again, by Client.Session, for a new, empty session. Close is idempotent
// and needs no backend call, so it does not fail.
func (s *Session) Close(context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	s.c.mu.Lock()
	if sc := s.c.scopes[s.id]; sc != nil {
		sc.closed = true
		delete(s.c.scopes, s.id)
	}
	s.c.mu.Unlock()
	return nil
}
