package program

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Command names of the program command set (docs/protocol.md).
const (
	CmdPing           = "ping"
	CmdDescribe       = "describe"
	CmdConfigureLM    = "configure_lm"
	CmdCreateProgram  = "create_program"
	CmdExecuteProgram = "execute_program"
	CmdDeleteProgram  = "delete_program"
	CmdGetStats       = "get_stats"
	CmdReset          = "reset"
	CmdShutdown       = "shutdown"
	CmdCancel         = "cancel"
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
	Spec   *Spec           `json:"spec,omitempty"`
	Inputs json.RawMessage `json:"inputs"`
}

// ExecuteResult is execute_program's result.
type ExecuteResult struct {
	Outputs  json.RawMessage `json:"outputs"`
	SpecHash string          `json:"spec_hash"`
}

// DeleteArgs are delete_program's arguments.
type DeleteArgs struct {
	SpecHash string `json:"spec_hash"`
}

// LMArgs are configure_lm's arguments. Zero fields are left out and mean
// the provider's default.
type LMArgs struct {
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
}

// ValidateLM checks configure_lm's arguments, reporting every bad field at
// once with CodeInvalidArgument.
func ValidateLM(lm LMArgs) error {
	var bad []string
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
	if lm.APIKeyEnv != "" && !isIdentifier(lm.APIKeyEnv) {
		bad = append(bad, fmt.Sprintf("api_key_env %q is not an environment variable name", lm.APIKeyEnv))
	}
	if len(bad) > 0 {
		return invalid("configure_lm: %s", strings.Join(bad, "; "))
	}
	return nil
}
