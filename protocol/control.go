package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The protocol's control commands (docs/protocol.md, "Built-in commands"):
// every worker has them, and the reading thread answers them at once.
const (
	// CmdPing answers at once; with InitPingArgs it is the init ping.
	CmdPing = "ping"
	// CmdDescribe lists the worker's commands and their arguments.
	CmdDescribe = "describe"
	// CmdCancel cancels the request in flight with the id it names.
	CmdCancel = "cancel"
	// CmdShutdown stops the worker.
	CmdShutdown = "shutdown"
)

// InitPingArgs are the init ping's arguments: a host's first request is
// CmdPing with these arguments and id InitID.
var InitPingArgs = json.RawMessage(`{"initialization":true}`)

// ErrReservedCommand is wrapped by the error of a request that only the
// host running a worker may send (see Reserved).
var ErrReservedCommand = errors.New("protocol: reserved command")

// reserved are the commands only the host that runs a worker sends, and
// why: a caller sending them would break the host's bookkeeping.
var reserved = []struct{ command, why string }{
	{CmdShutdown, "it stops the worker, which the host then counts as a crash; close the adapter instead"},
	{CmdCancel, "it names a request by the id the host gave it on its stream, which a caller cannot know; end the call's context instead"},
}

// ReservedCommands lists the commands only a host sends its worker, in
// every form: shutdown and cancel. The init ping (CmdPing with
// "initialization": true) is reserved too, but a plain ping is not (see
// Reserved).
func ReservedCommands() []string {
	names := make([]string, len(reserved))
	for i, r := range reserved {
		names[i] = r.command
	}
	return names
}

// Reserved returns why a request with this command and these arguments
// is one only the host that runs a worker may send, or "" when any caller
// may send it. Reserved are the commands of ReservedCommands and the init
// ping: CmdPing whose "initialization" (the exact key; the last one when
// repeated, as JSON readers take it) is true. An adapter refuses a
// reserved request from its callers (Call, Stream and Broadcast) with
// invalid_argument, wrapping ErrReservedCommand.
func Reserved(command string, args json.RawMessage) string {
	for _, r := range reserved {
		if command == r.command {
			return fmt.Sprintf("request field 'command': %q is reserved for the adapter, which sends it itself (%s)", command, r.why)
		}
	}
	if command == CmdPing && IsInitPing(args) {
		return `request field 'command': the init ping (ping with "initialization": true) is reserved for the adapter, which sends it itself (when it starts a worker; send ping without "initialization")`
	}
	return ""
}

// IsInitPing reports whether ping's arguments ask for the handshake:
// args is a JSON object whose key "initialization" (matched exactly; the
// last one when repeated) is true. Malformed arguments are not the init
// ping; the command refuses them.
func IsInitPing(args json.RawMessage) bool {
	var fields map[string]json.RawMessage
	if len(args) == 0 || json.Unmarshal(args, &fields) != nil {
		return false
	}
	return bytes.Equal(bytes.TrimSpace(fields["initialization"]), []byte("true"))
}
