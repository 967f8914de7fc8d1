// Package dspystate reads and writes the JSON that DSPy's Module.save
// writes for a program's state (save_program=False, a ".json" path), in
// DSPy 3.4's format, for the modules a dspgo spec maps to: a dspy.Predict,
// a dspy.ChainOfThought or a dspy.ReAct saved on its own.
//
// The file holds, for each of the module's predictors (by its attribute
// path: the Predict itself at the top level, "predict" of a
// ChainOfThought, "react" and "extract.predict" of a ReAct), its
// signature's instructions and, field by field in the signature's order,
// each field's prefix and description, but neither the fields' names, nor
// which are inputs, nor their types; then its demos (objects by field
// name), its LM's settings, and "metadata" with the versions of Python,
// dspy and cloudpickle that saved it. docs/dspy.md ("Saved programs")
// says how each part maps to a spec.
package dspystate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// DSPyVersion is the DSPy whose format this package reads and writes, and
// the version Export records in the file's metadata (DSPy's load warns
// when it runs another).
const DSPyVersion = "3.4.1"

// The fields that DSPy's modules add to a spec's signature.
const (
	reasoningField  = command.ReasoningField
	trajectoryField = "trajectory"
)

// reactStepOutputs are the outputs of a ReAct's step predictor, after its
// inputs and the trajectory.
var reactStepOutputs = []string{"next_thought", "next_tool_name", "next_tool_args"}

// predictorState is one predictor's saved state (Predict.dump_state) and,
// for a Predict saved on its own, the file's metadata.
type predictorState struct {
	Traces    json.RawMessage  `json:"traces"`
	Train     json.RawMessage  `json:"train"`
	Demos     []map[string]any `json:"demos"`
	Signature *signatureState  `json:"signature"`
	LM        json.RawMessage  `json:"lm"`
	// Fields is the configuration of decision outputs (DSPy 3.4), which
	// dspgo has no counterpart of.
	Fields map[string]json.RawMessage `json:"fields"`
	// ExtendedSignature is DSPy 2.5's, which DSPy itself no longer loads.
	ExtendedSignature json.RawMessage `json:"extended_signature"`
	Metadata          json.RawMessage `json:"metadata"`
}

type signatureState struct {
	Instructions *string      `json:"instructions"`
	Fields       []savedField `json:"fields"`
}

type savedField struct {
	Prefix      string `json:"prefix"`
	Description string `json:"description"`
}

// predictor is a predictor of the file: its label in messages, its state
// and the names its fields have in a spec's module, in order.
type predictor struct {
	label string
	state predictorState
	names []string
}

// invalid is a CodeInvalidArgument error about the file.
func invalid(format string, args ...any) error {
	return adapter.Errorf(adapter.CodeInvalidArgument, "dspy program: "+format, args...)
}

