// Package registry decides the backend, in one place, from configuration,
// and says why.
//
// A Registry maps names to Factories. Open resolves the adapter name from
// config once, with the layer that set it and the environment in force,
// and opens the adapter with the configured language model (lm.*); an
// unknown name is an error listing the known ones, never a fallback, and
// an LM the adapter does not run is an error, never the dummy instead.
// The package is usable without fx; Module wires it into an fx
// application, and AsFactory contributes third-party factories to the
// value group "adapter.factories".
//
// Builtin links the mock, memory, port and pool adapters. An adapter whose
// dependencies a local program should not pay for registers itself from
// its own package (Register), so that only a program importing that
// package links it: the remote adapter, with NATS, comes with
// github.com/dspgo/dspgo/adapters/remote/remoteconfig.
package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/internal/suggest"
)

// Factory makes one kind of adapter.
type Factory struct {
	// Name is the name configuration selects it by. Required, unique.
	Name string
	// Description says what the adapter is, for listings.
	Description string
	// Capabilities reports what the adapter supports, for listings such
	// as dspgo adapters. It asks the adapter itself rather than repeating
	// what the adapter reports: the built-in factories open one in process
	// and close it again (CapabilitiesOf). Nil (the default) means unknown
	// until the adapter is opened.
	Capabilities func(ctx context.Context) (adapter.Capabilities, error)
	// Open makes a ready adapter from the configuration. Required. It
	// need not configure the language model: Registry.Open does that.
	Open func(ctx context.Context, cfg *config.Config) (adapter.Adapter, error)
	// LMProviders are the only lm.provider values the adapter runs, such
	// as {"dummy"} for the mock. Registry.Open refuses any other before
	// opening the adapter, with adapter.CodeFailedPrecondition and
	// ErrLMNotSupported. Nil (the default) means any: the adapter's
	// workers judge the LM configuration themselves.
	LMProviders []string
	// SharedWorkers marks an adapter whose workers other callers share
	// and that outlive it, such as remote worker hosts. Registry.Open then
	// applies lm.* only when a layer other than the defaults sets some
	// lm.* key, so that a caller saying nothing about the LM leaves the
	// one the workers run. False (the default) means Open always applies
	// lm.*.
	SharedWorkers bool
}

// Resolution says which adapter configuration chose, and why.
type Resolution struct {
	// Name is the factory's name.
	Name string
	// Requested is the name as configured, which may be a deprecated
	// alias of Name.
	Requested string
	// Source is the layer that set the name, such as "file:dspgo.yaml"
	// or "env:DSPGO_ADAPTER" (see config.Config.Source).
	Source string
	// Environment is the environments block in force; empty for none.
	Environment string
	// Warnings are deprecation notices; empty when there are none.
	Warnings []string
	// LM is the lm.provider Open configured the adapter with, such as
	// "dummy". Empty when Open applied no LM: Resolve never does, nor
	// does Open for a factory with SharedWorkers when no lm.* key is set
	// (the workers keep the LM they run).
	LM string
	// LMSource is the layer that set lm.provider (see
	// config.Config.Source); empty when LM is.
	LMSource string
}

// String says, in one line, which adapter and why.
func (r Resolution) String() string {
	s := fmt.Sprintf("adapter %q set by %s", r.Name, r.Source)
	if r.Requested != r.Name {
		s += fmt.Sprintf(" (as %q)", r.Requested)
	}
	if r.Environment != "" {
		s += fmt.Sprintf(" in environment %q", r.Environment)
	}
	return s
}

// Errors of the registry.
var (
	// ErrUnknownAdapter: configuration names no registered adapter. Its
	// code is adapter.CodeInvalidArgument; its message lists the known
	// adapters and suggests the one a misspelt name most likely meant.
	ErrUnknownAdapter = errors.New("registry: unknown adapter")
	// ErrBadFactory: a factory without a name or Open, or a name used
	// twice.
	ErrBadFactory = errors.New("registry: invalid factory")
	// ErrLMNotSupported: lm.provider names an LM the configured adapter
	// does not run (Factory.LMProviders), such as openai on the mock. Its
	// code is adapter.CodeFailedPrecondition.
	ErrLMNotSupported = errors.New("registry: the adapter does not run the configured LM")
)

