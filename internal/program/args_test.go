package program_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// The messages are the Python worker's (registry.Command.validate), word
// for word.
func TestSchemaCheck(t *testing.T) {
	create := program.Schemas[command.CreateProgram]
	cases := []struct{ args, want string }{
		{``, `command 'create_program': missing required argument 'spec'`},
		{`{}`, `command 'create_program': missing required argument 'spec'`},
		{`null`, `command 'create_program': missing required argument 'spec'`},
		{`{"spec":null}`, `command 'create_program': missing required argument 'spec'`},
		{`{"program_id":"p"}`, `command 'create_program': missing required argument 'spec'`},
		{`{"spec":"a -> b"}`, `command 'create_program': argument 'spec' must be of type object, got string`},
		{`{"spec":{},"program_id":3}`, `command 'create_program': argument 'program_id' must be of type str, got integer`},
		{`{"spec":{},"program_id":3.5}`, `command 'create_program': argument 'program_id' must be of type str, got number`},
		{`{"spec":{},"program_id":true}`, `command 'create_program': argument 'program_id' must be of type str, got boolean`},
		{`{"spec":{},"zz":1,"SPEC":{}}`, `command 'create_program': unknown argument 'SPEC', 'zz' (accepted: program_id, spec)`},
		{`{"spec":{},"it's":1}`, `command 'create_program': unknown argument "it's" (accepted: program_id, spec)`},
		{`[1]`, `request field 'args' must be an object, got array`},
	}
	for _, c := range cases {
		err := create.Check(command.CreateProgram, json.RawMessage(c.args))
		require.Error(t, err, c.args)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), c.args)
		assert.Equal(t, c.want+" (invalid_argument)", err.Error(), c.args)
	}
	require.NoError(t, create.Check(command.CreateProgram, json.RawMessage(`{"spec":{},"program_id":null}`)))

	lm := program.Schemas[command.ConfigureLM]
	require.NoError(t, lm.Check(command.ConfigureLM, json.RawMessage(`{"provider":"dummy","temperature":1,"max_tokens":5}`)), "an integer is a float")
	for args, want := range map[string]string{
		`{"provider":"dummy","max_tokens":1.5}`:                                `command 'configure_lm': argument 'max_tokens' must be of type int, got number`,
		`{"provider":"dummy","max_tokens":1e2}`:                                `command 'configure_lm': argument 'max_tokens' must be of type int, got number`,
		`{"provider":"dummy","temperature":"1"}`:                               `command 'configure_lm': argument 'temperature' must be of type float, got string`,
		`{"provider":"dummy","verify":0}`:                                      `command 'configure_lm': argument 'verify' must be of type bool, got integer`,
		`{"provider":"dummy","script":{}}`:                                     `command 'configure_lm': argument 'script' must be of type array, got object`,
		`{"model":"m"}`:                                                        `command 'configure_lm': missing required argument 'provider'`,
		`{"provider":"dummy","temperature":1` + strings.Repeat("0", 400) + `}`: `command 'configure_lm': argument 'temperature' is out of range`,
	} {
		err := lm.Check(command.ConfigureLM, json.RawMessage(args))
		require.Error(t, err, args)
		assert.Equal(t, want+" (invalid_argument)", err.Error(), args)
	}

	// ping and shutdown take any other argument, as the worker's.
	require.NoError(t, program.Schemas[command.Ping].Check(command.Ping, json.RawMessage(`{"pad":"x"}`)))
	require.NoError(t, program.Schemas[command.Shutdown].Check(command.Shutdown, json.RawMessage(`{"now":1}`)))
	err := program.Schemas[command.Describe].Check(command.Describe, json.RawMessage(`{"x":1}`))
	assert.EqualError(t, err, `command 'describe': unknown argument 'x' (accepted: none) (invalid_argument)`)
}

func TestPyRepr(t *testing.T) {
	for s, want := range map[string]string{
		"spec":      `'spec'`,
		"it's":      `"it's"`,
		`say "hi"`:  `'say "hi"'`,
		`it's "x"`:  `'it\'s "x"'`,
		`back\`:     `'back\\'`,
		"tab\tnl\n": `'tab\tnl\n'`,
		"\x00\x7f":  `'\x00\x7f'`,
		"é世🎉":       `'é世🎉'`,
		"\u00a0":    `'\xa0'`,
		"\u2028":    `'\u2028'`,
	} {
		assert.Equal(t, want, program.PyRepr(s), "%q", s)
	}
}