// Load reads a program saved by DSPy's module.save("program.json") as a
// normalized spec. The kind follows from the predictors the file holds: a
// Predict's state alone is KindPredict, "predict" KindChainOfThought,
// "react" and "extract.predict" KindReact. Any other module is refused.
//
// sig gives the names, sides (inputs or outputs) and types of the fields,
// which the file does not record: its inputs and outputs are the declared
// ones (without "reasoning", "trajectory" and a ReAct step's fields), and
// must be as many as the file's. Nil means none: each field's name is then
// read from the file (a description that is DSPy's default "${name}", a
// demo's key whose prefix is the field's, or the prefix's words in
// snake_case), the sides from the module's shape (DSPy's default
// instructions name them; for a Predict with other instructions, a
// signature is needed), and every type is "str".
//
// Descriptions are the saved ones ("${name}" is none); instructions the
// saved ones, empty when they are DSPy's default text for the fields;
// demos those of the predictor that produces the outputs, whose keys that
// are not fields of the predictor are ignored (DSPy's adapters ignore them
// too). A ReAct's step instructions are its StepInstructions when they are
// not the text dspy.ReAct writes (for any tools): an optimizer's. A
// ReAct's extraction demos keep their trajectory and reasoning, and its
// step predictor's demos that hold a step's output are its StepDemos
// (the others never reach a prompt). What the spec has no place for is
// an error: decision field configurations. Prefixes, the LM settings,
// traces, train and the metadata are not read. Errors have
// CodeInvalidArgument.
func Load(data []byte, sig *command.Signature) (command.Spec, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		if err == nil {
			err = errors.New("null")
		}
		return command.Spec{}, invalid("the file is not a JSON object, as DSPy's module.save writes to a .json path "+
			"(.pkl files and save_program=True directories are not read): %v", err)
	}
	var kind string
	var labels, keys []string
	switch keysOf(top) {
	case "":
		return command.Spec{}, invalid("the file holds no predictor")
	case "predict":
		kind, labels, keys = command.KindChainOfThought, []string{"ChainOfThought.predict"}, []string{"predict"}
	case "extract.predict, react":
		kind, labels, keys = command.KindReact, []string{"ReAct.extract.predict", "ReAct.react"}, []string{"extract.predict", "react"}
	default:
		if _, ok := top["signature"]; !ok {
			return command.Spec{}, invalid("the file holds the state of the predictors %s; dspgo loads a dspy.Predict, "+
				"dspy.ChainOfThought or dspy.ReAct saved on its own: run a custom module as a %q program, the file as its state "+
				"(docs/dspy.md, \"Custom modules\")", keysOf(top), command.KindModule)
		}
		kind, labels, keys = command.KindPredict, []string{"Predict"}, []string{""}
	}
	preds := make([]*predictor, len(keys))
	for i, key := range keys {
		raw := data
		if key != "" {
			raw = top[key]
		}
		p := &predictor{label: labels[i]}
		if err := p.decode(raw); err != nil {
			return command.Spec{}, err
		}
		preds[i] = p
	}
	main := preds[0] // the predictor that produces the outputs
	var extra []string
	switch kind {
	case command.KindChainOfThought:
		extra = []string{reasoningField}
	case command.KindReact:
		extra = []string{trajectoryField, reasoningField}
	}

	inputs, outputs, err := fieldSides(kind, preds, extra, sig)
	if err != nil {
		return command.Spec{}, err
	}
	main.names = slices.Concat(names(inputs), extra, names(outputs))
	if kind == command.KindReact {
		preds[1].names = slices.Concat(names(inputs), []string{trajectoryField}, reactStepOutputs)
	}
	for _, p := range preds {
		if err := p.checkNames(sig != nil); err != nil {
			return command.Spec{}, err
		}
	}

	spec := command.Spec{Kind: kind, Signature: command.Signature{Inputs: inputs, Outputs: outputs}}
	if sig != nil {
		spec.Signature.Models = sig.Models
	}
	saved := main.state.Signature.Fields
	for i := range inputs {
		inputs[i].Description = description(saved[i], inputs[i].Name)
	}
	for i := range outputs {
		outputs[i].Description = description(saved[len(inputs)+len(extra)+i], outputs[i].Name)
	}
	spec.Instructions = *main.state.Signature.Instructions
	if spec.Instructions == DefaultInstructions(names(inputs), names(outputs)) {
		spec.Instructions = ""
	}
	if spec.Demos, err = main.demos(kind, inputs, outputs); err != nil {
		return command.Spec{}, err
	}
	if kind == command.KindReact {
		if spec.StepDemos, err = preds[1].stepDemos(inputs); err != nil {
			return command.Spec{}, err
		}
		effective := spec.Instructions
		if effective == "" {
			effective = DefaultInstructions(names(inputs), names(outputs))
		}
		if step := *preds[1].state.Signature.Instructions; !isReactInstructions(step, effective, names(inputs), names(outputs)) {
			spec.StepInstructions = step
		}
	}
	c, err := program.Compile(spec)
	if err != nil {
		msg := err.Error()
		var ae *adapter.Error
		if errors.As(err, &ae) {
			msg = ae.Message
		}
		if sig == nil && (strings.HasPrefix(msg, "demo ") || strings.HasPrefix(msg, "step demo ")) {
			msg += " (the file records no types, so every field is str: give the signature to type them)"
		}
		label := main.label
		if strings.HasPrefix(msg, "step demo ") {
			label = preds[1].label
		}
		return command.Spec{}, invalid("%s: %s", label, msg)
	}
	return c.Spec, nil
}

