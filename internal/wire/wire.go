// Package wire converts between the protocol's error objects and adapter
// errors, for the backends that speak the protocol (mock, port, pool,
// remote), and checks the requests their callers may send.
package wire

import (
	"context"
	"errors"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/protocol"
)

// Error returns the adapter error for a failed response to the command op
// of the named adapter. The worker's code, message, exception type and
// traceback are kept in Remote, the message and the traceback at most
// MaxErrorText bytes each.
func Error(adapterName, op string, body *protocol.ErrorBody) error {
	code, _ := adapter.ParseCode(body.Code)
	if code == adapter.CodeOK {
		code = adapter.CodeUnknown // a failure is never OK
	}
	return &adapter.Error{
		Code: code, Op: op, Adapter: adapterName,
		Remote: &adapter.RemoteError{Code: code, Message: boundHead(body.Message, MaxErrorText),
			Type: boundHead(body.Type, maxErrorType), Traceback: boundTail(body.Traceback, MaxErrorText)},
	}
}

// Remote returns the worker's own error that err holds (the Remote of an
// *adapter.Error anywhere in its chain of wrapped errors), or nil when err
// is not a worker's answer (a lost worker, a context, a refusal before
// sending).
func Remote(err error) *adapter.RemoteError {
	for ; err != nil; err = errors.Unwrap(err) {
		if e, ok := err.(*adapter.Error); ok && e.Remote != nil {
			return e.Remote
		}
	}
	return nil
}

// Body returns the error object a worker sends for err: its code, its
// message, and for a remote error its type and traceback.
func Body(err error) *protocol.ErrorBody {
	body := &protocol.ErrorBody{Code: adapter.CodeOf(err).String(), Message: err.Error()}
	var e *adapter.Error
	if errors.As(err, &e) {
		switch {
		case e.Remote != nil:
			body.Message, body.Type, body.Traceback = e.Remote.Message, e.Remote.Type, e.Remote.Traceback
		case e.Message != "":
			body.Message = e.Message
		}
	}
	return body
}

// Result returns the response for a handler's result or error.
func Result(id uint64, result []byte, err error) protocol.Response {
	if err != nil {
		return protocol.Response{ID: id, Error: Body(err)}
	}
	return protocol.Response{ID: id, Success: true, Result: result}
}

// CtxError returns ctx's error as an adapter error of the adapter and op,
// or nil while ctx is live.
func CtxError(ctx context.Context, adapterName, op string) error {
	if err := ctx.Err(); err != nil {
		return adapter.Wrap(err, adapterName, op)
	}
	return nil
}

// Reserved returns the error of a request that only the host running a
// worker may send (protocol.Reserved): CodeInvalidArgument naming the
// request's command field, wrapping protocol.ErrReservedCommand. It
// returns nil for a request any caller may send. Every backend checks it
// in Call, Stream and Broadcast before anything else.
func Reserved(adapterName string, req adapter.Request) error {
	why := protocol.Reserved(req.Command, req.Args)
	if why == "" {
		return nil
	}
	return &adapter.Error{Code: adapter.CodeInvalidArgument, Op: req.Command, Adapter: adapterName, Message: why, Err: protocol.ErrReservedCommand}
}
