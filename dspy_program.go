package dspgo

import (
	"fmt"
	"io"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/dspystate"
	"github.com/dspgo/dspgo/internal/program"
)

// maxDSPyProgramBytes bounds the file LoadDSPyProgram reads.
const maxDSPyProgramBytes = 64 << 20

// LoadDSPyProgram reads a program that Python DSPy saved with
// module.save("program.json") (its state as JSON, DSPy 3.4's format) from
// a dspy.Predict, dspy.ChainOfThought or dspy.ReAct, and returns it as a
// spec to create: KindPredict, KindChainOfThought or KindReact, with the
// saved instructions (empty when they are DSPy's default text), field
// descriptions and demos (those of the predictor that produces the
// outputs: a ReAct's extract.predict). The spec has no ID; a ReAct's tools
// are the client's (WithTool).
//
// DSPy's file records neither the fields' names, nor which are inputs,
// nor their types. signature supplies them, in DSPy's string form without
// the fields DSPy's modules add ("question, context: list[str] -> answer,
// confidence: float", not "reasoning" or "trajectory"); it must have as
// many inputs and outputs as the file. Empty means none: the names are
// then read from the file (DSPy's default descriptions "${name}", the
// demos' keys, the prefixes) and the sides from the module's shape, every
// type is "str", and a Predict whose instructions are not DSPy's default
// ones, which name the fields, cannot be loaded. docs/dspy.md ("Saved
// programs") lists what of the file is read and what is not supported.
// models are the pydantic models the signature's types name
// ("text -> people: list[Person]" and a Model Person; see Model), which
// the file does not record either. Errors have CodeInvalidArgument.
func LoadDSPyProgram(r io.Reader, signature string, models ...Model) (ProgramSpec, error) {
	var sig *Signature
	if signature == "" && len(models) > 0 {
		return ProgramSpec{}, adapter.Errorf(adapter.CodeInvalidArgument, "dspy program: models need the signature whose types name them")
	}
	if signature != "" {
		s, err := program.ParseSignatureModels(signature, models)
		if err != nil {
			return ProgramSpec{}, err
		}
		sig = &s
	}
	data, err := io.ReadAll(io.LimitReader(r, maxDSPyProgramBytes+1))
	if err != nil {
		return ProgramSpec{}, adapter.Errorf(adapter.CodeInvalidArgument, "dspy program: %v", err)
	}
	if len(data) > maxDSPyProgramBytes {
		return ProgramSpec{}, adapter.Errorf(adapter.CodeInvalidArgument, "dspy program: the file is larger than %d MiB", maxDSPyProgramBytes>>20)
	}
	spec, err := dspystate.Load(data, sig)
	if err != nil {
		return ProgramSpec{}, err
	}
	return ProgramSpec{Signature: spec.Signature, Instructions: spec.Instructions, Kind: spec.Kind, Demos: spec.Demos,
		StepInstructions: spec.StepInstructions, StepDemos: spec.StepDemos}, nil
}

// ExportDSPy writes the program as the JSON that DSPy 3.4's
// module.save("program.json") writes for the module dspgo's dspy engine
// runs it with (dspy.Predict, dspy.ChainOfThought or dspy.ReAct of the
// same signature), so that module.load("program.json") of that module in
// Python reads it: the instructions (DSPy's default text when the program
// has none, cleaned as DSPy reads them), the fields' descriptions with
// DSPy's default prefixes, the demos, and no LM. A KindReact program's
// step predictor gets its StepInstructions, or when it has none the
// instructions dspy.ReAct writes for the client's tools (WithTool), which
// a loading ReAct must have too. LoadDSPyProgram
// reads the file back to the same spec (for instructions as DSPy cleans
// them). A KindModule program writes its State, which module.load of its
// module in Python reads; one without a State cannot be exported.
func (p *Program) ExportDSPy(w io.Writer) error {
	data, err := dspystate.Export(p.compiled.Spec, p.tools)
	if err != nil {
		return fmt.Errorf("dspgo: export program %q: %w", p.ID, err)
	}
	_, err = w.Write(data)
	return err
}
