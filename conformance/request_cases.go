package conformance

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/protocol"
)

// requestCases are the cases of requests a caller sends past the client:
// those the adapter keeps for itself, and malformed ones.
func requestCases() []Case {
	return []Case{
		{Name: "reserved_commands", Doc: "shutdown, cancel and the init ping are the adapter's own: Call, Stream and Broadcast refuse them with CodeInvalidArgument naming the command field, and no worker is stopped; ping and describe stay callable.", Run: caseReservedCommands},
		{Name: "malformed_requests", Doc: "Every command of the command set, sent without a required argument, with an argument of the wrong type or an unknown one, is CodeInvalidArgument naming that argument, worded alike on every backend.", Run: caseMalformedRequests},
	}
}

// reservedRequests are requests only an adapter sends its workers.
func reservedRequests() []adapter.Request {
	var reqs []adapter.Request
	for _, name := range protocol.ReservedCommands() {
		reqs = append(reqs, adapter.Request{Command: name}, adapter.Request{Command: name, Args: json.RawMessage(`{}`), Session: "s-reserved"})
	}
	return append(reqs,
		adapter.Request{Command: command.Cancel, Args: json.RawMessage(`{"id":1}`)},
		adapter.Request{Command: command.Ping, Args: protocol.InitPingArgs},
		adapter.Request{Command: command.Ping, Args: json.RawMessage(`{ "initialization" : true , "extra": 1 }`), Session: "s-reserved"},
		adapter.Request{Command: command.Ping, Args: json.RawMessage(`{"initialization":false,"initialization":true}`)},
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
		_, err := a.Call(ctx, adapter.Request{Command: command.Ping, Args: json.RawMessage(args)})
		require.NoError(t, err, "ping %s", args)
	}
	_, err := a.Call(ctx, adapter.Request{Command: command.Describe})
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

// wrongValue is a JSON value that is not of the argument type typ.
func wrongValue(typ string) string {
	if typ == command.ArgStr {
		return `1`
	}
	return `"x"`
}

func caseMalformedRequests(t TB, env *Env) {
	ctx, a := env.Ctx, env.Adapter
	p := create(t, env, "question -> answer")
	spec, err := json.Marshal(command.Spec{Signature: p.Spec.Signature, Instructions: p.Spec.Instructions, Kind: p.Spec.Kind})
	require.NoError(t, err)

	// A well-formed request of each command a caller may send, and the
	// error code it gets (none, or not_found for a spec never compiled).
	valid := map[string]struct {
		args map[string]json.RawMessage
		code adapter.Code
	}{
		command.Ping:           {map[string]json.RawMessage{"initialization": json.RawMessage(`false`)}, adapter.CodeOK},
		command.Describe:       {nil, adapter.CodeOK},
		command.ConfigureLM:    {map[string]json.RawMessage{"provider": json.RawMessage(`"dummy"`)}, adapter.CodeOK},
		command.CreateProgram:  {map[string]json.RawMessage{"program_id": json.RawMessage(`"p"`), "spec": spec}, adapter.CodeOK},
		command.ExecuteProgram: {map[string]json.RawMessage{"spec_hash": json.RawMessage(`"` + p.Hash + `"`), "spec": spec, "inputs": json.RawMessage(`{"question":"?"}`)}, adapter.CodeOK},
		command.DeleteProgram:  {map[string]json.RawMessage{"spec_hash": json.RawMessage(`"0000"`)}, adapter.CodeNotFound},
		command.GetStats:       {nil, adapter.CodeOK},
		command.Reset:          {nil, adapter.CodeOK},
	}
	send := func(command string, args map[string]json.RawMessage) error {
		raw, err := json.Marshal(args)
		require.NoError(t, err)
		if args == nil {
			raw = nil
		}
		_, err = a.Call(ctx, adapter.Request{Command: command, Args: raw})
		return err
	}
	without := func(args map[string]json.RawMessage, name string) map[string]json.RawMessage {
		out := maps.Clone(args)
		delete(out, name)
		return out
	}
	with := func(args map[string]json.RawMessage, name, value string) map[string]json.RawMessage {
		out := maps.Clone(args)
		if out == nil {
			out = map[string]json.RawMessage{}
		}
		out[name] = json.RawMessage(value)
		return out
	}
	refused := func(err error, want, what string) {
		t.Helper()
		requireCode(t, adapter.CodeInvalidArgument, err, what)
		assert.Contains(t, err.Error(), want, what)
	}

	// Every command of the command set that a caller may send.
	for _, cmd := range slices.Sorted(maps.Keys(program.Schemas)) {
		if protocol.Reserved(cmd, nil) != "" {
			continue // refused whatever its arguments: reserved_commands
		}
		schema := program.Schemas[cmd]
		base, ok := valid[cmd]
		require.True(t, ok, "the case has no well-formed %s request", cmd)
		if base.code == adapter.CodeOK {
			require.NoError(t, send(cmd, base.args), "well-formed %s", cmd)
		} else {
			requireCode(t, base.code, send(cmd, base.args), "well-formed %s", cmd)
		}
		for _, arg := range schema.Args {
			q := program.PyRepr(arg.Name)
			if arg.Required {
				want := fmt.Sprintf("command %s: missing required argument %s", program.PyRepr(cmd), q)
				refused(send(cmd, without(base.args, arg.Name)), want, cmd+" without "+arg.Name)
				refused(send(cmd, with(base.args, arg.Name, `null`)), want, cmd+" with "+arg.Name+" null")
			}
			if arg.Type != command.ArgAny {
				want := fmt.Sprintf("command %s: argument %s must be of type %s", program.PyRepr(cmd), q, arg.Type)
				refused(send(cmd, with(base.args, arg.Name, wrongValue(arg.Type))), want, cmd+" with "+arg.Name+" of another type")
			}
		}
		if !schema.Open {
			refused(send(cmd, with(base.args, "no_such_arg", `1`)),
				fmt.Sprintf("command %s: unknown argument 'no_such_arg'", program.PyRepr(cmd)), cmd+" with an unknown argument")
		}
	}

	// execute_program needs spec_hash unless it carries spec.
	exec := valid[command.ExecuteProgram].args
	refused(send(command.ExecuteProgram, without(without(exec, "spec"), "spec_hash")),
		"command 'execute_program': missing required argument 'spec_hash'", "execute_program with neither spec nor spec_hash")
	require.NoError(t, send(command.ExecuteProgram, without(exec, "spec_hash")), "execute_program with spec and no spec_hash")

	// The issue this case was written for: create_program without a spec
	// names the spec, not what its absence leads to.
	_, err = a.Call(ctx, adapter.Request{Command: command.CreateProgram, Args: json.RawMessage(`{"program_id":"p"}`)})
	refused(err, "missing required argument 'spec'", "create_program without spec")
	assert.NotContains(t, err.Error(), "signature", "the missing spec is named, not a consequence of it")
	require.NoError(t, env.Client.Ping(ctx), "still usable")
	_, err = env.Client.Execute(ctx, p.ID, map[string]any{"question": "?"})
	require.NoError(t, err, "still usable")
}
