package config

import (
	"io"
	"log/slog"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
)

// Module provides *Config to an fx application, loaded with the
// LoadOptions the application supplies (fx.Supply(config.LoadOptions{…}));
// without them, with Load's defaults. The module's own fx events go to
// the configured logger (FxLogger); the application's, with FxLogger
// among its options.
var Module = fx.Module("config", fx.Provide(newFromParams), FxLogger)

// Params are Module's inputs.
type Params struct {
	fx.In

	// Options say where the layers come from. Optional.
	Options LoadOptions `optional:"true"`
}

func newFromParams(p Params) (*Config, error) { return Load(p.Options) }

// FxLogger is an fx option that sends fx's own events to the configured
// logger (Config.Logger on Config.LogOutput) instead of fx's trace on
// standard error: every provide, invoke, start and stop at DEBUG, a
// failure at ERROR. At the default log.level (warn) an application that
// starts prints nothing.
//
//	fx.New(config.FxLogger, fx.Supply(config.LoadOptions{}), config.Module, registry.Module, …)
var FxLogger = fx.WithLogger(NewFxLogger)

// NewFxLogger returns the fx event logger of FxLogger for cfg.
func NewFxLogger(cfg *Config) fxevent.Logger {
	l := &fxevent.SlogLogger{Logger: cfg.Logger(cfg.LogOutput())}
	l.UseLogLevel(slog.LevelDebug)
	return l
}

// Logger returns a logger writing to w at the configured level and in the
// configured format: text, json, or otel (JSON lines shaped as the
// OpenTelemetry log data model, for collectors that ingest it as is).
func (c *Config) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	switch c.Log.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts))
	case "otel":
		return OTelLogger(w, level)
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// OTelLogger returns a logger of JSON lines in the shape of the
// OpenTelemetry log data model: "timestamp" (RFC 3339, nanoseconds),
// "severity_text" and "severity_number" (DEBUG 5, INFO 9, WARN 13,
// ERROR 17), "body", and every other attribute under "attributes".
func OTelLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.TimeKey:
			return slog.String("timestamp", a.Value.Time().UTC().Format(time.RFC3339Nano))
		case slog.LevelKey:
			l := a.Value.Any().(slog.Level)
			return slog.Group("", slog.String("severity_text", l.String()), slog.Int("severity_number", severityNumber(l)))
		case slog.MessageKey:
			return slog.String("body", a.Value.String())
		}
		return a
	}})
	return slog.New(h).WithGroup("attributes")
}

// severityNumber maps a slog level to OpenTelemetry's SeverityNumber.
func severityNumber(l slog.Level) int {
	switch {
	case l < slog.LevelInfo:
		return 5
	case l < slog.LevelWarn:
		return 9
	case l < slog.LevelError:
		return 13
	}
	return 17
}
