package adapter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
)

func TestCodeNamesRoundTrip(t *testing.T) {
	want := map[adapter.Code]string{
		adapter.CodeOK:                 "ok",
		adapter.CodeUnknown:            "unknown",
		adapter.CodeInvalidArgument:    "invalid_argument",
		adapter.CodeNotFound:           "not_found",
		adapter.CodeAlreadyExists:      "already_exists",
		adapter.CodeUnimplemented:      "unimplemented",
		adapter.CodeUnavailable:        "unavailable",
		adapter.CodeDeadlineExceeded:   "deadline_exceeded",
		adapter.CodeCanceled:           "canceled",
		adapter.CodeResourceExhausted:  "resource_exhausted",
		adapter.CodeFailedPrecondition: "failed_precondition",
		adapter.CodeInternal:           "internal",
	}
	require.Len(t, adapter.Codes(), len(want), "every code has a name in this table")
	for i, code := range adapter.Codes() {
		assert.Equal(t, adapter.Code(i), code, "codes are numbered densely from zero")
		name := want[code]
		assert.Equal(t, name, code.String())
		parsed, ok := adapter.ParseCode(name)
		assert.True(t, ok, name)
		assert.Equal(t, code, parsed)

		b, err := json.Marshal(code)
		require.NoError(t, err)
		assert.JSONEq(t, `"`+name+`"`, string(b))
		var back adapter.Code
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, code, back)
	}
}

func TestCodeStableNumbers(t *testing.T) {
	// The numbers are part of the contract; this table must only grow.
	assert.Equal(t, 0, int(adapter.CodeOK))
	assert.Equal(t, 1, int(adapter.CodeUnknown))
	assert.Equal(t, 2, int(adapter.CodeInvalidArgument))
	assert.Equal(t, 3, int(adapter.CodeNotFound))
	assert.Equal(t, 4, int(adapter.CodeAlreadyExists))
	assert.Equal(t, 5, int(adapter.CodeUnimplemented))
	assert.Equal(t, 6, int(adapter.CodeUnavailable))
	assert.Equal(t, 7, int(adapter.CodeDeadlineExceeded))
	assert.Equal(t, 8, int(adapter.CodeCanceled))
	assert.Equal(t, 9, int(adapter.CodeResourceExhausted))
	assert.Equal(t, 10, int(adapter.CodeFailedPrecondition))
	assert.Equal(t, 11, int(adapter.CodeInternal))
}

func TestCodeUndefined(t *testing.T) {
	assert.Equal(t, "Code(42)", adapter.Code(42).String())
	assert.Equal(t, "Code(-1)", adapter.Code(-1).String())
	_, err := json.Marshal(adapter.Code(42))
	assert.Error(t, err)

	code, ok := adapter.ParseCode("from_the_future")
	assert.False(t, ok)
	assert.Equal(t, adapter.CodeUnknown, code)

	var c adapter.Code
	require.NoError(t, json.Unmarshal([]byte(`"from_the_future"`), &c), "unknown wire names decode leniently")
	assert.Equal(t, adapter.CodeUnknown, c)
}

