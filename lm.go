package dspgo

import (
	"context"
	"encoding/json"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// LM providers for LMConfig.Provider.
const (
	// ProviderDummy is the deterministic offline language model: outputs
	// derived from a hash of the program, the inputs and the field name
	// (docs/protocol.md). Every backend implements it identically.
	ProviderDummy = "dummy"
	// ProviderOpenAI is any OpenAI-compatible /chat/completions endpoint.
	ProviderOpenAI = "openai"
)

// LMConfig configures a language model the backend's programs call: the
// default one, or, with Name, one that programs choose by name. Zero
// fields mean the provider's default.
type LMConfig struct {
	// Name names the configuration. Programs run with it when their
	// ProgramSpec.LM, or else the Session handle executing them
	// (Session.WithLM), names it; configuring a name again replaces that
	// name's configuration only, and every name lives on every worker
	// beside the others (docs/protocol.md, "Named LM configurations").
	// Empty, the default, means the default LM: the one programs that
	// name none run with. A name is 1 to 64 letters, digits, '_' or '-'.
	Name string
	// Provider is ProviderDummy or ProviderOpenAI. Empty means
	// ProviderDummy.
	Provider string
	// Model is the model name, such as "gpt-4o-mini". Empty means the
	// provider's default.
	Model string
	// BaseURL is the endpoint's base URL for ProviderOpenAI: http:// or
	// https://, a host (an IPv6 address in brackets), an optional port
	// from 1 to 65535 and a path, in ASCII without spaces or control
	// characters. ConfigureLM refuses another with CodeInvalidArgument,
	// whatever the provider, in a message that does not quote it (it may
	// hold credentials). Credentials in it (https://user:password@host/v1)
	// are sent as HTTP Basic authorization when no API key is set (the
	// native engine; the dspy engine's HTTP client decides for itself).
	// Empty means the provider's default.
	BaseURL string
	// APIKeyEnv names the worker's environment variable that holds the API
	// key; the key itself never passes through dspgo. Empty means the
	// provider's default.
	APIKeyEnv string
	// Temperature is the sampling temperature. Nil means the provider's
	// default.
	Temperature *float64
	// MaxTokens caps the tokens of one completion. Zero means the
	// provider's default.
	MaxTokens int
	// Timeout bounds one LM request. Zero means the provider's default.
	Timeout time.Duration
	// Engine selects the worker's engine: "native", "dspy" or "auto"
	// (dspy when importable). Empty means "auto".
	Engine string
	// DSPyAdapter selects the DSPy adapter that formats the prompts and
	// reads the replies, as dspy.configure(adapter=…) does: "chat"
	// (dspy.ChatAdapter, falling back to dspy.JSONAdapter on a reply it
	// cannot read), "json" (dspy.JSONAdapter), "xml" (dspy.XMLAdapter) or
	// "baml" (DSPy's BAMLAdapter, dspy.adapters.baml_adapter). Run a
	// program with the adapter it was optimized with. Empty means "chat".
	// Both engines run "chat" and "json"; "xml" and "baml" need the dspy
	// engine: with Engine "auto" they are CodeFailedPrecondition when the
	// worker cannot import dspy, and with "native" CodeInvalidArgument.
	// The dummy provider ignores it.
	DSPyAdapter string
	// Verify makes the backend check the configuration with a request to
	// the LM now, instead of at the first execution. The check is made
	// once: workers started later (a restart, a pool's growth, a remote
	// host) get the configuration without it, so an outage of the LM
	// cannot keep them from starting.
	Verify bool
	// Delay makes the dummy provider take this long per execution,
	// honouring cancellation: for tests of deadlines and load. Zero means
	// no delay.
	Delay time.Duration
	// Script drives ProviderDummy's KindReact loop, for tests and offline
	// examples: step i of the loop takes Script[i]; a Finish step, the end
	// of the script or the program's MaxIters ends it. Nil means the loop
	// ends at once.
	Script []ScriptStep
	// Cache makes each worker process keep an in-memory cache of LM
	// replies keyed by the full request (never on disk), so an identical
	// request is answered without an LM call, and a reply served from the
	// cache counts no tokens in Usage. Each worker has its own cache (a
	// pool's workers do not share theirs). False, the default, means
	// every execution calls the LM. It has no effect on ProviderDummy,
	// which makes no LM call.
	Cache bool
	// ImageURLs lets a dspy.Image input or demo give its image by an
	// http, https or gs URL, which the model's server (the endpoint of
	// BaseURL) then fetches: whoever supplies the inputs could make it
	// fetch any address it reaches, a self-hosted server's internal ones
	// included. False, the default, takes data: URIs only and refuses a
	// URL with CodeFailedPrecondition. ProviderDummy, which fetches
	// nothing, takes both.
	ImageURLs bool
}

// ScriptStep is one step of the dummy provider's ReAct script: a call of
// Tool with Args, or, with Finish set, the answer.
type ScriptStep struct {
	// Tool names the tool to call.
	Tool string
	// Args are the tool's arguments: any value that encodes to a JSON
	// object. Nil means {}.
	Args any
	// Finish ends the loop; Tool and Args must then be empty.
	Finish bool
}

// ConfigureLM sets a language model on the backend: the default one, for
// every program that names none, or with cfg.Name the one of that name,
// for the programs that choose it. When the adapter is an
// adapter.Broadcaster (a pool, a remote deployment), the configuration
// reaches every current worker and every worker started later, each name
// recorded apart. A name no configuration has is CodeNotFound when a
// program runs with it, not here: names may be configured after the
// programs that use them are created.
func (c *Client) ConfigureLM(ctx context.Context, cfg LMConfig) error {
	const op = command.ConfigureLM
	if cfg.Provider == "" {
		cfg.Provider = ProviderDummy
	}
	if cfg.Timeout < 0 || cfg.Delay < 0 || cfg.MaxTokens < 0 {
		return c.errorf(adapter.CodeInvalidArgument, op, "timeout, delay and max tokens must not be negative")
	}
	if err := program.CheckLMName("name", cfg.Name); err != nil {
		return adapter.Wrap(err, c.a.Name(), op)
	}
	lm := command.LMArgs{
		Name: cfg.Name, Provider: cfg.Provider, Model: cfg.Model, BaseURL: cfg.BaseURL, APIKeyEnv: cfg.APIKeyEnv,
		Temperature: cfg.Temperature, MaxTokens: cfg.MaxTokens, TimeoutMS: cfg.Timeout.Milliseconds(),
		Engine: cfg.Engine, DSPyAdapter: cfg.DSPyAdapter, Verify: cfg.Verify, DelayMS: cfg.Delay.Milliseconds(), Cache: cfg.Cache,
		ImageURLs: cfg.ImageURLs,
	}
	for i, step := range cfg.Script {
		s := command.ScriptStep{Tool: step.Tool, Finish: step.Finish}
		if !step.Finish {
			s.Args = json.RawMessage(`{}`)
			if step.Args != nil {
				b, err := json.Marshal(step.Args)
				if err != nil || len(b) == 0 || b[0] != '{' {
					return c.errorf(adapter.CodeInvalidArgument, op, "script[%d].args must encode to a JSON object", i)
				}
				s.Args = b
			}
		}
		lm.Script = append(lm.Script, s)
	}
	// Checked here too, not only by the workers: a bad configuration is
	// refused at once, before any worker starts for it, and on backends
	// (remote, while no host serves) that record a broadcast a worker
	// cannot check.
	if err := program.ValidateLM(lm); err != nil {
		return adapter.Wrap(err, c.a.Name(), op)
	}
	args, err := json.Marshal(lm)
	if err != nil {
		return c.errorf(adapter.CodeInvalidArgument, op, "%v", err)
	}
	req := adapter.Request{Command: op, Args: args}
	if b, ok := c.a.(adapter.Broadcaster); ok {
		return b.Broadcast(ctx, req)
	}
	_, err = c.a.Call(ctx, req)
	return err
}
