package config

import (
	"io"
	"log/slog"

	"go.uber.org/fx"
)

// Module provides *Config to an fx application, loaded with the
// LoadOptions the application supplies (fx.Supply(config.LoadOptions{…}));
// without them, with Load's defaults.
var Module = fx.Module("config", fx.Provide(newFromParams))

// Params are Module's inputs.
type Params struct {
	fx.In

	// Options say where the layers come from. Optional.
	Options LoadOptions `optional:"true"`
}

func newFromParams(p Params) (*Config, error) { return Load(p.Options) }

// Logger returns a logger writing to w at the configured level and in the
// configured format.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
