package command

import (
	"encoding/json"
	"strings"
)

// Program kinds, the values of Spec.Kind.
const (
	// KindPredict maps inputs straight to outputs (DSPy's Predict).
	KindPredict = "predict"
	// KindChainOfThought produces a ReasoningField output before the
	// declared ones (DSPy's ChainOfThought).
	KindChainOfThought = "chain_of_thought"
	// KindReact runs a ReAct loop over the host's tools (ExecuteArgs.Tools)
	// before it answers; its outputs are the declared ones (DSPy's ReAct).
	KindReact = "react"
	// KindModule runs a custom dspy.Module that the workers' handler
	// modules registered under Spec.Module, with Spec.State loaded into
	// it; its outputs are the declared ones, read from the Prediction it
	// returns. Only the dspy engine runs one (docs/dspy.md, "Custom
	// modules").
	KindModule = "module"
)

// ReasoningField is the output that KindChainOfThought adds before the
// declared outputs.
const ReasoningField = "reasoning"

// Field is one input or output of a signature.
type Field struct {
	// Name is a Python identifier, unique within the signature.
	Name string `json:"name"`
	// Type is the field's type as written in a DSPy signature: "str",
	// "int", "float", "bool", "Any", "list[T]", "dict[str, T]",
	// "dict[int, T]", "tuple[A, B]", "tuple[T, ...]", "Optional[T]" or
	// "T | None", "Union[A, B]" or "A | B", "Literal['a', 'b']",
	// "Literal[1, 2]", "datetime.date", "datetime.datetime",
	// "dspy.History" (one input's: a conversation so far), and, in inputs
	// only, "dspy.Image", "dspy.File" and "dspy.Audio".
	// Empty means "str". The spellings and their canonical forms are in
	// docs/protocol.md ("Program specs").
	Type string `json:"type"`
	// Description tells the language model what the field holds. Empty
	// means none.
	Description string `json:"description"`
	// Default is the value the field takes when it is left out: an input
	// left out of an execution, an output the language model's reply
	// leaves out, a model's field left out of a value (DSPy's
	// InputField(default=…) and OutputField(default=…), a pydantic field's
	// "= value"). It converts to Type as an input of that type does, and
	// the normalized spec holds it converted. Nil means none, and so does
	// a nil slice, map or pointer (in JSON, absent or null); an Optional
	// field may be left out without one. A field whose type holds
	// dspy.History or a media type takes none.
	// The rules are in docs/protocol.md ("Program specs").
	Default any `json:"default,omitempty"`
	// Constraints are pydantic's constraints on a signature's field, in
	// the order given (DSPy's dspy.OutputField(ge=0, le=1) is
	// []Constraint{{"ge", 0}, {"le", 1}}): DSPy 3.4.1 shows them to the
	// language model under the field's line of the system message
	// ("Constraints: greater than or equal to: 0, less than or equal to:
	// 1") and checks no value against them, and neither does dspgo. Nil
	// means none, and leaves the key out of the spec's JSON; a model's
	// fields take none. The rules are in docs/protocol.md ("Program
	// specs").
	Constraints []Constraint `json:"constraints,omitempty"`
}

// Constraint is one of pydantic's constraints on a field, as DSPy's
// InputField and OutputField take them.
type Constraint struct {
	// Name is the constraint: "gt", "ge", "lt", "le" or "multiple_of",
	// whose value is a number; "min_length" or "max_length", a
	// non-negative integer; "allow_inf_nan", a bool.
	Name string `json:"name"`
	// Value is the constraint's value: a Go number or bool, a
	// json.Number, or the text of a JSON number. The normalized spec
	// holds it as the text Python prints for it, which the prompt shows:
	// a Go integer, or a JSON number without a fraction or exponent, is
	// an int ("1"); a Go float, or any other JSON number, a float ("1.0",
	// "0.001", "1e-05"); a bool "True" or "False".
	Value any `json:"value"`
}

// Signature is a program's typed inputs and outputs: any number of inputs
// (none, as DSPy's "-> joke"), at least one output, every name distinct.
type Signature struct {
	// Inputs are the fields an execution gives, in order; empty means
	// none.
	Inputs []Field `json:"inputs"`
	// Outputs are the fields the program produces, in order.
	Outputs []Field `json:"outputs"`
	// Models are the pydantic models the fields' types may name
	// ("Answer", "list[Answer]"), DSPy's structured types. Nil or empty
	// means none, and leaves the key out of the spec's JSON, so a spec
	// without models hashes as before models existed. The rules are in
	// docs/protocol.md ("Program specs").
	Models []Model `json:"models,omitempty"`
}

// Model is a pydantic model, a structured type: a JSON object holding its
// fields. In DSPy it is a class "class Answer(pydantic.BaseModel)" whose
// docstring is Description and whose annotated attributes are Fields.
type Model struct {
	// Name is the class's name, an identifier that is not a type's name
	// ("str", "list", "Optional", …), unique within the signature; field
	// types name the model by it.
	Name string `json:"name"`
	// Description is the model's docstring, shown to the language model in
	// its JSON schema. Empty means none.
	Description string `json:"description"`
	// Fields are the model's attributes, in order: at least one. A field's
	// Type is any field type but dspy.History and the media types, and may
	// name another model (never, through others, its own); a field with
	// a Default may be left out of a value, and so may an Optional one
	// (pydantic's "x: Optional[T] = None"), every other one is required.
	// A name may not start with "_" or "model_" or be an attribute of
	// pydantic's BaseModel ("json", "dict", "copy", "schema", …).
	Fields []Field `json:"fields"`
}

