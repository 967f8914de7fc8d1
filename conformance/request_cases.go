package conformance

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/protocol"
)

// requestCases are the cases of requests a caller sends past the client:
// those the adapter keeps for itself.
func requestCases() []Case {
	return []Case{
		{Name: "reserved_commands", Doc: "shutdown, cancel and the init ping are the adapter's own: Call, Stream and Broadcast refuse them with CodeInvalidArgument naming the command field, and no worker is stopped; ping and describe stay callable.", Run: caseReservedCommands},
	}
}

// reservedRequests are requests only an adapter sends its workers.
func reservedRequests() []adapter.Request {
	var reqs []adapter.Request
	for _, name := range protocol.ReservedCommands() {
		reqs = append(reqs, adapter.Request{Command: name}, adapter.Request{Command: name, Args: json.RawMessage(`{}`), Session: "s-reserved"})
	}
	return append(reqs,
		adapter.Request{Command: program.CmdCancel, Args: json.RawMessage(`{"id":1}`)},
		adapter.Request{Command: program.CmdPing, Args: protocol.InitPingArgs},
		adapter.Request{Command: program.CmdPing, Args: json.RawMessage(`{ "initialization" : true , "extra": 1 }`), Session: "s-reserved"},
		adapter.Request{Command: program.CmdPing, Args: json.RawMessage(`{"initialization":false,"initialization":true}`)},
	)
}

func requireReserved(t TB, err error, how string, req adapter.Request) {
	t.Helper()
	requireCode(t, adapter.CodeInvalidArgument, err, "%s %s %s", how, req.Command, req.Args)
	assert.Contains(t, err.Error(), "'command'", "%s %s %s: the error names the request's command field", how, req.Command, req.Args)
	assert.Contains(t, err.Error(), "reserved", "%s %s %s", how, req.Command, req.Args)
}

func caseReservedCommands(t TB, env *Env) {
	ctx, a := env.Ctx, env.Adapter
	p := create(t, env, "question -> answer")
	restarts := func() uint64 { s, _ := adapter.StatsOf(a); return s.Restarts }
	before := restarts()

	for _, req := range reservedRequests() {
		for range 3 { // on a pool, more than one worker would be asked
			_, err := a.Call(ctx, req)
			requireReserved(t, err, "Call", req)
		}
		if s, ok := a.(adapter.Streamer); ok {
			n := 0
			for c, err := range s.Stream(ctx, req) {
				n++
				require.Nil(t, c.Response, "Stream %s: no result", req.Command)
				requireReserved(t, err, "Stream", req)
			}
			assert.Equal(t, 1, n, "Stream %s yields its error once", req.Command)
		}
		if b, ok := a.(adapter.Broadcaster); ok {
			requireReserved(t, b.Broadcast(ctx, req), "Broadcast", req)
		}
	}

	// What a caller may send still runs: ping (also with initialization
	// false), describe.
	require.NoError(t, env.Client.Ping(ctx))
	for _, args := range []string{``, `{}`, `{"initialization":false}`, `{"initialization":null}`} {
		_, err := a.Call(ctx, adapter.Request{Command: program.CmdPing, Args: json.RawMessage(args)})
		require.NoError(t, err, "ping %s", args)
	}
	_, err := a.Call(ctx, adapter.Request{Command: program.CmdDescribe})
	require.NoError(t, err)

	// No worker was stopped: calls spread over every worker all succeed,
	// and none was restarted.
	conc := max(env.Adapter.Capabilities().MaxConcurrency, 8)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = env.Client.Execute(ctx, p.ID, map[string]any{"question": fmt.Sprint(i)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "call %d after the refusals", i)
	}
	assert.Equal(t, before, restarts(), "no worker was restarted")
}
