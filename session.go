package dspgo

import (
	"context"
	"sync/atomic"

	"github.com/dspgo/dspgo/adapter"
)

// Session is a scope of programs within a Client. Programs created in a
// session are invisible to other sessions and to the client's default
// scope; every request carries the session id, so backends with several
// workers can send it back to the worker that served it (an optimisation,
// never a condition for correctness). A Session is safe for concurrent use.
type Session struct {
	c      *Client
	id     string
	closed atomic.Bool
}

// ID returns the session's id.
func (s *Session) ID() string { return s.id }

// check returns an error when the session cannot be used.
func (s *Session) check(op string) error {
	if s.id == "" {
		return s.c.errorf(adapter.CodeInvalidArgument, op, "session id is empty")
	}
	if s.closed.Load() {
		return &adapter.Error{Code: adapter.CodeFailedPrecondition, Op: op, Adapter: s.c.a.Name(), Err: ErrSessionClosed}
	}
	return nil
}

// CreateProgram creates a program in the session (see
// Client.CreateProgram).
func (s *Session) CreateProgram(ctx context.Context, spec ProgramSpec) (*Program, error) {
	if err := s.check("create_program"); err != nil {
		return nil, err
	}
	return s.c.createProgram(ctx, s.id, spec)
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
	if err := s.check("delete_program"); err != nil {
		return err
	}
	return s.c.deleteProgram(ctx, s.id, id)
}

// Execute runs the session's program on inputs (see Client.Execute).
func (s *Session) Execute(ctx context.Context, programID string, inputs map[string]any) (map[string]any, error) {
	if err := s.check("execute_program"); err != nil {
		return nil, err
	}
	return s.c.execute(ctx, s.id, programID, inputs)
}

// Ping checks that the backend answers, with the session's affinity.
func (s *Session) Ping(ctx context.Context) error {
	if err := s.check("ping"); err != nil {
		return err
	}
	_, err := s.c.a.Call(ctx, adapter.Request{Command: "ping", Session: s.id})
	return err
}

// Close ends the session and deletes its programs. Every later call on
// this Session fails with ErrSessionClosed; the id may be used again, by
// Client.Session, for a new, empty session. Close is idempotent and needs
// no backend call, so it does not fail.
func (s *Session) Close(context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	s.c.mu.Lock()
	delete(s.c.scopes, s.id)
	s.c.mu.Unlock()
	return nil
}
