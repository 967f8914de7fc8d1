// Package quietlog is the logger of a library package given none:
// warnings and errors only, through slog.Default()'s handler (standard
// error unless the program set another). A library never logs at INFO on
// a logger it was not given.
package quietlog

import (
	"context"
	"log/slog"
)

// Or returns l, or when l is nil a logger of warnings and errors only
// through the handler of slog.Default() at the time of the call.
func Or(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(warnHandler{slog.Default().Handler()})
}

// warnHandler passes records of level WARN and above to its handler.
type warnHandler struct{ h slog.Handler }

func (w warnHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.h.Enabled(ctx, l)
}

func (w warnHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	return w.h.Handle(ctx, r)
}

func (w warnHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return warnHandler{w.h.WithAttrs(attrs)}
}

func (w warnHandler) WithGroup(name string) slog.Handler { return warnHandler{w.h.WithGroup(name)} }