// String returns the signature in DSPy's string form, types other than
// str included: "question, context: list[str] -> answer".
func (s Signature) String() string {
	side := func(fields []Field) string {
		parts := make([]string, len(fields))
		for i, f := range fields {
			parts[i] = f.Name
			if f.Type != "" && f.Type != "str" {
				parts[i] += ": " + f.Type
			}
		}
		return strings.Join(parts, ", ")
	}
	return side(s.Inputs) + " -> " + side(s.Outputs)
}

// Spec is everything that defines a program's behaviour; the SHA-256 of
// its canonical JSON identifies it (the spec hash).
type Spec struct {
	// Signature is the program's inputs and outputs.
	Signature Signature `json:"signature"`
	// Instructions are the task description given to the language model.
	// Empty means none.
	Instructions string `json:"instructions"`
	// Kind is KindPredict, KindChainOfThought, KindReact or KindModule.
	// Empty means KindPredict.
	Kind string `json:"kind"`
	// Demos are few-shot examples shown to the language model before the
	// real inputs (see Demo). Nil or empty means none, and leaves the key
	// out of the spec's JSON, so a spec without demos hashes as before
	// demos existed. A KindModule spec has none: its predictors' demos are
	// in its State.
	Demos []Demo `json:"demos,omitempty"`
	// Module is a KindModule spec's module: the name a worker's handler
	// module registered it under (dspgo_worker.dspy_module), letters,
	// digits, '_', '-' and '.', at most 128. Required for KindModule;
	// other kinds leave it empty, and the key out of the JSON.
	Module string `json:"module,omitempty"`
	// State is a KindModule spec's saved state, a JSON object: what
	// DSPy's module.save("program.json") writes (or module.dump_state()
	// gives), loaded into the module with load_state before its first
	// run. Nil means none: the module as its factory makes it. Other
	// kinds leave it nil.
	State json.RawMessage `json:"state,omitempty"`
	// StepInstructions are a KindReact spec's step instructions: those of
	// dspy.ReAct's step predictor (ReAct.react), which DSPy writes from
	// Instructions and the tools, and which an optimizer (MIPROv2,
	// COPRO) rewrites. Set, they replace ReAct's text as they are, on
	// both engines; empty means ReAct's own text for the run's tools.
	// Other kinds leave them empty. Empty leaves the key out of the JSON,
	// so a spec without them hashes as before they existed.
	StepInstructions string `json:"step_instructions,omitempty"`
	// StepDemos are a KindReact spec's demos of its steps: those of
	// dspy.ReAct's step predictor (ReAct.react), which an optimizer such
	// as BootstrapFewShot fills with steps of the loops it ran. Each holds
	// the program's inputs, its Trajectory (the steps before, as the loop
	// wrote them) and as Outputs StepOutputs' values (next_tool_args an
	// object); no Reasoning. Both engines show them to every step, as
	// DSPy shows a predictor's demos. Nil or empty means none, and leaves
	// the key out of the JSON, so a spec without them hashes as before
	// they existed. Other kinds have none.
	StepDemos []Demo `json:"step_demos,omitempty"`
}

// StepOutputs are the outputs of a dspy.ReAct step, in order: a str, a
// tool's name (a str) and the tool's arguments (a dict[str, Any]).
var StepOutputs = []string{"next_thought", "next_tool_name", "next_tool_args"}

// TrajectoryField is the input that dspy.ReAct adds to a program's inputs
// for its steps and its extraction: the loop's steps so far, as text.
const TrajectoryField = "trajectory"

// Demo is one few-shot example of a program, as DSPy's demos are: a value
// for every input and every declared output of the signature and, for
// KindChainOfThought only, optionally the reasoning that leads to the
// outputs. The engines show the demos to the language model before the
// real inputs, as DSPy's ChatAdapter formats them (docs/protocol.md,
// "Demos").
type Demo struct {
	// Inputs holds a value for every input field, by name, that converts
	// to the field's type as an execution's inputs do; an Optional input
	// may be left out, as an execution's may (an input's Default does
	// not fill a demo).
	Inputs map[string]any `json:"inputs"`
	// Outputs holds a value for every declared output field (not
	// ReasoningField), by name, that converts to the field's type.
	Outputs map[string]any `json:"outputs"`
	// Reasoning is a KindChainOfThought demo's reasoning, or a KindReact
	// demo's (its extraction's, a ChainOfThought). Empty means none: DSPy
	// then shows the demo as one whose reasoning is not supplied. Other
	// kinds, and a KindReact spec's StepDemos, must leave it empty.
	Reasoning string `json:"reasoning,omitempty"`
	// Trajectory is a KindReact demo's trajectory (Spec.Demos: the loop
	// the extraction read; Spec.StepDemos: the steps before the one the
	// demo shows), the text dspy.ReAct gave its predictor. Nil means none:
	// DSPy then shows the demo as one whose trajectory is not supplied; a
	// pointer to "" is the empty trajectory of a loop's first step. Other
	// kinds must leave it nil.
	Trajectory *string `json:"trajectory,omitempty"`
}
