package command

import "encoding/json"

// MaxLMNameBytes bounds the name of an LM configuration (LMArgs.Name,
// ExecuteArgs.LM): empty (the default LM), or 1 to MaxLMNameBytes ASCII
// letters, digits, '_' and '-', so that a name can be a NATS subject
// token.
const MaxLMNameBytes = 64

// Providers of LMArgs.Provider.
const (
	// ProviderDummy is the deterministic offline language model
	// (docs/protocol.md, "The dummy language model"); a new worker's
	// default LM.
	ProviderDummy = "dummy"
	// ProviderOpenAI is any OpenAI-compatible chat completions endpoint;
	// it needs LMArgs.Model.
	ProviderOpenAI = "openai"
)

// LMArgs are ConfigureLM's arguments. Zero fields are left out of the
// JSON and mean the provider's default.
type LMArgs struct {
	// Name names the configuration, which then replaces only the one of
	// that name (see MaxLMNameBytes); empty means the default LM, the one
	// executions that name none run with.
	Name string `json:"name,omitempty"`
	// Provider is ProviderDummy or ProviderOpenAI. Required.
	Provider string `json:"provider"`
	// Model is the provider's model name; required for ProviderOpenAI.
	Model string `json:"model,omitempty"`
	// BaseURL is the OpenAI-compatible endpoint; empty means the
	// provider's default.
	BaseURL string `json:"base_url,omitempty"`
	// APIKeyEnv names the worker's environment variable holding the API
	// key (the key itself never travels); empty means the provider's
	// default.
	APIKeyEnv string `json:"api_key_env,omitempty"`
	// Temperature is the sampling temperature, 0 to 2; nil means the
	// provider's default.
	Temperature *float64 `json:"temperature,omitempty"`
	// MaxTokens bounds each completion; 0 means the provider's default.
	MaxTokens int `json:"max_tokens,omitempty"`
	// TimeoutMS bounds each LM request, in milliseconds; 0 means the
	// provider's default.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Engine is "auto" (dspy when the worker can import it), "native" or
	// "dspy"; empty means "auto".
	Engine string `json:"engine,omitempty"`
	// DSPyAdapter is the DSPy adapter that formats prompts and reads
	// replies, one of DSPyAdapters: "chat" (dspy.ChatAdapter, which falls
	// back to JSONAdapter on a reply it cannot read), "json"
	// (dspy.JSONAdapter), "xml" (dspy.XMLAdapter) or "baml" (DSPy's
	// BAMLAdapter). Empty means "chat". Only the dspy engine runs "xml"
	// and "baml" (NativeDSPyAdapters; see program.ValidateLM).
	DSPyAdapter string `json:"dspy_adapter,omitempty"`
	// Verify makes the worker check the configuration by calling the LM
	// once before it answers; false means no check. Backends replay the
	// configuration to workers they start later without it
	// (program.Replayable).
	Verify bool `json:"verify,omitempty"`
	// DelayMS makes the dummy provider take this long per execution,
	// honouring cancellation: a portable way to test deadlines. 0 means
	// no delay.
	DelayMS int64 `json:"delay_ms,omitempty"`
	// Script drives the dummy provider's react loop: step i of the loop
	// takes Script[i]. Nil means the dummy's own choice.
	Script []ScriptStep `json:"script,omitempty"`
	// FailAfterChunks makes the dummy provider's streamed executions fail
	// (internal) after this many chunks: a portable producer error for
	// tests of streams. Nil means never.
	FailAfterChunks *int `json:"fail_after_chunks,omitempty"`
	// Cache makes each worker keep an in-memory cache of LM replies keyed
	// by the full request; false means every execution calls the LM.
	Cache bool `json:"cache,omitempty"`
	// ImageURLs lets images be given by URL (http, https, gs), which the
	// model's server fetches; false means data: URIs only.
	ImageURLs bool `json:"image_urls,omitempty"`
}

// ScriptStep is one step of the dummy provider's react script: a call of
// Tool with Args (a JSON object), or, with Finish, the end of the loop.
type ScriptStep struct {
	// Tool is the host tool to call; empty with Finish.
	Tool string `json:"tool,omitempty"`
	// Args is the JSON object of the call's arguments; nil with Finish.
	Args json.RawMessage `json:"args,omitempty"`
	// Finish ends the loop: the dummy then gives the outputs.
	Finish bool `json:"finish,omitempty"`
}

// ConfigureLMResult is ConfigureLM's result.
type ConfigureLMResult struct {
	// Provider and Model are LMArgs'.
	Provider string `json:"provider"`
	Model    string `json:"model"`
	// Engine is the engine that runs executions: "native" or "dspy".
	Engine string `json:"engine"`
}

// DSPyAdapters are the names LMArgs.DSPyAdapter takes, in the order
// messages list them.
var DSPyAdapters = []string{"chat", "json", "xml", "baml"}

// NativeDSPyAdapters are those of DSPyAdapters the native engine runs too
// (it writes their prompts); the others need the dspy engine.
var NativeDSPyAdapters = []string{"chat", "json"}
