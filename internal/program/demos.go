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
func normalizeDemos(demos []command.Demo, kind string, sig command.Signature, models *Models, label string) ([]command.Demo, error) {
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
		if d.Reasoning != "" && kind != command.KindChainOfThought {
			return nil, invalid("%s: reasoning is only for %s programs (this one is %s)", at, command.KindChainOfThought, kind)
		}
		out[i] = command.Demo{Inputs: inputs, Outputs: outputs, Reasoning: d.Reasoning}
	}
	return out, nil
}

// demoValues converts one side of a demo: every field present and of its
// type, in the fields' order (but an Optional input, which may be left
// out, as a run's), then no name that is not a field (the first in sorted
// order is named).
func demoValues(values map[string]any, fields []command.Field, models *Models, at, side string) (map[string]any, error) {
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		t, err := models.ParseType(f.Type)
		if err != nil {
			return nil, err // a normalized signature's types parse
		}
		v, ok := values[f.Name]
		if !ok {
			if side == "input" && t.Kind == Optional {
				continue
			}
			return nil, invalid("%s: %s %q is missing (the signature's %ss are %s)", at, side, f.Name, side, names(fields))
		}
		conv, err := t.Convert(v, at+": "+side+" "+f.Name)
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
