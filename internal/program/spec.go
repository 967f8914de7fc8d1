package program

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/dspgo/dspgo/command"
)

// ParseSignature parses DSPy's string form:
// "question, context: list[str] -> answer, confidence: float". Fields are
// comma-separated with an optional ": type" (default str). The inputs may
// be none ("-> joke"); the outputs may not. Errors have
// CodeInvalidArgument and say which part is wrong.
func ParseSignature(s string) (command.Signature, error) {
	return ParseSignatureModels(s, nil)
}

// ParseSignatureModels is ParseSignature for a signature whose types may
// name models (command.Signature.Models), which it holds.
func ParseSignatureModels(s string, models []command.Model) (command.Signature, error) {
	left, right, ok := strings.Cut(s, "->")
	if !ok {
		return command.Signature{}, invalid("signature %q has no \"->\" between inputs and outputs", s)
	}
	if strings.Contains(right, "->") {
		return command.Signature{}, invalid("signature %q has more than one \"->\"", s)
	}
	var inputs []command.Field
	if strings.TrimSpace(left) != "" { // "-> joke": a program of no inputs, as DSPy takes it
		var err error
		if inputs, err = parseFields(left, "inputs", s); err != nil {
			return command.Signature{}, err
		}
	}
	outputs, err := parseFields(right, "outputs", s)
	if err != nil {
		return command.Signature{}, err
	}
	sig := command.Signature{Inputs: inputs, Outputs: outputs, Models: models}
	if _, _, err := normalizeSignature(sig, command.KindPredict); err != nil {
		return command.Signature{}, err
	}
	return sig, nil
}

// parseFields splits one side of a signature at the commas that are not
// inside brackets, parentheses or quotes (a quote escaped by a backslash
// inside quotes does not end them).
func parseFields(side, which, whole string) ([]command.Field, error) {
	if strings.TrimSpace(side) == "" {
		return nil, invalid("signature %q has no %s", whole, which)
	}
	var fields []command.Field
	depth, start := 0, 0
	var quote byte
	for i := 0; i <= len(side); i++ {
		if i < len(side) {
			switch c := side[i]; {
			case quote != 0:
				if c == '\\' && i+1 < len(side) {
					i++ // an escape: the next byte is not the quote's end
				} else if c == quote {
					quote = 0
				}
				continue
			case c == '\'' || c == '"':
				quote = c
				continue
			case c == '[' || c == '(':
				depth++
				continue
			case c == ']' || c == ')':
				depth--
				continue
			case c != ',' || depth > 0:
				continue
			}
		}
		part := strings.TrimSpace(side[start:i])
		start = i + 1
		if part == "" {
			return nil, invalid("signature %q has an empty field among its %s", whole, which)
		}
		name, typ, _ := strings.Cut(part, ":")
		fields = append(fields, command.Field{Name: strings.TrimSpace(name), Type: strings.TrimSpace(typ)})
	}
	return fields, nil
}

// signatureTypes are a normalized signature's models and its fields'
// parsed types, in order.
type signatureTypes struct {
	models          *Models
	inputs, outputs []Type
}

