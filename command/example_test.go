package command_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
)

// echoWorker is a tiny backend: it caches specs by hash and answers every
// output field with the first input's value in upper case.
type echoWorker struct {
	specs map[string]command.Spec
}

// handle runs one request: the command name and its JSON arguments in,
// the result to encode or an error with its code out. A real worker puts
// them in the frames of docs/protocol.md.
func (w *echoWorker) handle(name string, args json.RawMessage) (any, error) {
	switch name {
	case command.Ping:
		return command.PingResult{Pong: true, WorkerID: "echo-1"}, nil
	case command.CreateProgram:
		var a command.CreateArgs
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, adapter.Errorf(adapter.CodeInvalidArgument, "command %q: %v", name, err)
		}
		hash := specHash(a.Spec)
		w.specs[hash] = a.Spec
		return command.CreateResult{SpecHash: hash}, nil
	case command.ExecuteProgram:
		var a command.ExecuteArgs
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, adapter.Errorf(adapter.CodeInvalidArgument, "command %q: %v", name, err)
		}
		spec, ok := w.specs[a.SpecHash]
		if a.Spec != nil {
			spec, ok = *a.Spec, true
		}
		if !ok {
			// The host resends with the spec when it sees this type.
			return nil, &adapter.Error{Code: adapter.CodeNotFound, Message: "spec " + a.SpecHash + " not found",
				Remote: &adapter.RemoteError{Code: adapter.CodeNotFound, Type: command.SpecNotFoundType}}
		}
		var inputs map[string]any
		if err := json.Unmarshal(a.Inputs, &inputs); err != nil {
			return nil, adapter.Errorf(adapter.CodeInvalidArgument, "inputs: %v", err)
		}
		first := fmt.Sprint(inputs[spec.Signature.Inputs[0].Name])
		outputs := map[string]any{}
		for _, f := range spec.Signature.Outputs {
			outputs[f.Name] = strings.ToUpper(first)
		}
		raw, _ := json.Marshal(outputs)
		return command.ExecuteResult{Outputs: raw, SpecHash: a.SpecHash}, nil
	}
	return nil, adapter.Errorf(adapter.CodeUnimplemented, "unknown command %q", name)
}

// specHash stands in for the real spec hash, the SHA-256 of the spec's
// canonical JSON (docs/protocol.md, "Canonical JSON").
func specHash(spec command.Spec) string {
	raw, _ := json.Marshal(spec)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// A backend outside this module implements the command set from this
// package's names and types: here, create_program and execute_program
// decoded from the JSON arguments a host sends.
func Example() {
	w := &echoWorker{specs: map[string]command.Spec{}}
	call := func(name, args string) []byte {
		result, err := w.handle(name, json.RawMessage(args))
		if err != nil {
			fmt.Printf("%s: %v\n", name, err)
			return nil
		}
		out, _ := json.Marshal(result)
		fmt.Printf("%s: %s\n", name, out)
		return out
	}

	created := call(command.CreateProgram, `{"program_id":"qa","spec":{"signature":{
		"inputs":[{"name":"question","type":"str","description":""}],
		"outputs":[{"name":"answer","type":"str","description":""}]},
		"instructions":"","kind":"predict"}}`)
	var c command.CreateResult
	_ = json.Unmarshal(created, &c)
	call(command.ExecuteProgram, `{"spec_hash":"`+c.SpecHash+`","inputs":{"question":"why?"}}`)
	call(command.ExecuteProgram, `{"spec_hash":"0000","inputs":{"question":"why?"}}`)
	call(command.GetStats, `{}`)
	// Output:
	// create_program: {"spec_hash":"cb7d99b4a298c8a1"}
	// execute_program: {"outputs":{"answer":"WHY?"},"spec_hash":"cb7d99b4a298c8a1"}
	// execute_program: spec 0000 not found (not_found)
	// get_stats: unknown command "get_stats" (unimplemented)
}
