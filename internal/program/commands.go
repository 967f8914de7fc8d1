package program

import (
	"fmt"
	"strings"

	"github.com/dspgo/dspgo/command"
)

// The command set's names, from the public contract (package command).
const (
	CmdPing           = command.Ping
	CmdDescribe       = command.Describe
	CmdConfigureLM    = command.ConfigureLM
	CmdCreateProgram  = command.CreateProgram
	CmdExecuteProgram = command.ExecuteProgram
	CmdDeleteProgram  = command.DeleteProgram
	CmdGetStats       = command.GetStats
	CmdReset          = command.Reset
	CmdShutdown       = command.Shutdown
	CmdCancel         = command.Cancel
)

// SpecNotFoundType is command.SpecNotFoundType.
const SpecNotFoundType = command.SpecNotFoundType

// The command set's argument and result types (package command).
type (
	CreateArgs    = command.CreateArgs
	CreateResult  = command.CreateResult
	ExecuteArgs   = command.ExecuteArgs
	ToolSpec      = command.ToolSpec
	Step          = command.Step
	ExecuteResult = command.ExecuteResult
	Usage         = command.Usage
	DeleteArgs    = command.DeleteArgs
	LMArgs        = command.LMArgs
	ScriptStep    = command.ScriptStep
)

// Bounds of a react loop's steps (package command).
const (
	DefaultMaxIters = command.DefaultMaxIters
	MaxIters        = command.MaxIters
)

// validStep reports whether the step has exactly one of the two shapes.
func validStep(s ScriptStep) bool {
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
	case command.ProviderDummy:
	case command.ProviderOpenAI:
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
		if !validStep(step) {
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