// normalizeSignature validates the signature and returns a copy whose
// types are in canonical form, with its types parsed.
func normalizeSignature(s command.Signature, kind string) (command.Signature, signatureTypes, error) {
	var types signatureTypes
	if len(s.Outputs) == 0 {
		return s, types, invalid("signature has no outputs")
	}
	models, err := CompileModels(s.Models)
	if err != nil {
		return s, types, err
	}
	types = signatureTypes{models: models, inputs: make([]Type, len(s.Inputs)), outputs: make([]Type, len(s.Outputs))}
	seen := map[string]string{}
	if kind == command.KindChainOfThought {
		seen[command.ReasoningField] = "the reasoning output that chain_of_thought adds"
	}
	out := command.Signature{Inputs: make([]command.Field, len(s.Inputs)), Outputs: make([]command.Field, len(s.Outputs))}
	history := "" // the input field of type dspy.History, if any
	for _, group := range []struct {
		side     string
		src, dst []command.Field
		types    []Type
	}{{"input", s.Inputs, out.Inputs, types.inputs}, {"output", s.Outputs, out.Outputs, types.outputs}} {
		side, dst := group.side, group.dst
		for i, f := range group.src {
			if problem := NameProblem(f.Name); problem != "" {
				return s, types, invalid("%s field name %q %s", side, f.Name, problem)
			}
			if prev, dup := seen[f.Name]; dup {
				return s, types, invalid("field name %q is used twice (as %s and as %s)", f.Name, prev, side)
			}
			seen[f.Name] = side
			t, err := models.ParseType(f.Type)
			if err != nil {
				return s, types, invalid("%s field %q: %v", side, f.Name, err)
			}
			if err := models.checkSize(t, side, f.Name); err != nil {
				return s, types, err
			}
			if media := t.Media(); side == "output" && media != "" {
				return s, types, invalid("output field %q: %s is an input type (%s)", f.Name, media, MediaNote(media))
			}
			if t.Kind == History {
				switch {
				case side == "output":
					return s, types, invalid("output field %q: %s is an input type (the conversation so far)", f.Name, HistoryType)
				case history != "":
					return s, types, invalid("input fields %q and %q are both %s: a signature has one conversation", history, f.Name, HistoryType)
				}
				history = f.Name
			}
			convert := t.Convert // an output's default is a value the program returns
			if side == "input" {
				convert = t.ConvertField
			}
			def, err := convertDefault(t, f.Default, fmt.Sprintf("%s field %q", side, f.Name), convert)
			if err != nil {
				return s, types, err
			}
			constraints, err := normalizeConstraints(f.Constraints, t, fmt.Sprintf("%s field %q", side, f.Name))
			if err != nil {
				return s, types, err
			}
			dst[i] = command.Field{Name: f.Name, Type: t.String(), Description: f.Description, Default: def, Constraints: constraints}
			group.types[i] = t
		}
	}
	if err := models.checkUsed(types.inputs, types.outputs); err != nil {
		return s, types, err
	}
	out.Models = models.Normalized()
	return out, types, nil
}

// convertDefault checks and converts the default of a field of type t,
// which field names ("input field \"n\""), as docs/protocol.md ("Program
// specs") says: nil when there is none, an error with CodeInvalidArgument
// when the type holds a medium or dspy.History or the value does not
// convert (by convert: t.ConvertField for an input's, t.Convert for an
// output's, which the program returns, and a model field's).
func convertDefault(t Type, v any, field string, convert func(any, string) (any, error)) (any, error) {
	if isNull(v) {
		return nil, nil
	}
	if held := t.Media(); held != "" || t.Kind == History {
		if held == "" {
			held = HistoryType
		}
		return nil, invalid("%s: %s takes no default", field, held)
	}
	conv, err := convert(v, field+" default")
	if err != nil {
		return nil, invalid("%v", err)
	}
	return conv, nil
}

// isNull reports whether v is JSON's null: nil, a nil slice, map or
// pointer, or a json.RawMessage "null", as encoding/json writes them.
func isNull(v any) bool {
	if raw, ok := v.(json.RawMessage); ok {
		return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Invalid:
		return true
	case reflect.Slice, reflect.Map, reflect.Pointer:
		return rv.IsNil()
	}
	return false
}

// notIdentifier is how an error says a name is not an identifier.
const notIdentifier = "is not a valid identifier (letters, digits and _, not starting with a digit)"

// notASCIIIdentifier is how an error says a model's name is not an ASCII
// identifier.
const notASCIIIdentifier = "is not a valid identifier (ASCII letters, digits and _, not starting with a digit)"

// isIdentifier reports whether s is an ASCII identifier: a model's name
// (a name in a type), an environment variable's. A field's name may be any
// identifier: see NameProblem.
func isIdentifier(s string) bool {
	if s == "" || ('0' <= s[0] && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentByte(s[i]) {
			return false
		}
	}
	return true
}