// keysOf lists an object's keys but "metadata", sorted, separated by ", ".
func keysOf(top map[string]json.RawMessage) string {
	var keys []string
	for k := range top {
		if k != "metadata" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

func names(fields []command.Field) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.Name
	}
	return out
}

// decode reads a predictor's state and checks what dspgo needs of it.
func (p *predictor) decode(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&p.state); err != nil {
		return invalid("%s: %v", p.label, err)
	}
	s := p.state
	switch {
	case s.Signature == nil:
		return invalid("%s: the state has no signature", p.label)
	case s.Signature.Instructions == nil:
		return invalid("%s: the signature has no instructions", p.label)
	case len(s.Fields) > 0:
		return invalid("%s: decision field configurations (\"fields\") are not supported", p.label)
	case len(s.ExtendedSignature) > 0:
		return invalid("%s: an extended_signature (DSPy 2.5's format) is not supported", p.label)
	}
	return nil
}

// fieldSides returns the declared inputs and outputs, named and typed by
// sig, or else as the file tells them.
func fieldSides(kind string, preds []*predictor, extra []string, sig *command.Signature) (inputs, outputs []command.Field, err error) {
	main := preds[0]
	saved := main.state.Signature.Fields
	if sig != nil {
		inputs, outputs = slices.Clone(sig.Inputs), slices.Clone(sig.Outputs)
		if want := len(inputs) + len(extra) + len(outputs); len(saved) != want {
			return nil, nil, invalid("%s has %d fields; the signature gives %s", main.label, len(saved), count(len(inputs), extra, len(outputs)))
		}
		if kind == command.KindReact {
			if got, want := len(preds[1].state.Signature.Fields), len(inputs)+1+len(reactStepOutputs); got != want {
				return nil, nil, invalid("%s has %d fields; for the signature's %d inputs, dspy.ReAct's step predictor has %d (the inputs, trajectory and %s)",
					preds[1].label, got, len(inputs), want, strings.Join(reactStepOutputs, ", "))
			}
		}
		return inputs, outputs, nil
	}
	named := func(list []string) []command.Field {
		out := make([]command.Field, len(list))
		for i, n := range list {
			out[i] = command.Field{Name: n}
		}
		return out
	}
	// DSPy's default instructions name the inputs and outputs.
	if in, out, ok := parseDefaultInstructions(*main.state.Signature.Instructions); ok && len(in)+len(extra)+len(out) == len(saved) {
		return named(in), named(out), nil
	}
	resolved := make([]string, len(saved))
	for i, f := range saved {
		if resolved[i], err = main.fieldName(i, f); err != nil {
			return nil, nil, err
		}
	}
	var nIn int
	switch kind {
	case command.KindPredict:
		return nil, nil, invalid("%s: the file does not say which of its %d fields are inputs (its instructions are not DSPy's default ones, "+
			"which name them): give the signature, such as \"question -> answer\"", main.label, len(saved))
	case command.KindChainOfThought:
		nIn = slices.Index(resolved, reasoningField)
	case command.KindReact:
		nIn = len(preds[1].state.Signature.Fields) - 1 - len(reactStepOutputs)
	}
	if nIn < 1 || nIn+len(extra) >= len(saved) {
		return nil, nil, invalid("%s: its %d fields are not %s (give the signature, such as \"question -> answer\")", main.label, len(saved), count(-1, extra, -1))
	}
	return named(resolved[:nIn]), named(resolved[nIn+len(extra):]), nil
}

