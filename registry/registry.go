// Package registry decides the backend, in one place, from configuration,
// and says why.
//
// A Registry maps names to Factories. Open resolves the adapter name from
// config once, with the layer that set it and the environment in force,
// and opens the adapter; an unknown name is an error listing the known
// ones, never a fallback. The package is usable without fx; Module wires
// it into an fx application, and AsFactory contributes third-party
// factories to the value group "adapter.factories".
package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/config"
)

// Factory makes one kind of adapter.
type Factory struct {
	// Name is the name configuration selects it by. Required, unique.
	Name string
	// Description says what the adapter is, for listings.
	Description string
	// Capabilities declares what the adapter supports, for listings.
	Capabilities adapter.Capabilities
	// Open makes a ready adapter from the configuration. Required.
	Open func(ctx context.Context, cfg *config.Config) (adapter.Adapter, error)
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
	// code is adapter.CodeInvalidArgument.
	ErrUnknownAdapter = errors.New("registry: unknown adapter")
	// ErrBadFactory: a factory without a name or Open, or a name used
	// twice.
	ErrBadFactory = errors.New("registry: invalid factory")
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
			Message: fmt.Sprintf("adapter %q (set by %s) is not registered; known adapters: %s", cfg.Adapter, res.Source, strings.Join(r.Names(), ", "))}
	}
	return f, res, nil
}

// Open resolves the adapter from cfg and opens it.
func (r *Registry) Open(ctx context.Context, cfg *config.Config) (adapter.Adapter, Resolution, error) {
	f, res, err := r.Resolve(cfg)
	if err != nil {
		return nil, res, err
	}
	a, err := f.Open(ctx, cfg)
	if err != nil {
		return nil, res, fmt.Errorf("registry: opening %s: %w", res, err)
	}
	return a, res, nil
}
