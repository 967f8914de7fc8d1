package main

import (
	"bytes"
	"encoding/json"

	"github.com/dspgo/dspgo"
)

// isDSPyProgram reports whether data, a --program file, is a program DSPy
// saved with module.save("program.json") rather than a dspgo spec file: a
// JSON object with DSPy's "metadata", a signature object (a Predict's
// state), or a ChainOfThought's or ReAct's predictors.
func isDSPyProgram(data []byte) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return false
	}
	_, metadata := top["metadata"]
	_, predict := top["predict"]
	_, react := top["react"]
	sig := bytes.TrimSpace(top["signature"])
	return metadata || predict || react || len(sig) > 0 && sig[0] == '{'
}

// loadDSPyProgram loads data, a program DSPy saved (the --program file),
// typed by --signature when given (dspgo.LoadDSPyProgram).
func loadDSPyProgram(f runFlags, data []byte) (dspgo.ProgramSpec, error) {
	if f.kind != "" || f.instructions != "" {
		return dspgo.ProgramSpec{}, usagef("leave them out: the saved program has its own", "--kind and --instructions do not apply to a DSPy program (--program %s)", f.program)
	}
	spec, err := dspgo.LoadDSPyProgram(bytes.NewReader(data), f.signature)
	if err != nil {
		return dspgo.ProgramSpec{}, usagef(`give --signature with the program's fields and types, such as "question, context: list[str] -> answer"; `+
			"for a custom module's saved state, add --module NAME, the name a python.handlers module registered its class under", "--program %s: %v", f.program, err)
	}
	return spec, nil
}

// moduleSpec builds the spec of a custom dspy.Module: --module names it,
// --signature gives its inputs and outputs, and --program, when given,
// its saved state (dspgo.ProgramSpec.State).
func moduleSpec(f runFlags) (dspgo.ProgramSpec, error) {
	if f.signature == "" {
		return dspgo.ProgramSpec{}, usagef(`give --signature with the module's inputs and outputs, such as "question -> answer"`, "--module %s has no signature", f.module)
	}
	if f.kind != "" || f.instructions != "" {
		return dspgo.ProgramSpec{}, usagef("leave them out: the module has its own", "--kind and --instructions do not apply to --module")
	}
	sig, err := dspgo.ParseSignature(f.signature)
	if err != nil {
		return dspgo.ProgramSpec{}, usagef(`write it like "question, context: list[str] -> answer"`, "--signature: %v", err)
	}
	spec := dspgo.ProgramSpec{Kind: dspgo.KindModule, Module: f.module, Signature: sig}
	if f.program != "" {
		if spec.State, err = readProgramFile(f.program); err != nil {
			return dspgo.ProgramSpec{}, err
		}
	}
	return spec, nil
}
