package command

import "encoding/json"

// CreateArgs are CreateProgram's arguments.
type CreateArgs struct {
	// ProgramID is the host's id for the program, for logs only. Empty
	// means none.
	ProgramID string `json:"program_id,omitempty"`
	// Spec is the program to compile and cache. Required.
	Spec Spec `json:"spec"`
}

// CreateResult is CreateProgram's result.
type CreateResult struct {
	// SpecHash is the hex SHA-256 of the spec's canonical JSON, the name
	// ExecuteArgs and DeleteArgs give it.
	SpecHash string `json:"spec_hash"`
}

// Bounds of a KindReact loop's steps (ExecuteArgs.MaxIters).
const (
	// DefaultMaxIters is the steps a react loop takes at most when the
	// execution gives no bound: 20, dspy.ReAct's default.
	DefaultMaxIters = 20
	// MaxIters is the largest bound an execution may give.
	MaxIters = 100
)

// ExecuteArgs are ExecuteProgram's arguments.
type ExecuteArgs struct {
	// ProgramID is the host's id for the program, for logs only. Empty
	// means none.
	ProgramID string `json:"program_id,omitempty"`
	// SpecHash names the compiled spec to run (CreateResult.SpecHash).
	// Required unless Spec is sent; when both are, they must match.
	SpecHash string `json:"spec_hash"`
	// Spec is sent when the worker may not know SpecHash (it answered
	// SpecNotFoundType); nil otherwise.
	Spec *Spec `json:"spec,omitempty"`
	// Tools are the host tools a KindReact program may call; nil means
	// none.
	Tools []ToolSpec `json:"tools,omitempty"`
	// MaxIters bounds a react loop, 1 to MaxIters; nil means
	// DefaultMaxIters.
	MaxIters *int `json:"max_iters,omitempty"`
	// Inputs is a JSON object with a value for every input field, by
	// name, except that an input with a Default may be left out (it
	// takes the default) and so may an Optional one (it is then left out
	// of the prompt, where a null is written None). Required. It comes last but for LM: the Go client encodes
	// everything before it once, and appends LM after it when the
	// execution names one.
	Inputs json.RawMessage `json:"inputs"`
	// LM names the LM configuration to run with (LMArgs.Name); empty
	// means the default one. A name no ConfigureLM set is
	// adapter.CodeNotFound (LMNotFoundType).
	LM string `json:"lm,omitempty"`
}

// ToolSpec describes a host tool to the language model.
type ToolSpec struct {
	// Name is the name the language model calls the tool by.
	Name string `json:"name"`
	// Description tells the language model what the tool does. Empty
	// means none.
	Description string `json:"description"`
	// Schema is the JSON Schema object of the tool's arguments; {} when
	// none was given.
	Schema json.RawMessage `json:"schema"`
}

// ExecuteResult is ExecuteProgram's result.
type ExecuteResult struct {
	// Outputs is a JSON object with a value for every output field, by
	// name (ReasoningField included for KindChainOfThought).
	Outputs json.RawMessage `json:"outputs"`
	// SpecHash is the hash of the spec that ran.
	SpecHash string `json:"spec_hash"`
	// Trajectory is a react program's steps (an empty list when it
	// called no tool); nil for other kinds.
	Trajectory *[]Step `json:"trajectory,omitempty"`
	// Usage is the tokens of every LM call the execution made, summed;
	// nil when the LM reported none (no LM call: the dummy provider, or
	// a reply served from the worker's cache).
	Usage *Usage `json:"usage,omitempty"`
}

// Step is one step of a react trajectory: a call of a host tool.
type Step struct {
	// Tool is the tool's name.
	Tool string `json:"tool"`
	// Args is the JSON object of arguments the model chose.
	Args json.RawMessage `json:"args"`
	// Observation is the tool's JSON result, or {"error": {"code",
	// "message"}} when it failed.
	Observation json.RawMessage `json:"observation"`
}

// Delta is one chunk of a streamed ExecuteProgram (a request that asked
// for a stream, docs/protocol.md "Streams"): a piece of the text of one
// output field. The deltas of a field, concatenated, are its value's
// text: a str value itself, any other type its canonical JSON.
type Delta struct {
	// Field is the output field the piece belongs to.
	Field string `json:"field"`
	// Delta is the piece of text.
	Delta string `json:"delta"`
}

// Usage is the language model's token counts in an ExecuteResult.
type Usage struct {
	// PromptTokens are the tokens sent to the model.
	PromptTokens int `json:"prompt_tokens"`
	// CompletionTokens are the tokens the model produced.
	CompletionTokens int `json:"completion_tokens"`
	// TotalTokens are all tokens, as the model counts them.
	TotalTokens int `json:"total_tokens"`
}

// DeleteArgs are DeleteProgram's arguments.
type DeleteArgs struct {
	// SpecHash names the cached spec to drop. Required.
	SpecHash string `json:"spec_hash"`
}

// DeleteResult is DeleteProgram's result.
type DeleteResult struct {
	// Deleted is true.
	Deleted bool `json:"deleted"`
}
