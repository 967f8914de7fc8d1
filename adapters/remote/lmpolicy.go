package remote

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/secret"
)

// The provider defaults a worker uses for a configure_lm that does not
// name its endpoint or its key's variable (docs/dspy.md).
const (
	// DefaultLMBaseURL is the endpoint of a configure_lm without
	// base_url: OpenAI's.
	DefaultLMBaseURL = "https://api.openai.com/v1"
	// DefaultLMAPIKeyEnv is the variable holding the API key of a
	// configure_lm without api_key_env.
	DefaultLMAPIKeyEnv = "OPENAI_API_KEY"
)

// broadcastCommands are the only commands a host applies as broadcasts,
// whether a caller sends one (Adapter.Broadcast) or finds one in the
// shared state: anyone able to write the state would otherwise run any
// command on every host.
var broadcastCommands = []string{command.ConfigureLM}

// broadcastKey is the key of the shared state under which a broadcast is
// recorded: "broadcast." and program.BroadcastKey, so every named LM has
// its own ("broadcast.configure_lm.<name>") beside the default one's
// ("broadcast.configure_lm").
func broadcastKey(command string, args []byte) string {
	return "broadcast." + program.BroadcastKey(command, args)
}

// checkLMName refuses, with CodeInvalidArgument, configure_lm arguments
// whose LM name cannot be part of a key of the shared state: not a
// string, or not a valid name (program.CheckLMName). Arguments that are
// not an object pass: every backend refuses them before it applies
// anything, and nothing records them.
func checkLMName(args []byte) error {
	const op = command.ConfigureLM
	var fields map[string]json.RawMessage
	if len(args) == 0 || json.Unmarshal(args, &fields) != nil || fields == nil {
		return nil
	}
	name, ok := program.LMName(args)
	if !ok {
		return errorf(adapter.CodeInvalidArgument, Name, op, "command 'configure_lm': argument 'name' must be of type str, got %s", program.JSONTypeName(fields["name"]))
	}
	return adapter.Wrap(program.CheckLMName("name", name), Name, op)
}

// lmPolicy is what a host lets a configure_lm from elsewhere name: the LM
// endpoints its workers may send their API key to, the one variable that
// key may come from, and whether images may be given by URL.
type lmPolicy struct {
	baseURLs  []string // trimmed of trailing slashes
	keyEnv    string
	imageURLs bool
}

// newLMPolicy checks the allowed base URLs (nil means DefaultLMBaseURL)
// and the key's variable (empty means DefaultLMAPIKeyEnv).
func newLMPolicy(baseURLs []string, keyEnv string, imageURLs bool) (lmPolicy, error) {
	if baseURLs == nil {
		baseURLs = []string{DefaultLMBaseURL}
	}
	p := lmPolicy{keyEnv: keyEnv, imageURLs: imageURLs}
	if p.keyEnv == "" {
		p.keyEnv = DefaultLMAPIKeyEnv
	}
	for _, raw := range baseURLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return lmPolicy{}, fmt.Errorf("allowed LM base URL %q is not an http or https URL", secret.URL(raw))
		}
		if trimmed := trimURL(raw); !slices.Contains(p.baseURLs, trimmed) {
			p.baseURLs = append(p.baseURLs, trimmed)
		}
	}
	return p, nil
}

// trimURL is a base URL as the worker uses it: without trailing slashes.
func trimURL(s string) string { return strings.TrimRight(s, "/") }

// check returns configure_lm's arguments as the host may apply them, or
// CodeFailedPrecondition when they name an LM endpoint outside the
// allowlist or a key variable other than the host's own, or set
// image_urls where the host does not allow it. The provider,
// base_url and api_key_env are read by their exact keys (the last of
// repeated ones, as the worker reads them) and written back as read, so
// that the worker applies what was checked. Arguments that are not an
// object, or give one of those fields another type than a string, are
// returned unchanged: every backend refuses them (CodeInvalidArgument,
// with the command set's own message) before it applies anything. For
// the dummy provider, which sends nothing anywhere, only fields that are
// set are checked.
func (p lmPolicy) check(host string, args []byte) ([]byte, error) {
	const op = command.ConfigureLM
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(args, &fields); err != nil || fields == nil {
		return args, nil
	}
	var provider, baseURL, keyEnv string
	for key, to := range map[string]*string{"provider": &provider, "base_url": &baseURL, "api_key_env": &keyEnv} {
		raw, ok := fields[key]
		if !ok || string(raw) == "null" {
			continue
		}
		if json.Unmarshal(raw, to) != nil {
			return args, nil
		}
		fields[key], _ = json.Marshal(*to)
	}
	dummy := provider == "dummy"
	if baseURL != "" || !dummy {
		if baseURL == "" {
			baseURL = DefaultLMBaseURL
		}
		if !slices.Contains(p.baseURLs, trimURL(baseURL)) {
			return nil, errorf(adapter.CodeFailedPrecondition, Name, op,
				"host %q refuses configure_lm: base_url %q is not one of the LM endpoints this host sends its API key to (its remote.lm_base_urls and lm.base_url)",
				host, secret.URL(baseURL))
		}
	}
	if keyEnv != "" || !dummy {
		if keyEnv == "" {
			keyEnv = DefaultLMAPIKeyEnv
		}
		if keyEnv != p.keyEnv {
			return nil, errorf(adapter.CodeFailedPrecondition, Name, op,
				"host %q refuses configure_lm: its api_key_env is not the variable this host's own configuration names for its key (lm.api_key_env; "+
					"the value sent is not shown, as it may be a key itself)", host)
		}
	}
	var imageURLs bool
	if json.Unmarshal(fields["image_urls"], &imageURLs) == nil && imageURLs && !p.imageURLs {
		return nil, errorf(adapter.CodeFailedPrecondition, Name, op,
			"host %q refuses configure_lm: image_urls would have its workers send images given by URL to the LM, which fetches them wherever they point (its own lm.image_urls allows it)",
			host)
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, errorf(adapter.CodeInvalidArgument, Name, op, "configure_lm: %v", err)
	}
	return out, nil
}
