package program

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/dspgo/dspgo/command"
)

// Arg is one argument of a command.
type Arg struct {
	// Name is the argument's key in the request's args.
	Name string
	// Type is one of command.ArgStr, ArgInt, ArgFloat, ArgBool,
	// ArgObject, ArgArray, ArgAny.
	Type string
	// Required reports whether a request must give it (not null).
	Required bool
}

// Schema is a command's arguments, in the order they are checked.
type Schema struct {
	Args []Arg
	// Open lets arguments that are not in Args through unchecked (ping
	// and shutdown, as the Python worker's); otherwise they are refused.
	Open bool
}

// Schemas are the arguments of the command set, exactly as the Python
// worker declares them (python/dspgo_worker/control.py and programs.py),
// in the same order: every backend checks a request's arguments against
// them with Check before it runs the command, so a malformed request gets
// the same code and the same message on each.
//
// execute_program needs spec_hash unless it carries spec; the command
// checks that itself, with MissingArg.
var Schemas = map[string]Schema{
	command.Ping:     {Args: []Arg{{Name: "initialization", Type: command.ArgBool}}, Open: true},
	command.Describe: {},
	command.Cancel:   {Args: []Arg{{Name: "id", Type: command.ArgInt, Required: true}}},
	command.Shutdown: {Open: true},
	command.ConfigureLM: {Args: []Arg{
		{Name: "provider", Type: command.ArgStr, Required: true}, {Name: "model", Type: command.ArgStr}, {Name: "base_url", Type: command.ArgStr},
		{Name: "api_key_env", Type: command.ArgStr}, {Name: "temperature", Type: command.ArgFloat}, {Name: "max_tokens", Type: command.ArgInt},
		{Name: "timeout_ms", Type: command.ArgInt}, {Name: "engine", Type: command.ArgStr}, {Name: "dspy_adapter", Type: command.ArgStr},
		{Name: "verify", Type: command.ArgBool},
		{Name: "delay_ms", Type: command.ArgInt}, {Name: "fail_after_chunks", Type: command.ArgInt}, {Name: "cache", Type: command.ArgBool},
		{Name: "image_urls", Type: command.ArgBool},
		{Name: "script", Type: command.ArgArray}, {Name: "name", Type: command.ArgStr},
	}},
	command.CreateProgram: {Args: []Arg{{Name: "program_id", Type: command.ArgStr}, {Name: "spec", Type: command.ArgObject, Required: true}}},
	command.ExecuteProgram: {Args: []Arg{
		{Name: "program_id", Type: command.ArgStr}, {Name: "spec_hash", Type: command.ArgStr}, {Name: "spec", Type: command.ArgObject},
		{Name: "inputs", Type: command.ArgObject, Required: true}, {Name: "tools", Type: command.ArgArray}, {Name: "max_iters", Type: command.ArgInt},
		{Name: "lm", Type: command.ArgStr},
	}},
	command.DeleteProgram: {Args: []Arg{{Name: "spec_hash", Type: command.ArgStr, Required: true}}},
	command.GetStats:      {},
	command.Reset:         {},
}

// Check checks a command's arguments against the schema, as the Python
// worker does (registry.Command.validate), with its messages: arguments
// not in the schema (unless Open), then each argument in order, missing
// while required or of the wrong type. A null argument counts as absent
// (except of type any). Keys are matched exactly. The error is
// CodeInvalidArgument naming the argument: "command 'create_program':
// missing required argument 'spec'".
func (s Schema) Check(cmd string, raw json.RawMessage) error {
	var args map[string]json.RawMessage
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &args); err != nil {
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) {
				return invalid("request field 'args' must be an object, got %s", JSONTypeName(raw))
			}
			return invalid("request field 'args' is not valid JSON: %v", err)
		}
	}
	if !s.Open {
		var unknown []string
		for name := range args {
			if !slices.ContainsFunc(s.Args, func(a Arg) bool { return a.Name == name }) {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			accepted := make([]string, len(s.Args))
			for i, a := range s.Args {
				accepted[i] = a.Name
			}
			slices.Sort(accepted)
			list := "none"
			if len(accepted) > 0 {
				list = strings.Join(accepted, ", ")
			}
			quoted := make([]string, len(unknown))
			for i, name := range unknown {
				quoted[i] = PyRepr(name)
			}
			return invalid("command %s: unknown argument %s (accepted: %s)", PyRepr(cmd), strings.Join(quoted, ", "), list)
		}
	}
	for _, a := range s.Args {
		value, ok := args[a.Name]
		if !ok || (a.Type != command.ArgAny && JSONTypeName(value) == "null") {
			if a.Required {
				return MissingArg(cmd, a.Name)
			}
			continue
		}
		if !hasType(a.Type, value) {
			return invalid("command %s: argument %s must be of type %s, got %s", PyRepr(cmd), PyRepr(a.Name), a.Type, JSONTypeName(value))
		}
		if a.Type == command.ArgFloat && JSONTypeName(value) == "integer" {
			if _, err := strconv.ParseFloat(string(value), 64); err != nil {
				return invalid("command %s: argument %s is out of range", PyRepr(cmd), PyRepr(a.Name))
			}
		}
	}
	return nil
}

// MissingArg is the error of a command missing a required argument, as
// every backend words it: "command 'create_program': missing required
// argument 'spec'".
func MissingArg(command, arg string) error {
	return invalid("command %s: missing required argument %s", PyRepr(command), PyRepr(arg))
}

func hasType(typ string, value json.RawMessage) bool {
	name := JSONTypeName(value)
	switch typ {
	case command.ArgStr:
		return name == "string"
	case command.ArgInt:
		return name == "integer"
	case command.ArgFloat:
		return name == "integer" || name == "number"
	case command.ArgBool:
		return name == "boolean"
	case command.ArgObject:
		return name == "object"
	case command.ArgArray:
		return name == "array"
	}
	return true // any
}

// JSONTypeName names the type of a JSON value as the Python worker does
// in its messages: null, boolean, integer (a number written without a
// fraction or exponent), number, string, array or object.
func JSONTypeName(value json.RawMessage) string {
	v := strings.TrimLeft(string(value), " \t\r\n")
	if v == "" {
		return "null"
	}
	switch v[0] {
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	case '"':
		return "string"
	case '[':
		return "array"
	case '{':
		return "object"
	}
	if strings.ContainsAny(v, ".eE") {
		return "number"
	}
	return "integer"
}

// PyRepr quotes s as Python's repr does, so that messages name arguments
// and commands alike on every backend: 'spec', or "it's" when s holds a
// single quote and no double quote.
func PyRepr(s string) string { return pyQuoted(s, unicode.IsPrint) }

// pyQuoted quotes s as Python's repr does, but for the characters it
// writes as they are: those keep reports (repr's are those Python calls
// printable). Backslash, the quote, tab, line feed and carriage return are
// escaped as repr escapes them, any other character keep refuses as
// \xhh, \uhhhh or \Uhhhhhhhh.
func pyQuoted(s string, keep func(rune) bool) string {
	quote := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == '\\' || r == rune(quote):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case keep(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}
