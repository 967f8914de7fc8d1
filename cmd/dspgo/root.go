package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/config"
	pyworker "github.com/dspgo/dspgo/python"
	"github.com/dspgo/dspgo/registry"
)

// app holds what every subcommand shares.
type app struct {
	env
	configFiles []string
	flags       *pflag.FlagSet // the running command's flags
}

func newRoot(e env) *cobra.Command {
	a := &app{env: e}
	root := &cobra.Command{
		Use:           "dspgo",
		Short:         "Run DSPy-style programs from Go on a mock, one Python worker, a pool, or worker hosts through NATS",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetVersionTemplate(versionTemplate)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetIn(e.stdin)
	pf := root.PersistentFlags()
	pf.StringSliceVar(&a.configFiles, "config", nil, "config file(s), YAML or TOML (default: ./dspgo.yaml when present)")
	config.BindFlags(pf)
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) {
		a.flags = cmd.Flags() // the set the command parsed: it knows which flags the user set
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usagef("see '"+c.CommandPath()+" --help'", "%v", err)
	})
	root.AddCommand(a.runCmd(), a.conformanceCmd(), a.configCmd(), a.adaptersCmd(), a.doctorCmd(), a.benchCmd(), a.workersCmd())
	return root
}

// load reads the configuration, with set overriding it.
func (a *app) load(set map[string]any) (*config.Config, error) { return a.loadWith(set, nil) }

// loadWith reads the configuration, with set overriding it; the logs of
// what is opened from it go to logs (nil: standard error).
func (a *app) loadWith(set map[string]any, logs io.Writer) (*config.Config, error) {
	opts := config.LoadOptions{Environ: a.environ, Flags: a.flags, Set: set, LogOutput: logs}
	if len(a.configFiles) > 0 {
		opts.Files = a.configFiles
	}
	cfg, err := config.Load(opts)
	if err != nil {
		// config explain loads the same configuration: it cannot help
		// until the configuration loads.
		fix := "fix the configuration file"
		if _, problems := errors.AsType[*config.Error](err); problems {
			fix = "fix the configuration (each problem names the layer that set it)"
		}
		return nil, usagef(fix, "%v", err)
	}
	return cfg, nil
}

func (a *app) registry() *registry.Registry {
	r, err := registry.New(registry.Builtin()...)
	if err != nil {
		panic(err) // the built-in factories are valid
	}
	return r
}

// unknownAdapter is the usage error of a configured adapter name that no
// factory has: the registry's message, which names the source of the
// name and lists the known ones.
func unknownAdapter(err error) error {
	var e *adapter.Error
	if errors.As(err, &e) && errors.Is(err, registry.ErrUnknownAdapter) {
		return usagef("", "%s", e.Message)
	}
	return usagef("", "%v", err)
}

// startAHost is what to do when no worker host is reachable.
const startAHost = "start a worker host with: dspgo workers --embedded-nats (or set remote.url)"

// open resolves and opens the configured adapter with its LM (see
// registry.Registry.Open), turning the common failures into errors that
// say what to do.
func (a *app) open(ctx context.Context, cfg *config.Config) (adapter.Adapter, registry.Resolution, error) {
	ad, res, err := a.registry().Open(ctx, cfg)
	if err == nil {
		for _, w := range res.Warnings {
			fmt.Fprintf(a.stderr, "dspgo: warning: %s\n", w)
		}
		return ad, res, nil
	}
	switch {
	case errors.Is(err, registry.ErrLMNotSupported):
		return nil, res, usagef("", "%v", err) // the message says which adapters run the LM
	case errors.Is(err, registry.ErrUnknownAdapter):
		return nil, res, unknownAdapter(err)
	case strings.Contains(err.Error(), "was not found on PATH"):
		return nil, res, fmt.Errorf("%v; --python names another interpreter, and --adapter mock needs none", err)
	case strings.Contains(err.Error(), "older than 3.9"):
		return nil, res, fmt.Errorf("%v; install Python 3.9 or newer (--python names it), or run without Python: --adapter mock", err)
	case cfg.Adapter == remote.Name && adapter.CodeOf(err) == adapter.CodeUnavailable:
		return nil, res, fmt.Errorf("%w; %s", err, startAHost)
	case strings.Contains(err.Error(), "EngineUnavailable"):
		return nil, res, fmt.Errorf("%v; install dspy into the workers' interpreter (%s -m pip install dspy==%s; --python names another), or set lm.engine to auto or native",
			err, cfg.Python.Interpreter, pyworker.TestedDSPyVersion())
	}
	return nil, res, err
}