// alias is a deprecated name.
type alias struct {
	name, why string
}

// aliases are the predecessor's names, accepted with a warning.
var aliases = map[string]alias{
	"python_port":  {"port", `"python_port" is deprecated; use "port"`},
	"python_pool":  {"pool", `"python_pool" is deprecated; use "pool"`},
	"mock_adapter": {"mock", `"mock_adapter" is deprecated; use "mock"`},
	"bridge_mock": {"memory", `"bridge_mock" is deprecated: the in-memory port worker, adapter "memory", replaces it ` +
		`(the mock's command set served over the real framing, with no Python and nothing to start by hand)`},
}

// Registry maps names to factories. It is safe for concurrent use.
type Registry struct {
	factories map[string]Factory
}

// New returns a registry of the factories. An empty or repeated name, or
// a factory without Open, is an error.
func New(factories ...Factory) (*Registry, error) {
	r := &Registry{factories: map[string]Factory{}}
	for _, f := range factories {
		switch {
		case strings.TrimSpace(f.Name) == "":
			return nil, fmt.Errorf("%w: a factory has no name", ErrBadFactory)
		case f.Open == nil:
			return nil, fmt.Errorf("%w: factory %q has no Open", ErrBadFactory, f.Name)
		}
		if _, dup := r.factories[f.Name]; dup {
			return nil, fmt.Errorf("%w: the name %q is registered twice", ErrBadFactory, f.Name)
		}
		if _, dup := aliases[f.Name]; dup {
			return nil, fmt.Errorf("%w: the name %q is a deprecated alias", ErrBadFactory, f.Name)
		}
		r.factories[f.Name] = f
	}
	return r, nil
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.factories))
	for name := range r.factories {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Factories returns the registered factories, sorted by name.
func (r *Registry) Factories() []Factory {
	var list []Factory
	for _, name := range r.Names() {
		list = append(list, r.factories[name])
	}
	return list
}

// Resolve returns the factory configuration selects, and why. It is the
// only place in dspgo that decides the backend.
func (r *Registry) Resolve(cfg *config.Config) (Factory, Resolution, error) {
	res := Resolution{Requested: cfg.Adapter, Name: cfg.Adapter, Source: cfg.Source("adapter"), Environment: cfg.Env}
	if a, ok := aliases[cfg.Adapter]; ok {
		if _, registered := r.factories[a.name]; registered {
			res.Name = a.name
			res.Warnings = append(res.Warnings, a.why)
		}
	}
	f, ok := r.factories[res.Name]
	if !ok {
		return Factory{}, res, &adapter.Error{Code: adapter.CodeInvalidArgument, Op: "resolve", Err: ErrUnknownAdapter,
			Message: fmt.Sprintf("adapter %q (set by %s) is not registered%s; known adapters: %s%s", cfg.Adapter, res.Source,
				howToLink(res.Name), strings.Join(r.Names(), ", "), r.didYouMean(res.Name))}
	}
	return f, res, nil
}

// didYouMean suggests the registered adapter a misspelt name most likely
// meant (" (did you mean \"mock\"?)" for "mok"); empty when none is close
// or name is one dspgo provides in a package of its own.
func (r *Registry) didYouMean(name string) string {
	if _, ok := linkable[name]; ok {
		return ""
	}
	if s := suggest.Closest(name, maps.Keys(r.factories)); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// howToLink says how to include an adapter dspgo provides in a package of
// its own; empty for any other name.
func howToLink(name string) string {
	pkg, ok := linkable[name]
	if !ok {
		return ""
	}
	return fmt.Sprintf(`: its package is not linked into this program or not in this registry; import _ %q and build the registry from registry.Builtin()`, pkg)
}

// Open resolves the adapter from cfg, opens it, and configures its
// language model from lm.*: the configure_lm broadcast that
// dspgo.Client.ConfigureLM(ctx, LMConfig(cfg)) sends, which reaches every
// current worker and every worker started later. So a backend opened from
// configuration never answers with another LM than the configured one
// (the offline dummy is the default). The exceptions, both in the
// factory's declaration:
//
//   - Factory.LMProviders: an lm.provider the adapter does not run, such
//     as openai on the mock or memory adapter, fails before anything is
//     opened, with adapter.CodeFailedPrecondition and ErrLMNotSupported,
//     naming the setting, its source and the adapters that run it;
//   - Factory.SharedWorkers (remote): with no lm.* key set by a layer
//     above the defaults, no LM is applied and the hosts keep theirs.
//
// When the adapter refuses the LM configuration, Open closes it and
// returns the adapter's error (its code kept), naming the lm.* settings
// and their sources. Resolution.LM says which provider was applied.
func (r *Registry) Open(ctx context.Context, cfg *config.Config) (adapter.Adapter, Resolution, error) {
	f, res, err := r.Resolve(cfg)
	if err != nil {
		return nil, res, err
	}
	if err := r.checkLM(f, res, cfg); err != nil {
		return nil, res, err
	}
	a, err := f.Open(ctx, cfg)
	if err != nil {
		return nil, res, fmt.Errorf("registry: opening %s: %w", res, err)
	}
	if f.SharedWorkers && !lmSet(cfg) {
		return a, res, nil
	}
	if err := dspgo.NewClient(a).ConfigureLM(ctx, LMConfig(cfg)); err != nil {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.StopTimeout)
		defer cancel()
		_ = a.Close(closeCtx)
		return nil, res, fmt.Errorf("registry: %s refused the configured LM (%s): %w", res, describeLM(cfg), err)
	}
	res.LM, res.LMSource = cfg.LM.Provider, cfg.Source("lm.provider")
	return a, res, nil
}

// checkLM refuses an lm.provider the factory does not run.
func (r *Registry) checkLM(f Factory, res Resolution, cfg *config.Config) error {
	provider := cfg.LM.Provider
	if f.LMProviders == nil || slices.Contains(f.LMProviders, provider) {
		return nil
	}
	var can []string
	for _, g := range r.Factories() {
		if g.LMProviders == nil || slices.Contains(g.LMProviders, provider) {
			can = append(can, g.Name)
		}
	}
	needs := "no registered adapter runs it"
	if len(can) > 0 {
		needs = "needs adapter " + orList(can)
	}
	return &adapter.Error{Code: adapter.CodeFailedPrecondition, Op: "open", Err: ErrLMNotSupported,
		Message: fmt.Sprintf("adapter %q runs only the %s LM; lm.provider %q (set by %s) %s",
			res.Name, orList(f.LMProviders), provider, cfg.Source("lm.provider"), needs)}
}

// lmSet reports whether a layer above the defaults sets some lm.* key.
func lmSet(cfg *config.Config) bool {
	for _, s := range cfg.Explain() {
		if strings.HasPrefix(s.Key, "lm.") && s.Source != "default" {
			return true
		}
	}
	return false
}

// describeLM lists lm.provider and every other lm.* key set above the
// defaults, each with its value and source. No key holds a secret:
// lm.api_key_env names a variable.
func describeLM(cfg *config.Config) string {
	var parts []string
	for _, s := range cfg.Explain() {
		if s.Key == "lm.provider" || (strings.HasPrefix(s.Key, "lm.") && s.Source != "default") {
			value := s.Value
			if value != `""` {
				value = strconv.Quote(value)
			}
			parts = append(parts, fmt.Sprintf("%s %s (set by %s)", s.Key, value, s.Source))
		}
	}
	return strings.Join(parts, ", ")
}

// orList joins names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