// Compiled is a validated spec with its parsed types and hash, ready to
// convert inputs and outputs.
type Compiled struct {
	// Spec is the normalized spec: canonical types, Kind filled in, demo
	// values converted to their fields' types (nil Demos when there are none).
	Spec command.Spec
	// Hash is the hex SHA-256 of the spec's canonical JSON.
	Hash   string
	models *Models
	inputs []Type
	// fields and types are the run's outputs, reasoning included.
	fields []command.Field
	types  []Type
	// inPaths and outPaths name each input and output in conversion
	// errors ("input question"), made once rather than per call.
	inPaths, outPaths []string
	// defaults are the inputs' defaults (nil: none), converted; Spec holds
	// copies, so a caller that changes a Program's Spec changes none.
	defaults []any
}

// Compile validates a spec and returns it normalized and hashed. Errors
// have CodeInvalidArgument.
func Compile(spec command.Spec) (*Compiled, error) {
	kind := spec.Kind
	if kind == "" {
		kind = command.KindPredict
	}
	if kind != command.KindPredict && kind != command.KindChainOfThought && kind != command.KindReact && kind != command.KindModule {
		return nil, invalid("program kind %q is unknown (known: %s, %s, %s, %s)", spec.Kind,
			command.KindPredict, command.KindChainOfThought, command.KindReact, command.KindModule)
	}
	sig, types, err := normalizeSignature(spec.Signature, kind)
	if err != nil {
		return nil, err
	}
	state, err := checkModule(spec, kind)
	if err != nil {
		return nil, err
	}
	if spec.StepInstructions != "" && kind != command.KindReact {
		return nil, invalid("step_instructions are for kind %q only (this spec's kind is %q)", command.KindReact, kind)
	}
	demos, err := normalizeDemos(spec.Demos, kind, sig, types.models, "demo", false)
	if err != nil {
		return nil, err
	}
	stepDemos, err := normalizeStepDemos(spec.StepDemos, kind, sig, types.models)
	if err != nil {
		return nil, err
	}
	c := &Compiled{models: types.models, inputs: types.inputs, types: types.outputs, Spec: command.Spec{Signature: sig, Instructions: spec.Instructions, Kind: kind, Demos: demos, Module: spec.Module, State: state,
		StepInstructions: spec.StepInstructions, StepDemos: stepDemos}}
	canon, err := Canonical(c.Spec)
	if err != nil {
		return nil, fmt.Errorf("program: canonical form of a spec: %w", err)
	}
	sum := sha256.Sum256(canon)
	c.Hash = hex.EncodeToString(sum[:])
	for i, f := range sig.Inputs {
		c.inPaths = append(c.inPaths, "input "+f.Name)
		c.defaults = append(c.defaults, f.Default)
		if f.Default != nil { // converted already: the spec's own copy
			sig.Inputs[i].Default, _ = types.inputs[i].ConvertField(f.Default, "")
		}
	}
	c.fields = sig.Outputs
	if kind == command.KindChainOfThought {
		c.fields = append([]command.Field{{Name: command.ReasoningField, Type: "str"}}, sig.Outputs...)
		c.types = append([]Type{{Kind: Str}}, c.types...)
	}
	for _, f := range c.fields {
		c.outPaths = append(c.outPaths, "output "+f.Name)
	}
	return c, nil
}

// Examples validates examples against the program's signature as its
// demos are, but that each holds an input and an output (or reasoning),
// and returns them converted. Errors have CodeInvalidArgument
// and name the example as label and its index ("devset example 3") and
// the field.
func (c *Compiled) Examples(examples []command.Demo, label string) ([]command.Demo, error) {
	return normalizeDemos(examples, c.Spec.Kind, c.Spec.Signature, c.models, label, true)
}

