package conformance

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
)

// commandCases are the cases of the command set's types (package
// command), sent and read past the client.
func commandCases() []Case {
	return []Case{
		{Name: "command_types", Doc: "Each command, its arguments encoded from its command type, answers a result that decodes into its command type with every field that type always has.", Run: caseCommandTypes},
	}
}

func caseCommandTypes(t TB, env *Env) {
	// send sends a command with its arguments; call also checks its result.
	send := func(name string, args any) (adapter.Response, error) {
		raw, err := json.Marshal(args)
		require.NoError(t, err)
		return env.Adapter.Call(env.Ctx, adapter.Request{Command: name, Args: raw})
	}
	check := func(name string, resp adapter.Response, result any) {
		t.Helper()
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(resp.Result, &fields), "%s answers an object", name)
		for _, key := range requiredKeys(reflect.TypeOf(result).Elem()) {
			assert.Contains(t, fields, key, "%s's result has %q (%T)", name, key, result)
		}
		require.NoError(t, json.Unmarshal(resp.Result, result), "%s's result decodes into %T", name, result)
	}
	call := func(name string, args any, result any) {
		t.Helper()
		resp, err := send(name, args)
		require.NoError(t, err, name)
		check(name, resp, result)
	}

	var ping command.PingResult
	call(command.Ping, struct{}{}, &ping)
	assert.True(t, ping.Pong)

	var describe command.DescribeResult
	call(command.Describe, struct{}{}, &describe)
	argTypes := []string{command.ArgStr, command.ArgInt, command.ArgFloat, command.ArgBool, command.ArgObject, command.ArgArray, command.ArgAny}
	for _, c := range describe.Commands {
		for arg, info := range c.Args {
			assert.Contains(t, argTypes, info.Type, "the type of %s's argument %s", c.Name, arg)
		}
	}

	var lm command.ConfigureLMResult
	call(command.ConfigureLM, command.LMArgs{Provider: command.ProviderDummy}, &lm)
	assert.Equal(t, command.ProviderDummy, lm.Provider)

	spec := command.Spec{Kind: command.KindPredict, Signature: command.Signature{
		Inputs: []command.Field{{Name: "question", Type: "str"}}, Outputs: []command.Field{{Name: "answer", Type: "str"}},
	}}
	var created command.CreateResult
	call(command.CreateProgram, command.CreateArgs{ProgramID: "typed", Spec: spec}, &created)
	assert.Len(t, created.SpecHash, 64)

	var executed command.ExecuteResult
	call(command.ExecuteProgram, command.ExecuteArgs{SpecHash: created.SpecHash, Spec: &spec, Inputs: json.RawMessage(`{"question":"?"}`)}, &executed)
	assert.Equal(t, created.SpecHash, executed.SpecHash)
	var outputs map[string]any
	require.NoError(t, json.Unmarshal(executed.Outputs, &outputs))
	assert.Contains(t, outputs, "answer")
	assert.Nil(t, executed.Trajectory, "a predict program has no trajectory")

	var stats command.StatsResult
	call(command.GetStats, struct{}{}, &stats)
	assert.NotNil(t, stats.Calls, "calls by command (the worker that answers may not be the one that ran the execution)")
	assert.NotNil(t, stats.LMs, "named LMs, {} when none")

	// With several workers, the one that answers may not cache the spec:
	// not_found, which the client takes as done.
	resp, err := send(command.DeleteProgram, command.DeleteArgs(created))
	if adapter.CodeOf(err) != adapter.CodeNotFound {
		require.NoError(t, err, command.DeleteProgram)
		var deleted command.DeleteResult
		check(command.DeleteProgram, resp, &deleted)
		assert.True(t, deleted.Deleted)
	}

	var reset command.ResetResult
	call(command.Reset, struct{}{}, &reset)
	assert.True(t, reset.Reset)
}

// requiredKeys are the JSON names of a struct's fields that are always
// encoded: those without omitempty.
func requiredKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" && !slices.Contains(strings.Split(opts, ","), "omitempty") {
			keys = append(keys, name)
		}
	}
	return keys
}
