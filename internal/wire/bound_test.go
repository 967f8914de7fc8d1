package wire_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/wire"
	"github.com/dspgo/dspgo/protocol"
)

// TestWorkerErrorTextIsBounded: a worker's 100 KB message and traceback
// are not copied whole into the Go error: each keeps MaxErrorText bytes,
// cut at a character boundary and marked with the full length.
func TestWorkerErrorTextIsBounded(t *testing.T) {
	long := strings.Repeat("é", 50_000) // 100,000 bytes, two per character
	tb := "Traceback (most recent call last):\n" + strings.Repeat("  frame\n", 20_000) + "ValueError: the last line"
	err := wire.Error("port", "boom", &protocol.ErrorBody{Code: "internal", Message: long, Type: strings.Repeat("T", 1000), Traceback: tb})
	r, ok := errors.AsType[*adapter.Error](err)
	require.True(t, ok)
	msg := r.Remote.Message
	assert.LessOrEqual(t, len(msg), wire.MaxErrorText+64)
	assert.True(t, strings.HasPrefix(msg, "éé"))
	assert.Contains(t, msg, "[cut: 100000 bytes in all]")
	assert.True(t, utf8.ValidString(msg), "cut at a character boundary")
	assert.LessOrEqual(t, len(r.Remote.Traceback), wire.MaxErrorText+64)
	assert.True(t, strings.HasSuffix(r.Remote.Traceback, "ValueError: the last line"), "a traceback keeps its end")
	assert.Contains(t, r.Remote.Traceback, "[cut: ")
	assert.Less(t, len(r.Remote.Type), 300)
	assert.Less(t, len(err.Error()), 2*wire.MaxErrorText)
	assert.Equal(t, adapter.CodeInternal, adapter.CodeOf(err))

	short := wire.Error("port", "boom", &protocol.ErrorBody{Code: "not_found", Message: "no such program", Traceback: "tb"})
	r, _ = errors.AsType[*adapter.Error](short)
	assert.Equal(t, "no such program", r.Remote.Message, "a short message is kept as it is")
	assert.Equal(t, "tb", r.Remote.Traceback)
}

func TestClosed(t *testing.T) {
	err := wire.Closed("port", "execute_program")
	assert.ErrorIs(t, err, adapter.ErrClosed)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err))
	assert.Contains(t, err.Error(), "closed while the call ran")
	assert.NotErrorIs(t, err, context.Canceled)
}