// count describes a predictor's fields: "2 inputs, reasoning and 1
// output"; a negative number is "inputs" or "outputs".
func count(in int, extra []string, out int) string {
	side := func(n int, what string) string {
		switch {
		case n < 0:
			return what + "s"
		case n == 1:
			return "1 " + what
		}
		return fmt.Sprintf("%d %ss", n, what)
	}
	parts := append(append([]string{side(in, "input")}, extra...), side(out, "output"))
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// placeholder returns name when description is DSPy's default description
// of a field of that name, "${name}".
func placeholder(description string) (string, bool) {
	name, ok := strings.CutPrefix(description, "${")
	if name, ok2 := strings.CutSuffix(name, "}"); ok && ok2 && isFieldName(name) {
		return name, true
	}
	return "", false
}

// description is a saved field's description as a spec's: none when it
// is DSPy's default for the field.
func description(f savedField, name string) string {
	if n, ok := placeholder(f.Description); ok && n == name {
		return ""
	}
	return f.Description
}

// fieldName reads the name of field i from the file: its description when
// that is "${name}", a demo's key whose prefix is the field's, or the
// prefix's words.
func (p *predictor) fieldName(i int, f savedField) (string, error) {
	if name, ok := placeholder(f.Description); ok {
		return name, nil
	}
	var keys []string
	for _, d := range p.state.Demos {
		for k := range d {
			if isFieldName(k) && InferPrefix(k)+":" == f.Prefix && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 1 {
		return keys[0], nil
	}
	if name, ok := prefixName(f.Prefix); ok {
		return name, nil
	}
	return "", invalid("%s: the name of field %d (prefix %q) is not in the file: give the signature, such as \"question -> answer\"", p.label, i, f.Prefix)
}

// checkNames checks the names the spec gives the predictor's fields
// against the file: as many fields, and a description that is DSPy's
// default names its field.
func (p *predictor) checkNames(fromSignature bool) error {
	fields := p.state.Signature.Fields
	if len(fields) != len(p.names) {
		return invalid("%s has %d fields, where dspgo expects %d (%s)", p.label, len(fields), len(p.names), strings.Join(p.names, ", "))
	}
	for i, f := range fields {
		n, ok := placeholder(f.Description)
		if !ok || n == p.names[i] {
			continue
		}
		whose := "the file's other predictor names it"
		switch {
		case slices.Contains([]string{reasoningField, trajectoryField}, p.names[i]) || slices.Contains(reactStepOutputs, p.names[i]):
			whose = "DSPy's module has"
		case fromSignature:
			whose = "the signature names it"
		}
		return invalid("%s: field %d is %q in the file (its description is %q), but %s %q", p.label, i, n, f.Description, whose, p.names[i])
	}
	return nil
}

// demos turns the main predictor's demos into a spec's.
func (p *predictor) demos(kind string, inputs, outputs []command.Field) ([]command.Demo, error) {
	var out []command.Demo
	for i, d := range p.state.Demos {
		demo := command.Demo{Inputs: map[string]any{}, Outputs: map[string]any{}}
		for _, f := range inputs {
			if v, ok := d[f.Name]; ok {
				demo.Inputs[f.Name] = v
			}
		}
		for _, f := range outputs {
			if v, ok := d[f.Name]; ok {
				demo.Outputs[f.Name] = v
			}
		}
		if kind == command.KindChainOfThought || kind == command.KindReact {
			s, err := p.demoString(d, i, reasoningField)
			if err != nil {
				return nil, err
			}
			if s != nil {
				demo.Reasoning = *s
			}
		}
		if kind == command.KindReact {
			var err error
			if demo.Trajectory, err = p.demoString(d, i, trajectoryField); err != nil {
				return nil, err
			}
		}
		out = append(out, demo)
	}
	return out, nil
}

// demoString returns the string demo i holds under name, nil when it
// holds none (or null).
func (p *predictor) demoString(d map[string]any, i int, name string) (*string, error) {
	v, ok := d[name]
	if !ok || v == nil {
		return nil, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return nil, invalid("%s: demo %d: %s is not a string", p.label, i, name)
	}
	return &s, nil
}

// stepDemos turns a ReAct step predictor's demos into a spec's StepDemos:
// the inputs, the trajectory and the step's outputs of each demo that
// holds one of those outputs. The others never reach the step's prompt
// (DSPy's adapters show a demo only when it has one of the predictor's
// outputs), as the demos that LabeledFewShot sets on every predictor, and
// are ignored.
func (p *predictor) stepDemos(inputs []command.Field) ([]command.Demo, error) {
	var out []command.Demo
	for i, d := range p.state.Demos {
		demo := command.Demo{Inputs: map[string]any{}, Outputs: map[string]any{}}
		for _, name := range reactStepOutputs {
			if v, ok := d[name]; ok {
				demo.Outputs[name] = v
			}
		}
		if len(demo.Outputs) == 0 {
			continue
		}
		for _, f := range inputs {
			if v, ok := d[f.Name]; ok {
				demo.Inputs[f.Name] = v
			}
		}
		var err error
		if demo.Trajectory, err = p.demoString(d, i, trajectoryField); err != nil {
			return nil, err
		}
		out = append(out, demo)
	}
	return out, nil
}

// DefaultInstructions is the instructions DSPy gives a signature that has
// none: "Given the fields `question`, `context`, produce the fields
// `answer`.".
func DefaultInstructions(inputs, outputs []string) string {
	quote := func(names []string) string {
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = "`" + n + "`"
		}
		return strings.Join(parts, ", ")
	}
	return "Given the fields " + quote(inputs) + ", produce the fields " + quote(outputs) + "."
}

// parseDefaultInstructions returns the inputs and outputs that
// instructions name when they are DefaultInstructions' text.
func parseDefaultInstructions(s string) (inputs, outputs []string, ok bool) {
	rest, ok := strings.CutPrefix(s, "Given the fields ")
	if !ok {
		return nil, nil, false
	}
	rest, _ = strings.CutSuffix(rest, ".") // the final comparison checks the rest
	in, out, ok := strings.Cut(rest, ", produce the fields ")
	if !ok {
		return nil, nil, false
	}
	side := func(list string) []string {
		var names []string
		for _, part := range strings.Split(list, ", ") {
			name, ok := strings.CutPrefix(part, "`")
			if name, ok2 := strings.CutSuffix(name, "`"); ok && ok2 && isFieldName(name) {
				names = append(names, name)
				continue
			}
			return nil
		}
		return names
	}
	inputs, outputs = side(in), side(out)
	if inputs == nil || outputs == nil || DefaultInstructions(inputs, outputs) != s {
		return nil, nil, false
	}
	return inputs, outputs, true
}

// Export writes a normalized spec (program.Compiled's Spec) as DSPy 3.4's
// module.save("program.json") writes the module that dspgo's dspy engine
// builds for it, so that DSPy's module.load() of that module reads it:
// the instructions (DSPy's default text when the spec has none) as DSPy
// holds them (Cleandoc), each field with DSPy's default prefix
// (InferPrefix) and its description ("${name}" when none), the demos on
// the predictor that produces the outputs (a ReAct's step demos on its
// step predictor), no LM ("lm": null), and
// metadata naming DSPyVersion only. A ReAct's step predictor gets the
// spec's StepInstructions, or when it has none the instructions
// dspy.ReAct writes for the spec's instructions and tools (those the
// program's executions send, in order). A KindModule spec's
// state is written as it is (in canonical form): it is the module's.
func Export(spec command.Spec, tools []command.ToolSpec) ([]byte, error) {
	if spec.Kind == command.KindModule {
		if spec.State == nil {
			return nil, invalid("a module program exports its state, and this one has none")
		}
		return append(append([]byte(nil), spec.State...), '\n'), nil
	}
	in, out := names(spec.Signature.Inputs), names(spec.Signature.Outputs)
	instructions := DefaultInstructions(in, out)
	if spec.Instructions != "" {
		instructions = Cleandoc(spec.Instructions)
	}
	var extra []field
	switch spec.Kind {
	case command.KindChainOfThought:
		extra = []field{{name: reasoningField}}
	case command.KindReact:
		extra = []field{{name: trajectoryField}, {name: reasoningField}}
	}
	declared := func(fields []command.Field) []field {
		out := make([]field, len(fields))
		for i, f := range fields {
			out[i] = field{f.Name, f.Description}
		}
		return out
	}
	demos := writeDemos(spec.Demos, spec.Signature.Inputs, names(spec.Signature.Outputs))
	main := predictorObject(instructions, slices.Concat(declared(spec.Signature.Inputs), extra, declared(spec.Signature.Outputs)), demos)
	var file object
	switch spec.Kind {
	case command.KindPredict:
		file = main
	case command.KindChainOfThought:
		file = object{{"predict", main}}
	case command.KindReact:
		react := spec.StepInstructions
		if react == "" {
			var err error
			if react, err = reactInstructions(instructions, in, out, tools); err != nil {
				return nil, err
			}
		}
		stepFields := slices.Concat(declared(spec.Signature.Inputs), []field{{name: trajectoryField}})
		for _, n := range reactStepOutputs {
			stepFields = append(stepFields, field{name: n})
		}
		steps := writeDemos(spec.StepDemos, spec.Signature.Inputs, reactStepOutputs)
		file = object{{"react", predictorObject(react, stepFields, steps)}, {"extract.predict", main}}
	default:
		return nil, fmt.Errorf("dspystate: program kind %q", spec.Kind)
	}
	file = append(file, member{"metadata", object{{"dependency_versions", object{{"dspy", DSPyVersion}}}}})
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(file); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeDemos writes demos as DSPy saves a predictor's: each its inputs,
// trajectory, reasoning and outputs (by the names given), those it holds.
func writeDemos(demos []command.Demo, inputs []command.Field, outputs []string) []any {
	out := make([]any, len(demos))
	for i, d := range demos {
		o := object{}
		for _, f := range inputs {
			if v, ok := d.Inputs[f.Name]; ok { // an incomplete demo may leave one out
				o = append(o, member{f.Name, jsonValue(dspyMedia(f, v))})
			}
		}
		if d.Trajectory != nil {
			o = append(o, member{trajectoryField, *d.Trajectory})
		}
		if d.Reasoning != "" {
			o = append(o, member{reasoningField, d.Reasoning})
		}
		for _, name := range outputs {
			if v, ok := d.Outputs[name]; ok { // an incomplete demo may leave one out
				o = append(o, member{name, jsonValue(v)})
			}
		}
		out[i] = o
	}
	return out
}

// field is a field as Export writes it.
type field struct{ name, description string }

// predictorObject is a predictor's state as Predict.dump_state writes it.
func predictorObject(instructions string, fields []field, demos []any) object {
	saved := make([]any, len(fields))
	for i, f := range fields {
		desc := f.description
		if desc == "" {
			desc = "${" + f.name + "}"
		}
		saved[i] = object{{"prefix", InferPrefix(f.name) + ":"}, {"description", desc}}
	}
	return object{
		{"traces", []any{}}, {"train", []any{}}, {"demos", demos},
		{"signature", object{{"instructions", instructions}, {"fields", saved}}},
		{"lm", nil},
	}
}

// reactInstructions is the instructions dspy.ReAct gives its step
// predictor for a signature with these (effective) instructions, inputs
// and outputs, and these tools, each a dspy.Tool whose args are the
// properties of its schema (as dspgo's dspy engine makes them).
func reactInstructions(instructions string, inputs, outputs []string, tools []command.ToolSpec) (string, error) {
	quote := func(names []string) string {
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = "`" + n + "`"
		}
		return strings.Join(parts, ", ")
	}
	type tool struct{ name, desc, args string }
	finish := tool{"finish", "Marks the task as complete. That is, signals that all information for producing the outputs, i.e. " +
		quote(outputs) + ", are now available to be extracted.", "{}"}
	var list []tool
	for _, t := range tools {
		if t.Name == finish.name { // dspy.ReAct's finish takes the place of a tool of its name
			list = append(list, finish)
			continue
		}
		args := "{}"
		var schema map[string]json.RawMessage
		if json.Unmarshal(t.Schema, &schema) == nil && len(schema["properties"]) > 0 && schema["properties"][0] == '{' {
			var err error
			if args, err = PyReprJSON(schema["properties"]); err != nil {
				return "", fmt.Errorf("dspystate: tool %q: schema: %w", t.Name, err)
			}
		}
		list = append(list, tool{t.Name, t.Description, args})
	}
	if !slices.ContainsFunc(list, func(t tool) bool { return t.name == finish.name }) {
		list = append(list, finish)
	}
	lines := []string{}
	if instructions != "" {
		lines = append(lines, instructions+"\n")
	}
	lines = append(lines,
		"You are an Agent. In each episode, you will be given the fields "+quote(inputs)+" as input. And you can see your past trajectory so far.",
		"Your goal is to use one or more of the supplied tools to collect any necessary information for producing "+quote(outputs)+".\n",
		"To do this, you will interleave next_thought, next_tool_name, and next_tool_args in each turn, and also when finishing the task.",
		"After each tool call, you receive a resulting observation, which gets appended to your trajectory.\n",
		"When writing next_thought, you may reason about the current situation and plan for future steps.",
		"When selecting the next_tool_name and its next_tool_args, the tool must be one of:\n",
	)
	for i, t := range list {
		desc := "."
		if t.desc != "" {
			desc = strings.ReplaceAll(", whose description is <desc>"+t.desc+"</desc>.", "\n", "  ")
		}
		lines = append(lines, fmt.Sprintf("(%d) %s%s It takes arguments %s.", i+1, t.name, desc, t.args))
	}
	lines = append(lines, "When providing `next_tool_args`, the value inside the field must be in JSON format")
	return strings.Join(lines, "\n"), nil
}

// isReactInstructions reports whether step is the text dspy.ReAct writes
// for its step predictor (reactInstructions) from these effective
// instructions, inputs and outputs, for some tools: its own lines around
// a numbered list of tools that holds finish. Such a text is not kept as
// a spec's StepInstructions, as the engines write it again for the run's
// tools; any other (an optimizer's) is.
func isReactInstructions(step, instructions string, inputs, outputs []string) bool {
	head, err := reactInstructions(instructions, inputs, outputs, nil)
	if err != nil {
		return false
	}
	const tail = "\nWhen providing `next_tool_args`, the value inside the field must be in JSON format"
	cut := strings.Index(head, "\n(1) ")
	list, ok := strings.CutPrefix(step, head[:cut+1])
	if !ok {
		return false
	}
	if list, ok = strings.CutSuffix(list, tail); !ok {
		return false
	}
	finish := false
	for i, line := range strings.Split(list, "\n") {
		rest, ok := strings.CutPrefix(line, fmt.Sprintf("(%d) ", i+1))
		if !ok {
			return false
		}
		finish = finish || strings.HasPrefix(rest, "finish, whose description is <desc>Marks the task as complete.")
	}
	return finish
}

// object is a JSON object whose members keep their order.
type object []member

type member struct {
	key   string
	value any
}

func (o object) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, m := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		v, err := marshal(m.value)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// marshal encodes v as encoding/json does, without escaping <, > and &.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// pyFloat is a float written as Python writes it (1.0, not 1), so that
// DSPy reads a float back.
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) { return []byte(program.FloatRepr(float64(f))), nil }

// jsonValue is a converted value (program.Type.GoType) ready to encode:
// floats as pyFloat, maps as objects with their keys sorted as
// encoding/json sorts them.
func jsonValue(v any) any {
	rv := reflect.ValueOf(v)
	for rv.IsValid() && rv.Kind() == reflect.Interface {
		rv = rv.Elem()
	}
	if !rv.IsValid() {
		return nil
	}
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		return pyFloat(rv.Float())
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = jsonValue(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		keys := make([]string, 0, rv.Len())
		values := map[string]any{}
		iter := rv.MapRange()
		for iter.Next() {
			k := fmt.Sprint(iter.Key().Interface())
			keys = append(keys, k)
			values[k] = jsonValue(iter.Value().Interface())
		}
		slices.Sort(keys)
		o := make(object, len(keys))
		for i, k := range keys {
			o[i] = member{k, values[k]}
		}
		return o
	}
	return rv.Interface()
}

// dspyMedia writes the images and files in v, a value of f, as DSPy's
// text of one (program.MediaDSPyText), which is how DSPy saves them in a
// demo.
func dspyMedia(f command.Field, v any) any {
	t, err := program.ParseType(f.Type)
	if err != nil {
		return v
	}
	return program.MapMedia(t, v, func(t program.Type, v map[string]any) any { return program.MediaDSPyText(t, v) })
}
