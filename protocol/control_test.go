package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/dspgo/dspgo/protocol"
)

func TestReserved(t *testing.T) {
	reserved := []struct{ command, args string }{
		{"shutdown", ``},
		{"shutdown", `{}`},
		{"shutdown", `{"now":true}`},
		{"cancel", ``},
		{"cancel", `{"id":1}`},
		{"ping", `{"initialization":true}`},
		{"ping", ` { "initialization" : true , "x": [1] } `},
		{"ping", `{"initialization":false,"initialization":true}`},
	}
	for _, r := range reserved {
		why := protocol.Reserved(r.command, json.RawMessage(r.args))
		assert.Contains(t, why, "reserved", "%s %s", r.command, r.args)
		assert.Contains(t, why, "'command'", "%s %s: names the request's field", r.command, r.args)
	}
	callable := []struct{ command, args string }{
		{"ping", ``},
		{"ping", `{}`},
		{"ping", `null`},
		{"ping", `{"initialization":false}`},
		{"ping", `{"initialization":null}`},
		{"ping", `{"initialization":"true"}`}, // refused by ping itself: not a bool
		{"ping", `{"initialization":1}`},
		{"ping", `{"Initialization":true}`}, // keys match exactly
		{"ping", `{"initialization":true,"initialization":false}`},
		{"ping", `[true]`},
		{"ping", `{"initialization":tru`},
		{"describe", ``},
		{"execute_program", `{"initialization":true}`},
		{"Shutdown", ``},
		{"shutdown_now", ``},
		{"", ``},
	}
	for _, c := range callable {
		assert.Empty(t, protocol.Reserved(c.command, json.RawMessage(c.args)), "%s %s", c.command, c.args)
	}
	assert.Equal(t, []string{protocol.CmdShutdown, protocol.CmdCancel}, protocol.ReservedCommands())
	assert.True(t, protocol.IsInitPing(protocol.InitPingArgs))
}