func TestCodeOf(t *testing.T) {
	notFound := &adapter.Error{Code: adapter.CodeNotFound, Message: "program \"qa\" not found"}
	tests := []struct {
		name string
		err  error
		want adapter.Code
	}{
		{"nil", nil, adapter.CodeOK},
		{"plain error", errors.New("boom"), adapter.CodeUnknown},
		{"io.EOF", io.EOF, adapter.CodeUnknown},
		{"context.Canceled", context.Canceled, adapter.CodeCanceled},
		{"context.DeadlineExceeded", context.DeadlineExceeded, adapter.CodeDeadlineExceeded},
		{"os.ErrDeadlineExceeded", os.ErrDeadlineExceeded, adapter.CodeDeadlineExceeded},
		{"wrapped Canceled", fmt.Errorf("call: %w", context.Canceled), adapter.CodeCanceled},
		{"wrapped DeadlineExceeded", fmt.Errorf("call: %w", context.DeadlineExceeded), adapter.CodeDeadlineExceeded},
		{"cause of a cancelled context", context.Cause(cancelledCtx()), adapter.CodeCanceled},
		{"*Error", notFound, adapter.CodeNotFound},
		{"wrapped *Error", fmt.Errorf("outer: %w", notFound), adapter.CodeNotFound},
		{"*Error with zero code derives from Err", &adapter.Error{Err: context.DeadlineExceeded}, adapter.CodeDeadlineExceeded},
		{"*Error with zero code and no Err", &adapter.Error{Message: "?"}, adapter.CodeUnknown},
		{"*Error code wins over Err", &adapter.Error{Code: adapter.CodeUnavailable, Err: context.Canceled}, adapter.CodeUnavailable},
		{"outer *Error wins", &adapter.Error{Code: adapter.CodeInternal, Err: notFound}, adapter.CodeInternal},
		{"ErrClosed", adapter.ErrClosed, adapter.CodeFailedPrecondition},
		{"wrapped ErrClosed", fmt.Errorf("pool: %w", adapter.ErrClosed), adapter.CodeFailedPrecondition},
		{"ErrNotFound", adapter.ErrNotFound, adapter.CodeNotFound},
		{"ErrUnknown", adapter.ErrUnknown, adapter.CodeUnknown},
		{"ErrInvalidArgument", adapter.ErrInvalidArgument, adapter.CodeInvalidArgument},
		{"ErrAlreadyExists", adapter.ErrAlreadyExists, adapter.CodeAlreadyExists},
		{"ErrUnimplemented", adapter.ErrUnimplemented, adapter.CodeUnimplemented},
		{"ErrUnavailable", adapter.ErrUnavailable, adapter.CodeUnavailable},
		{"ErrDeadlineExceeded", adapter.ErrDeadlineExceeded, adapter.CodeDeadlineExceeded},
		{"ErrCanceled", adapter.ErrCanceled, adapter.CodeCanceled},
		{"ErrResourceExhausted", adapter.ErrResourceExhausted, adapter.CodeResourceExhausted},
		{"ErrFailedPrecondition", adapter.ErrFailedPrecondition, adapter.CodeFailedPrecondition},
		{"ErrInternal", adapter.ErrInternal, adapter.CodeInternal},
		{"Wrap of context error", adapter.Wrap(context.Canceled, "port", "ping"), adapter.CodeCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, adapter.CodeOf(tt.err))
		})
	}
}

func cancelledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestErrorsIsAndAs(t *testing.T) {
	sentinels := map[adapter.Code]error{
		adapter.CodeUnknown:            adapter.ErrUnknown,
		adapter.CodeInvalidArgument:    adapter.ErrInvalidArgument,
		adapter.CodeNotFound:           adapter.ErrNotFound,
		adapter.CodeAlreadyExists:      adapter.ErrAlreadyExists,
		adapter.CodeUnimplemented:      adapter.ErrUnimplemented,
		adapter.CodeUnavailable:        adapter.ErrUnavailable,
		adapter.CodeDeadlineExceeded:   adapter.ErrDeadlineExceeded,
		adapter.CodeCanceled:           adapter.ErrCanceled,
		adapter.CodeResourceExhausted:  adapter.ErrResourceExhausted,
		adapter.CodeFailedPrecondition: adapter.ErrFailedPrecondition,
		adapter.CodeInternal:           adapter.ErrInternal,
	}
	for code, sentinel := range sentinels {
		t.Run(code.String(), func(t *testing.T) {
			err := fmt.Errorf("outer: %w", &adapter.Error{Code: code, Adapter: "mock", Message: "x"})
			assert.ErrorIs(t, err, sentinel)
			for other, s := range sentinels {
				if other != code {
					assert.NotErrorIs(t, err, s, other.String())
				}
			}
			assert.NotErrorIs(t, err, adapter.ErrClosed, "ErrClosed matches only itself")

			var e *adapter.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, code, e.Code)
			assert.Equal(t, "mock", e.Adapter)
		})
	}
}

