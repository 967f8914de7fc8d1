package wire

import (
	"strconv"
	"unicode/utf8"

	"github.com/dspgo/dspgo/adapter"
)

// MaxErrorText is the most of a worker's error message, and of its
// traceback, that an adapter error keeps (docs/protocol.md, "Error
// codes"): 8 KiB each. A longer one is cut, at a character boundary, and
// marked with its full length.
const MaxErrorText = 8 << 10

// maxErrorType bounds the exception type's name.
const maxErrorType = 256

// boundHead keeps the first max bytes of s and marks the cut.
func boundHead(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "… [cut: " + strconv.Itoa(len(s)) + " bytes in all]"
}

// boundTail keeps the last max bytes of s, where a traceback says the
// most, and marks the cut.
func boundTail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := len(s) - max
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return "[cut: " + strconv.Itoa(len(s)) + " bytes in all] …" + s[cut:]
}

// Closed returns the error of a call that the adapter's Close ended while
// it ran: ErrClosed (CodeFailedPrecondition), saying so, never the
// caller's own cancellation.
func Closed(adapterName, op string) error {
	return &adapter.Error{Code: adapter.CodeFailedPrecondition, Op: op, Adapter: adapterName,
		Message: "the adapter was closed while the call ran", Err: adapter.ErrClosed}
}
