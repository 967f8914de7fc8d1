package quietlog_test

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/dspgo/dspgo/internal/quietlog"
)

// TestOr: a given logger is used as is; none means warnings and errors
// only, through slog.Default()'s handler, attributes and groups kept.
func TestOr(t *testing.T) {
	var given bytes.Buffer
	l := slog.New(slog.NewTextHandler(&given, &slog.HandlerOptions{Level: slog.LevelDebug}))
	assert.Same(t, l, quietlog.Or(l))

	var out bytes.Buffer
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	slog.SetDefault(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})))
	q := quietlog.Or(nil).With("adapter", "pool").WithGroup("g")
	q.Debug("debug")
	q.Info("worker started")
	assert.False(t, q.Enabled(t.Context(), slog.LevelInfo))
	assert.Empty(t, out.String())
	q.Warn("worker died", "k", 1)
	q.Error("gone")
	assert.Equal(t, "level=WARN msg=\"worker died\" adapter=pool g.k=1\nlevel=ERROR msg=gone adapter=pool\n", out.String())
}
