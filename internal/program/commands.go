package program

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dspgo/dspgo/protocol"
)

// Command names of the program command set (docs/protocol.md). The
// control commands are the protocol's.
const (
	CmdPing           = protocol.CmdPing
	CmdDescribe       = protocol.CmdDescribe
	CmdConfigureLM    = "configure_lm"
	CmdCreateProgram  = "create_program"
	CmdExecuteProgram = "execute_program"
	CmdDeleteProgram  = "delete_program"
	CmdGetStats       = "get_stats"
	CmdReset          = "reset"
	CmdShutdown       = protocol.CmdShutdown
	CmdCancel         = protocol.CmdCancel
)

// SpecNotFoundType is the error type a worker reports, with code
// not_found, when execute_program names a spec hash it has not compiled and
// carries no spec; the host then sends the spec.
const SpecNotFoundType = "SpecNotFound"

// CreateArgs are create_program's arguments.
type CreateArgs struct {
	// ProgramID is the host's id for the program, for logs only.
	ProgramID string `json:"program_id,omitempty"`
	Spec      Spec   `json:"spec"`
}

// CreateResult is create_program's result.
type CreateResult struct {
	SpecHash string `json:"spec_hash"`
}

// ExecuteArgs are execute_program's arguments.
type ExecuteArgs struct {
	// ProgramID is the host's id for the program, for logs only.
	ProgramID string `json:"program_id,omitempty"`
	SpecHash  string `json:"spec_hash"`
	// Spec is sent when the worker may not know SpecHash; nil otherwise.
	Spec *Spec `json:"spec,omitempty"`
	// Tools are the host tools a react program may call; nil means none.
	Tools []ToolSpec `json:"tools,omitempty"`
	// MaxIters bounds a react loop, 1 to MaxIters; nil means
	// DefaultMaxIters.
	MaxIters *int `json:"max_iters,omitempty"`
	// Inputs come last but for LM: the client encodes everything before
	// them once, and appends LM after them when the execution names one.
	Inputs json.RawMessage `json:"inputs"`
	// LM names the LM configuration to run with (LMArgs.Name); empty
	// means the default one. A name no configure_lm set is not_found
	// (LMNotFound).
	LM string `json:"lm,omitempty"`
}

// ToolSpec describes a host tool to the language model.
type ToolSpec struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Schema is the JSON Schema object of the tool's arguments; {} when
	// none was given.
	Schema json.RawMessage `json:"schema"`
}

// Bounds of a react loop's steps.
const (
	DefaultMaxIters = 5
	MaxIters        = 100
)

// Step is one step of a react trajectory.
type Step struct {
	Tool        string          `json:"tool"`
	Args        json.RawMessage `json:"args"`
	Observation json.RawMessage `json:"observation"`
}

// ExecuteResult is execute_program's result.
type ExecuteResult struct {
	Outputs  json.RawMessage `json:"outputs"`
	SpecHash string          `json:"spec_hash"`
	// Trajectory is a react program's steps (an empty list when it
	// called no tool); nil for other kinds.
	Trajectory *[]Step `json:"trajectory,omitempty"`
	// Usage is the tokens of every LM call the execution made, summed;
	// nil when the LM reported none (no LM call: the dummy provider, or
	// a reply served from the worker's cache).
	Usage *Usage `json:"usage,omitempty"`
}

// Usage is the language model's token counts in an execute_program
// result.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// DeleteArgs are delete_program's arguments.
type DeleteArgs struct {
	SpecHash string `json:"spec_hash"`
}

