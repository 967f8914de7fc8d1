package registry

import (
	"context"

	"go.uber.org/fx"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/config"
)

// FactoryGroup is the fx value group of factories.
const FactoryGroup = "adapter.factories"

// Module provides, from *config.Config: the *Registry of the built-in
// factories and every factory contributed with AsFactory; the
// adapter.Adapter configuration selects, opened by Registry.Open at
// construction (so with the configured LM) and closed in an OnStop hook
// within config's stop_timeout; its Resolution; and a *dspgo.Client over
// it. Its fx events go to the configured logger (config.FxLogger), as
// its warnings do.
var Module = fx.Module("registry",
	fx.Provide(
		fx.Annotate(Builtin, fx.ResultTags(`group:"`+FactoryGroup+`,flatten"`)),
		fx.Annotate(newFromGroup, fx.ParamTags(`group:"`+FactoryGroup+`"`)),
		open,
		newClient,
	),
	config.FxLogger,
)

// AsFactory contributes a factory constructor (a function returning a
// Factory, with any fx dependencies as parameters) to the value group of
// Module's registry.
func AsFactory(ctor any) fx.Option {
	return fx.Provide(fx.Annotate(ctor, fx.ResultTags(`group:"`+FactoryGroup+`"`)))
}

func newFromGroup(factories []Factory) (*Registry, error) { return New(factories...) }

// Opened is Module's adapter with the reason it was chosen.
type Opened struct {
	fx.Out

	Adapter    adapter.Adapter
	Resolution Resolution
}

func open(lc fx.Lifecycle, r *Registry, cfg *config.Config) (Opened, error) {
	log := cfg.Logger(cfg.LogOutput())
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout(cfg))
	defer cancel()
	a, res, err := r.Open(ctx, cfg)
	if err != nil {
		return Opened{}, err
	}
	for _, w := range res.Warnings {
		log.Warn(w, "adapter", res.Name)
	}
	log.Debug("adapter resolved", "resolution", res.String())
	lc.Append(fx.StopHook(func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, cfg.StopTimeout)
		defer cancel()
		return a.Close(ctx)
	}))
	return Opened{Adapter: a, Resolution: res}, nil
}

// newClient is the client over the adapter; Registry.Open configured its
// LM.
func newClient(a adapter.Adapter) *dspgo.Client { return dspgo.NewClient(a) }
