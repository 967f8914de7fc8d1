package program

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/lmurl"
)

// CheckLMName checks the name of an LM configuration given as field
// (configure_lm's name, execute_program's lm): empty, the default LM, or
// 1 to MaxLMNameBytes letters, digits, '_' and '-'. The names are
// subject tokens, so a remote deployment can key its shared state by
// them. The error is CodeInvalidArgument naming field.
func CheckLMName(field, name string) error {
	if lmNameOK(name) {
		return nil
	}
	return invalid("%s", badLMName(field, name))
}

// badLMName is the complaint about a bad LM name given as field, as
// every backend words it.
func badLMName(field, name string) string {
	return fmt.Sprintf("%s %q may hold only letters, digits, '_' and '-' (at most %d)", field, name, command.MaxLMNameBytes)
}

func lmNameOK(name string) bool {
	if len(name) > command.MaxLMNameBytes {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// LMName reads the name of the LM configuration that configure_lm's
// arguments set: "" for the default. ok is false when the arguments are
// not an object or their name is not a string (a request every backend
// refuses). A repeated key counts by its last value, as the workers read
// it.
func LMName(args json.RawMessage) (name string, ok bool) {
	if len(args) == 0 {
		return "", true
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(args, &fields) != nil || fields == nil {
		return "", false
	}
	raw, present := fields["name"]
	if !present || string(raw) == "null" {
		return "", true
	}
	if json.Unmarshal(raw, &name) != nil {
		return "", false
	}
	return name, true
}

// Replayable returns a broadcast's arguments as they are recorded to
// replay on workers started later: for configure_lm, without "verify",
// which checks the configuration once, when it is given (a restart during
// an outage of the LM must not fail on it). Other arguments, and
// arguments that are not a JSON object, are returned as they are.
func Replayable(cmd string, args json.RawMessage) json.RawMessage {
	if cmd != command.ConfigureLM || !bytes.Contains(args, []byte(`"verify"`)) {
		return args
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(args, &fields) != nil {
		return args
	}
	if _, ok := fields["verify"]; !ok {
		return args
	}
	delete(fields, "verify")
	out, err := json.Marshal(fields)
	if err != nil {
		return args
	}
	return out
}

// BroadcastKey identifies a broadcast among those a backend records to
// replay on workers started later: a later broadcast with the same key
// replaces the recorded one. It is the command, except for configure_lm
// of a named LM: "configure_lm.<name>", so that every named LM is kept
// beside the default one (key "configure_lm"). A configure_lm whose name
// cannot be read has the key "configure_lm.", which no valid one has, so
// it never displaces a recorded configuration while a worker refuses it.
func BroadcastKey(cmd string, args json.RawMessage) string {
	if cmd != command.ConfigureLM {
		return cmd
	}
	name, ok := LMName(args)
	switch {
	case !ok:
		return cmd + "."
	case name == "":
		return cmd
	}
	return cmd + "." + name
}

// MaxNamedLMs is how many named LM configurations a worker keeps (the
// default one aside): a configure_lm naming one more is TooManyLMs, so
// that no caller can grow a worker's memory, or the shared state every
// new remote host replays, without bound.
const MaxNamedLMs = 1024

// TooManyLMs is the error of a configure_lm whose name would be one more
// than MaxNamedLMs: CodeResourceExhausted, worded as the Python worker
// words it.
func TooManyLMs(name string) error {
	return adapter.Errorf(adapter.CodeResourceExhausted, "a worker keeps at most %d named LM configurations: %q would be one more (reset drops them)", MaxNamedLMs, name)
}

// LMNotFound is the error of an execute_program whose lm names no
// configuration: CodeNotFound naming it, of type command.LMNotFoundType as
// the Python worker reports it.
func LMNotFound(name string) error {
	msg := fmt.Sprintf("LM %q is not configured (configure_lm with \"name\": %q sets it)", name, name)
	return &adapter.Error{Code: adapter.CodeNotFound, Message: msg,
		Remote: &adapter.RemoteError{Code: adapter.CodeNotFound, Type: command.LMNotFoundType, Message: msg}}
}

// validStep reports whether the step has exactly one of the two shapes.
func validStep(s command.ScriptStep) bool {
	if s.Finish {
		return s.Tool == "" && s.Args == nil
	}
	return s.Tool != "" && len(s.Args) > 0 && s.Args[0] == '{'
}

// ValidateLM checks configure_lm's arguments, reporting every bad field at
// once with CodeInvalidArgument.
func ValidateLM(lm command.LMArgs) error {
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
	switch {
	case lm.DSPyAdapter == "" || lm.DSPyAdapter == "chat":
	case !slices.Contains(command.DSPyAdapters, lm.DSPyAdapter):
		bad = append(bad, fmt.Sprintf("dspy_adapter %q is unknown (known: %s)", lm.DSPyAdapter, strings.Join(command.DSPyAdapters, ", ")))
	case lm.Engine == "native" && !slices.Contains(command.NativeDSPyAdapters, lm.DSPyAdapter):
		bad = append(bad, fmt.Sprintf("dspy_adapter %q needs the dspy engine (engine is native)", lm.DSPyAdapter))
	}
	if lm.FailAfterChunks != nil && *lm.FailAfterChunks < 0 {
		bad = append(bad, "fail_after_chunks must not be negative")
	}
	if lm.FailAfterChunks != nil && lm.Provider != command.ProviderDummy {
		bad = append(bad, "fail_after_chunks is only for the dummy provider")
	}
	if len(lm.Script) > 0 && lm.Provider != command.ProviderDummy {
		bad = append(bad, "script is only for the dummy provider")
	}
	for i, step := range lm.Script {
		if !validStep(step) {
			bad = append(bad, fmt.Sprintf(`script[%d] must be {"tool": name, "args": {...}} or {"finish": true}`, i))
		}
	}
	if lm.BaseURL != "" { // empty: the provider's default
		if problem := lmurl.Problem(lm.BaseURL); problem != "" {
			bad = append(bad, "base_url "+problem)
		}
	}
	if lm.APIKeyEnv != "" && !isIdentifier(lm.APIKeyEnv) {
		bad = append(bad, "api_key_env is not an environment variable name (its value is not shown: it may be the key itself)")
	}
	if len(bad) > 0 {
		return invalid("configure_lm: %s", strings.Join(bad, "; "))
	}
	return nil
}