func TestErrorIsContextErrors(t *testing.T) {
	canceled := &adapter.Error{Code: adapter.CodeCanceled, Message: "worker cancelled the request"}
	assert.ErrorIs(t, canceled, context.Canceled)
	assert.NotErrorIs(t, canceled, context.DeadlineExceeded)

	late := &adapter.Error{Code: adapter.CodeDeadlineExceeded}
	assert.ErrorIs(t, late, context.DeadlineExceeded)
	assert.NotErrorIs(t, late, context.Canceled)

	derived := &adapter.Error{Err: fmt.Errorf("wait: %w", context.Canceled)}
	assert.ErrorIs(t, derived, context.Canceled)
	assert.ErrorIs(t, derived, adapter.ErrCanceled)
}

func TestErrClosed(t *testing.T) {
	err := adapter.Wrap(adapter.ErrClosed, "pool", "call")
	assert.ErrorIs(t, err, adapter.ErrClosed)
	assert.ErrorIs(t, err, adapter.ErrFailedPrecondition, "closed is a failed precondition")
	assert.Equal(t, "pool: call: adapter is closed (failed_precondition)", err.Error())

	other := &adapter.Error{Code: adapter.CodeFailedPrecondition, Message: "not configured"}
	assert.NotErrorIs(t, other, adapter.ErrClosed)
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *adapter.Error
		want string
	}{
		{"full", &adapter.Error{Code: adapter.CodeNotFound, Adapter: "pool", Op: "execute_program", Message: `program "qa" not found`},
			`pool: execute_program: program "qa" not found (not_found)`},
		{"code only", &adapter.Error{Code: adapter.CodeUnavailable}, "unavailable"},
		{"cause only", &adapter.Error{Op: "start", Err: errors.New("exec: python3: not found")},
			"start: exec: python3: not found (unknown)"},
		{"message and cause", &adapter.Error{Code: adapter.CodeUnavailable, Adapter: "port", Message: "worker exited with status 1", Err: io.ErrUnexpectedEOF},
			"port: worker exited with status 1: unexpected EOF (unavailable)"},
		{"remote", &adapter.Error{Code: adapter.CodeInternal, Adapter: "port", Op: "execute_program",
			Remote: &adapter.RemoteError{Code: adapter.CodeInternal, Type: "ZeroDivisionError", Message: "division by zero", Traceback: "Traceback ..."}},
			"port: execute_program: ZeroDivisionError: division by zero (internal)"},
		{"remote without type", &adapter.Error{Code: adapter.CodeInvalidArgument, Remote: &adapter.RemoteError{Message: "bad args"}},
			"bad args (invalid_argument)"},
		{"derived code", &adapter.Error{Op: "ping", Err: context.DeadlineExceeded}, "ping: context deadline exceeded (deadline_exceeded)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.err.Error())
		})
	}
}

func TestErrorf(t *testing.T) {
	err := adapter.Errorf(adapter.CodeInvalidArgument, "input %q is missing", "question")
	assert.Equal(t, adapter.CodeInvalidArgument, err.Code)
	assert.Equal(t, `input "question" is missing`, err.Message)
	assert.Nil(t, err.Err)
	assert.ErrorIs(t, err, adapter.ErrInvalidArgument)
}

func TestWrap(t *testing.T) {
	assert.NoError(t, adapter.Wrap(nil, "port", "ping"))

	cause := errors.New("broken pipe")
	err := adapter.Wrap(cause, "port", "ping")
	var e *adapter.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, adapter.CodeUnknown, e.Code)
	assert.Equal(t, "port", e.Adapter)
	assert.Equal(t, "ping", e.Op)
	assert.ErrorIs(t, err, cause)

	// Wrapping an *Error again fills only what it lacked and never nests.
	inner := &adapter.Error{Code: adapter.CodeNotFound, Op: "execute_program", Message: "no program"}
	again := adapter.Wrap(adapter.Wrap(inner, "port", "call"), "pool", "call")
	require.ErrorAs(t, again, &e)
	assert.Equal(t, "port", e.Adapter, "the first adapter to wrap is kept")
	assert.Equal(t, "execute_program", e.Op, "an Op already set is kept")
	assert.Nil(t, e.Err, "no nesting")
	assert.Empty(t, inner.Adapter, "Wrap does not mutate its argument")
}
