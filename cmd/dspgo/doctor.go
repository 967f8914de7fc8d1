package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/registry"
)

// check is one doctor check's outcome.
type check struct {
	name, detail, fix string
	ok                bool
}

func (a *app) doctorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check Python, the worker, dspy and the language model, with a fix for each failure",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := a.load(nil)
			if err != nil {
				return err
			}
			var checks []check
			python, err := port.ResolvePython(ctx, cfg.Python.Interpreter)
			if err != nil {
				checks = append(checks, check{name: "python", detail: err.Error(),
					fix: "install Python 3.9 or newer (Debian: apt-get install python3), set python.interpreter, or use --adapter mock"})
			} else {
				checks = append(checks, check{name: "python", ok: true, detail: python + " " + pythonOutput(ctx, python, "import sys; print(sys.version.split()[0])")})
				checks = append(checks, a.checkWorker(ctx, cfg, python)...)
				if v := pythonOutput(ctx, python, "import dspy; print(dspy.__version__)"); v != "" {
					checks = append(checks, check{name: "dspy", ok: true, detail: "dspy " + v + " (the dspy engine is available)"})
				} else {
					checks = append(checks, check{name: "dspy", ok: true, detail: "not installed: optional; the native engine runs programs"})
				}
			}
			failed := 0
			for _, c := range checks {
				status := "ok  "
				if !c.ok {
					status, failed = "FAIL", failed+1
				}
				fmt.Fprintf(a.stdout, "%s  %-7s %s\n", status, c.name, c.detail)
				if !c.ok && c.fix != "" {
					fmt.Fprintf(a.stdout, "      fix:    %s\n", c.fix)
				}
			}
			if failed > 0 {
				return errFailed
			}
			return nil
		},
	}
}

// checkWorker starts one worker and, when a real LM is configured, checks
// that it is reachable.
func (a *app) checkWorker(ctx context.Context, cfg *config.Config, python string) []check {
	opts := registry.PortOptions(cfg)
	opts.Python = python
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := port.New(ctx, opts)
	if err != nil {
		return []check{{name: "worker", detail: oneLine(err),
			fix: "the worker's stderr is above; check python.worker_dir and python.handlers, or run: dspgo doctor --log-level debug"}}
	}
	defer w.Close(context.Background())
	info := w.Worker()
	checks := []check{{name: "worker", ok: true, detail: fmt.Sprintf("started and answered its init ping (pid %d, Python %s)", info.PID, info.PythonVersion)}}
	lm := registry.LMConfig(cfg)
	if lm.Provider == dspgo.ProviderDummy {
		return append(checks, check{name: "lm", ok: true, detail: "dummy provider: deterministic and offline; nothing to reach"})
	}
	lm.Verify = true
	if err := dspgo.NewClient(w).ConfigureLM(ctx, lm); err != nil {
		return append(checks, check{name: "lm", detail: oneLine(err),
			fix: "check lm.base_url and lm.model, and that the key's variable (lm.api_key_env) is set and listed in python.pass_env"})
	}
	return append(checks, check{name: "lm", ok: true, detail: fmt.Sprintf("%s model %q answered", lm.Provider, lm.Model)})
}

func pythonOutput(ctx context.Context, python, code string) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", code).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
