package python_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/protocol"
)

// orderedArgs are a command's arguments as describe lists them, in order.
type orderedArgs []program.Arg

func (o *orderedArgs) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("args: want an object, got %v (%v)", tok, err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		var a struct {
			Type     string `json:"type"`
			Required bool   `json:"required"`
		}
		if err := dec.Decode(&a); err != nil {
			return err
		}
		*o = append(*o, program.Arg{Name: tok.(string), Type: a.Type, Required: a.Required})
	}
	return nil
}

// TestCommandSchemasMatchGo: the worker declares each command of the
// command set with exactly the arguments of program.Schemas, in the same
// order, of the same types, required alike. The Go backends check
// requests against program.Schemas with the worker's messages, so this is
// what makes one malformed request get one message on every backend.
func TestCommandSchemasMatchGo(t *testing.T) {
	wk := startWorker(t)
	wk.send(protocol.Request{ID: 1, Command: command.Describe})
	resp := wk.recv()
	require.True(t, resp.Success, "%+v", resp.Error)
	var d struct {
		Commands []struct {
			Name string      `json:"name"`
			Args orderedArgs `json:"args"`
		} `json:"commands"`
	}
	require.NoError(t, json.Unmarshal(resp.Result, &d))
	described := map[string]orderedArgs{}
	for _, c := range d.Commands {
		described[c.Name] = c.Args
	}
	for name, schema := range program.Schemas {
		args, ok := described[name]
		if !assert.True(t, ok, "the worker has no command %q", name) {
			continue
		}
		want := orderedArgs(schema.Args)
		if want == nil {
			want = orderedArgs{}
		}
		if args == nil {
			args = orderedArgs{}
		}
		assert.Equal(t, want, args, "the arguments of %s", name)
	}
}
