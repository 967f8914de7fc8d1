package program

import (
	"fmt"
	"slices"

	"github.com/dspgo/dspgo/command"
)

// normalizeDemos validates demos against a normalized signature and
// returns them with their values converted (nil when there are none).
// Errors have CodeInvalidArgument and name the demo as label and its
// index ("demo 3") and the field. The Python worker keeps the same rule
// with the same messages for a spec's demos (protocol/testdata/demos.json).
//
// A demo may lack an input or an output, which DSPy then leaves out of
// the prompt (and so do the engines); an example (examples: of Evaluate
// and Compile) may not, as it runs and is scored.
func normalizeDemos(demos []command.Demo, kind string, sig command.Signature, models *Models, label string, examples bool) ([]command.Demo, error) {
	if len(demos) == 0 {
		return nil, nil
	}
	out := make([]command.Demo, len(demos))
	for i, d := range demos {
		at := fmt.Sprintf("%s %d", label, i)
		inputs, err := demoValues(d.Inputs, sig.Inputs, models, at, "input")
		if err != nil {
			return nil, err
		}
		outputs, err := demoValues(d.Outputs, sig.Outputs, models, at, "output")
		if err != nil {
			return nil, err
		}
		if d.Reasoning != "" && kind != command.KindChainOfThought && kind != command.KindReact {
			return nil, invalid("%s: reasoning is only for %s and %s programs (this one is %s)", at, command.KindChainOfThought, command.KindReact, kind)
		}
		if d.Trajectory != nil && kind != command.KindReact {
			return nil, invalid("%s: trajectory is only for %s programs (this one is %s)", at, command.KindReact, kind)
		}
		switch {
		case !examples:
		case len(inputs) == 0:
			return nil, invalid("%s holds no input: an example is run on its inputs", at)
		case len(outputs) == 0 && d.Reasoning == "":
			return nil, invalid("%s holds no output: an example is scored on its outputs", at)
		}
		out[i] = command.Demo{Inputs: inputs, Outputs: outputs, Reasoning: d.Reasoning, Trajectory: copyString(d.Trajectory)}
	}
	return out, nil
}

// stepFields are the outputs of a dspy.ReAct step, typed as a spec's
// step demos convert them (the tool's name a str: the tools are a run's).
var stepFields = []command.Field{
	{Name: command.StepOutputs[0], Type: "str"}, {Name: command.StepOutputs[1], Type: "str"}, {Name: command.StepOutputs[2], Type: "dict[str, Any]"},
}

// normalizeStepDemos validates a react spec's step demos (Spec.StepDemos)
// as normalizeDemos does its demos, their outputs those of a step
// (stepFields), and returns them converted (nil when there are none).
func normalizeStepDemos(demos []command.Demo, kind string, sig command.Signature, models *Models) ([]command.Demo, error) {
	if len(demos) == 0 {
		return nil, nil
	}
	if kind != command.KindReact {
		return nil, invalid("step_demos are for kind %q only (this spec's kind is %q)", command.KindReact, kind)
	}
	out := make([]command.Demo, len(demos))
	for i, d := range demos {
		at := fmt.Sprintf("step demo %d", i)
		inputs, err := demoValues(d.Inputs, sig.Inputs, models, at, "input")
		if err != nil {
			return nil, err
		}
		outputs, err := demoValues(d.Outputs, stepFields, models, at, "output")
		if err != nil {
			return nil, err
		}
		if d.Reasoning != "" {
			return nil, invalid("%s: a step has no reasoning (it gives %s)", at, names(stepFields))
		}
		out[i] = command.Demo{Inputs: inputs, Outputs: outputs, Trajectory: copyString(d.Trajectory)}
	}
	return out, nil
}

// copyString returns a copy of *s, nil for nil: a normalized demo shares
// no pointer with the caller's.
func copyString(s *string) *string {
	if s == nil {
		return nil
	}
	c := *s
	return &c
}

// demoValues converts one side of a demo: each field it holds converted
// to its type (as a run's input, by ConvertField) or null, in the fields'
// order, then no name that is not a field (the first in sorted order is
// named). A field left out or null makes the demo one that DSPy shows as
// incomplete, as a bootstrapped demo often is.
func demoValues(values map[string]any, fields []command.Field, models *Models, at, side string) (map[string]any, error) {
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		v, ok := values[f.Name]
		if !ok {
			continue
		}
		if isNull(v) {
			out[f.Name] = nil
			continue
		}
		t, err := models.ParseType(f.Type)
		if err != nil {
			return nil, err // a normalized signature's types parse
		}
		conv, err := t.ConvertField(v, at+": "+side+" "+f.Name)
		if err != nil {
			return nil, invalid("%v", err)
		}
		out[f.Name] = conv
	}
	if len(values) > len(out) {
		var extra []string
		for name := range values {
			if _, ok := out[name]; !ok {
				extra = append(extra, name)
			}
		}
		slices.Sort(extra)
		return nil, invalid("%s: %s %q is not in the signature (the signature's %ss are %s)", at, side, extra[0], side, names(fields))
	}
	return out, nil
}