// Inputs converts a program's inputs to their declared types. An input
// left out that has a Default takes it (a copy). Otherwise an Optional
// input may be left out, and stays out (DSPy leaves an input its
// annotation allows None for out of the prompt; a null is written
// "None"). Any other missing input, an unknown one, or one of the wrong
// type is a CodeInvalidArgument error naming the field; an unknown input
// (the first in sorted order) is named before a missing one, which it
// may be a misspelling of.
func (c *Compiled) Inputs(in map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(c.inputs))
	given := 0 // the inputs found in in
	for i, f := range c.Spec.Signature.Inputs {
		v, ok := in[f.Name]
		if ok {
			given++
		} else if c.defaults[i] != nil {
			v, ok = c.defaults[i], true // converted below: a copy
		}
		if !ok {
			if c.inputs[i].Kind == Optional {
				continue
			}
			if err := c.unknownInput(in); err != nil {
				return nil, err // a misspelt name is named, not only the one it left out
			}
			return nil, invalid("input %q is missing (the program takes %s)", f.Name, names(c.Spec.Signature.Inputs))
		}
		conv, err := c.inputs[i].ConvertField(v, c.inPaths[i])
		if err != nil {
			return nil, invalid("%v", err)
		}
		out[f.Name] = conv
	}
	if len(in) > given {
		return nil, c.unknownInput(in)
	}
	return out, nil
}

// unknownInput is the error for the first of in's names, in sorted
// order, that the signature has no input of; nil when it has them all.
func (c *Compiled) unknownInput(in map[string]any) error {
	var unknown []string
	for name := range in {
		if !slices.ContainsFunc(c.Spec.Signature.Inputs, func(f command.Field) bool { return f.Name == name }) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	return invalid("input %q is not in the signature (the program takes %s)", slices.Min(unknown), names(c.Spec.Signature.Inputs))
}

// OutputFields returns the fields a run produces, in order: "reasoning"
// first for chain_of_thought, then the declared outputs.
func (c *Compiled) OutputFields() []command.Field { return c.fields }

// Outputs converts a run's raw outputs to their declared types. A missing
// output, or one that does not convert, is an error naming the field with
// CodeInternal: the backend broke its contract.
func (c *Compiled) Outputs(raw map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(c.fields))
	for i, f := range c.fields {
		v, ok := raw[f.Name]
		if !ok {
			return nil, adapterError(fmt.Sprintf("output %q is missing from the result", f.Name))
		}
		conv, err := c.types[i].Convert(v, c.outPaths[i])
		if err != nil {
			return nil, adapterError(err.Error())
		}
		out[f.Name] = conv
	}
	return out, nil
}

func names(fields []command.Field) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = fmt.Sprintf("%q", f.Name)
	}
	return strings.Join(parts, ", ")
}

// MaxIDBytes is the longest program id, and the longest module name of a
// KindModule spec.
const MaxIDBytes = 128

// checkModule checks the module and state of a spec of kind, and returns
// the state in canonical form (nil for none).
func checkModule(spec command.Spec, kind string) (json.RawMessage, error) {
	var state any
	if len(spec.State) > 0 {
		v, err := decodeJSON(spec.State)
		if err != nil {
			return nil, invalid("state is not JSON: %v", err)
		}
		state = v
	}
	if kind != command.KindModule {
		switch {
		case spec.Module != "":
			return nil, invalid("module is for kind %q only (this spec's kind is %q)", command.KindModule, kind)
		case state != nil:
			return nil, invalid("state is for kind %q only (this spec's kind is %q)", command.KindModule, kind)
		}
		return nil, nil
	}
	switch {
	case spec.Module == "":
		return nil, invalid("a module program needs its module: the name a worker's handler module registered it under")
	case !IsID(spec.Module):
		return nil, invalid("module name %q may hold only letters, digits, '_', '-' and '.' (at most %d)", spec.Module, MaxIDBytes)
	case len(spec.Demos) > 0:
		return nil, invalid("a module program has no demos: its predictors' demos are in its state")
	case state == nil:
		return nil, nil
	}
	if _, ok := state.(map[string]any); !ok {
		return nil, invalid("state must be a JSON object (what DSPy's module.save writes), got %s", describe(reflect.ValueOf(state)))
	}
	canon, err := Canonical(state)
	if err != nil {
		return nil, invalid("state: %v", err)
	}
	return canon, nil
}

// IsID reports whether s is 1 to MaxIDBytes ASCII letters, digits, '_',
// '-' and '.': a program id, or a module name.
func IsID(s string) bool {
	if s == "" || len(s) > MaxIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isIdentByte(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}