// LMArgs are configure_lm's arguments. Zero fields are left out and mean
// the provider's default.
type LMArgs struct {
	// Name names the configuration, which then replaces only the one of
	// that name (CheckLMName); empty means the default LM, the one
	// executions that name none run with.
	Name        string   `json:"name,omitempty"`
	Provider    string   `json:"provider"`
	Model       string   `json:"model,omitempty"`
	BaseURL     string   `json:"base_url,omitempty"`
	APIKeyEnv   string   `json:"api_key_env,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
	MaxTokens   int      `json:"max_tokens,omitempty"`
	TimeoutMS   int64    `json:"timeout_ms,omitempty"`
	Engine      string   `json:"engine,omitempty"`
	Verify      bool     `json:"verify,omitempty"`
	// DelayMS makes the dummy provider take this long per execution,
	// honouring cancellation: a portable way to test deadlines.
	DelayMS int64 `json:"delay_ms,omitempty"`
	// Script drives the dummy provider's react loop: step i of the loop
	// takes Script[i].
	Script []ScriptStep `json:"script,omitempty"`
	// FailAfterChunks makes the dummy provider's streamed executions fail
	// (internal) after this many chunks: a portable producer error for
	// tests of streams. Nil means never.
	FailAfterChunks *int `json:"fail_after_chunks,omitempty"`
	// Cache makes each worker keep an in-memory cache of LM replies keyed
	// by the full request; false means every execution calls the LM.
	Cache bool `json:"cache,omitempty"`
}

// ScriptStep is one step of the dummy provider's react script: a call of
// Tool with Args, or, with Finish, the end of the loop.
type ScriptStep struct {
	Tool   string          `json:"tool,omitempty"`
	Args   json.RawMessage `json:"args,omitempty"`
	Finish bool            `json:"finish,omitempty"`
}

// valid reports whether the step has exactly one of the two shapes.
func (s ScriptStep) valid() bool {
	if s.Finish {
		return s.Tool == "" && s.Args == nil
	}
	return s.Tool != "" && len(s.Args) > 0 && s.Args[0] == '{'
}

// ValidateLM checks configure_lm's arguments, reporting every bad field at
// once with CodeInvalidArgument.
func ValidateLM(lm LMArgs) error {
	var bad []string
	if !lmNameOK(lm.Name) {
		bad = append(bad, badLMName("name", lm.Name))
	}
	switch lm.Provider {
	case "dummy":
	case "openai":
		if lm.Model == "" {
			bad = append(bad, "model is required for the openai provider")
		}
	default:
		bad = append(bad, fmt.Sprintf("provider %q is unknown (known: dummy, openai)", lm.Provider))
	}
	if lm.Temperature != nil && (*lm.Temperature < 0 || *lm.Temperature > 2) {
		bad = append(bad, fmt.Sprintf("temperature %v is outside [0, 2]", *lm.Temperature))
	}
	if lm.MaxTokens < 0 {
		bad = append(bad, "max_tokens must not be negative")
	}
	if lm.TimeoutMS < 0 {
		bad = append(bad, "timeout_ms must not be negative")
	}
	if lm.DelayMS < 0 {
		bad = append(bad, "delay_ms must not be negative")
	}
	switch lm.Engine {
	case "", "auto", "native", "dspy":
	default:
		bad = append(bad, fmt.Sprintf("engine %q is unknown (known: auto, native, dspy)", lm.Engine))
	}
	if lm.FailAfterChunks != nil && *lm.FailAfterChunks < 0 {
		bad = append(bad, "fail_after_chunks must not be negative")
	}
	if lm.FailAfterChunks != nil && lm.Provider != "dummy" {
		bad = append(bad, "fail_after_chunks is only for the dummy provider")
	}
	if len(lm.Script) > 0 && lm.Provider != "dummy" {
		bad = append(bad, "script is only for the dummy provider")
	}
	for i, step := range lm.Script {
		if !step.valid() {
			bad = append(bad, fmt.Sprintf(`script[%d] must be {"tool": name, "args": {...}} or {"finish": true}`, i))
		}
	}
	if lm.APIKeyEnv != "" && !isIdentifier(lm.APIKeyEnv) {
		bad = append(bad, fmt.Sprintf("api_key_env %q is not an environment variable name", lm.APIKeyEnv))
	}
	if len(bad) > 0 {
		return invalid("configure_lm: %s", strings.Join(bad, "; "))
	}
	return nil
}
