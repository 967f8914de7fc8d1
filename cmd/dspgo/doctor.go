package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/config"
	pyworker "github.com/dspgo/dspgo/python"
	"github.com/dspgo/dspgo/registry"
)

// Statuses of a doctor check: a warning is shown but does not fail the
// command.
const (
	statusOK   = "ok"
	statusWarn = "warn"
	statusFail = "FAIL"
)

// check is one doctor check's outcome.
type check struct {
	name, status, detail, fix string
}

// Bounds of doctor's probes.
const (
	// dspyProbeTimeout bounds `python -c "import dspy"`: importing dspy
	// loads litellm, which takes seconds on a cold cache.
	dspyProbeTimeout = 60 * time.Second
	// lmVerifyTimeout bounds the LM's answer to the verify request, or
	// lm.timeout when longer.
	lmVerifyTimeout = 30 * time.Second
	// backendPingTimeout bounds opening an adapter that runs no Python
	// worker here and its answer to a ping.
	backendPingTimeout = 30 * time.Second
)

func (a *app) doctorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check Python, the worker, dspy and the language model, with a fix for each failure",
		Long: `Check the machine for the configured backend, one line per check:
python (the interpreter), worker (one worker starts and answers), dspy (its
version in the worker's interpreter, against the tested version pinned in
python/requirements-dspy.lock; optional) and lm (the configured backend is
opened and the configured LM answers one small request; the dummy needs
nothing). An adapter that runs no Python worker here (mock, memory, remote:
its worker hosts have their own) needs no python, worker or dspy check: a
backend check opens it and pings it instead. Each line starts with ok, warn
or FAIL; a failure says how to fix it. Exit status 1 when a check failed (warnings do not fail); 2 when the
configuration does not load or names an adapter that is not registered.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := a.load(nil)
			if err != nil {
				return err
			}
			// An adapter no registry has is bad usage, as for every other
			// command, whatever the checks below would say.
			_, res, err := a.registry().Resolve(cfg)
			if err != nil {
				return unknownAdapter(err)
			}
			var checks []check
			if res.Name == port.Name || res.Name == pool.Name {
				python, c := checkPython(ctx, cfg.Python.Interpreter)
				checks = append(checks, c)
				if c.status == statusOK {
					checks = append(checks, a.checkWorker(ctx, cfg, python))
					checks = append(checks, checkDSPy(ctx, cfg, python, dspyProbeTimeout))
				}
			} else {
				checks = append(checks, check{name: "python", status: statusOK,
					detail: fmt.Sprintf("not needed: adapter %q runs no Python worker here", res.Name)})
				checks = append(checks, a.checkBackend(ctx, cfg, res.Name))
			}
			checks = append(checks, a.checkLM(ctx, cfg))
			failed := 0
			for _, c := range checks {
				if c.status == statusFail {
					failed++
				}
				fmt.Fprintf(a.stdout, "%-4s  %-7s %s\n", c.status, c.name, c.detail)
				if c.status != statusOK && c.fix != "" {
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

// checkWorker starts one worker, with no LM, and stops it.
func (a *app) checkWorker(ctx context.Context, cfg *config.Config, python string) check {
	opts := registry.PortOptions(cfg)
	opts.Python = python
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := port.New(ctx, opts)
	if err != nil {
		return check{name: "worker", status: statusFail, detail: oneLine(err),
			fix: "check python.worker_dir and python.handlers (the error ends with the worker's stderr when it wrote any)"}
	}
	defer w.Close(context.Background())
	info := w.Worker()
	return check{name: "worker", status: statusOK, detail: fmt.Sprintf("started and answered its init ping (pid %d, Python %s)", info.PID, info.PythonVersion)}
}

// openBackend opens the backend cfg configures, and returns the func that
// closes it within cfg's stop_timeout.
func (a *app) openBackend(ctx context.Context, cfg *config.Config) (adapter.Adapter, registry.Resolution, func(), error) {
	backend, res, err := a.registry().Open(ctx, cfg)
	if err != nil {
		return nil, res, nil, err
	}
	return backend, res, func() {
		c, cancel := context.WithTimeout(context.Background(), cfg.StopTimeout)
		defer cancel()
		_ = backend.Close(c)
	}, nil
}

// checkBackend opens the configured backend, an adapter that runs no
// Python worker here, and pings it: for remote, a worker host answers.
func (a *app) checkBackend(ctx context.Context, cfg *config.Config, name string) check {
	ctx, cancel := context.WithTimeout(ctx, backendPingTimeout)
	defer cancel()
	fail := func(err error) check {
		fix := "check the adapter's keys (dspgo config explain)"
		if name == remote.Name {
			fix = "start a worker host (dspgo workers), and check remote.url and its credentials (dspgo config explain)"
		}
		return check{name: "backend", status: statusFail, detail: oneLine(err), fix: fix}
	}
	backend, _, closeBackend, err := a.openBackend(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer closeBackend()
	resp, err := backend.Call(ctx, adapter.Request{Command: command.Ping})
	if err != nil {
		return fail(err)
	}
	detail := fmt.Sprintf("adapter %q opened and answered a ping", name)
	if resp.Worker != "" {
		detail += fmt.Sprintf(" (worker %s)", resp.Worker)
	}
	return check{name: "backend", status: statusOK, detail: detail}
}

// checkLM opens the configured backend (a pool starts lazily, so one
// worker serves the check), which applies lm.*, and has one worker verify
// the LM with a small request. The dummy needs nothing.
func (a *app) checkLM(ctx context.Context, cfg *config.Config) check {
	lm := registry.LMConfig(cfg)
	if lm.Provider == dspgo.ProviderDummy {
		return check{name: "lm", status: statusOK, detail: fmt.Sprintf("dummy provider (lm.provider set by %s): deterministic and offline; nothing to reach; set lm.provider to use a real model", cfg.Source("lm.provider"))}
	}
	fail := func(err error) check {
		c := check{name: "lm", status: statusFail, detail: oneLine(err),
			fix: "check lm.base_url and lm.model, and that the key's variable (lm.api_key_env) is set and listed in python.pass_env"}
		if errors.Is(err, registry.ErrLMNotSupported) {
			c.fix = "set adapter to one that runs the LM (dspgo config explain shows where each key is set)"
		}
		return c
	}
	lazy, err := a.load(map[string]any{"pool.lazy": true})
	if err != nil {
		return fail(err)
	}
	openCtx, cancel := context.WithTimeout(ctx, lazy.Port.StartTimeout+5*time.Second)
	defer cancel()
	backend, res, closeBackend, err := a.openBackend(openCtx, lazy)
	if err != nil {
		return fail(err)
	}
	defer closeBackend()
	verifyCtx, cancel := context.WithTimeout(ctx, max(cfg.LM.Timeout, lmVerifyTimeout)+lazy.Port.StartTimeout)
	defer cancel()
	lm.Verify = true
	// Sent to one worker, not broadcast: every worker runs this
	// configuration already (Open applied it), and one request is enough.
	if err := dspgo.NewClient(oneWorker{backend}).ConfigureLM(verifyCtx, lm); err != nil {
		return fail(err)
	}
	return check{name: "lm", status: statusOK, detail: fmt.Sprintf("%s model %q answered through adapter %q (lm.provider set by %s)", lm.Provider, lm.Model, res.Name, cfg.Source("lm.provider"))}
}

// oneWorker hides the adapter's Broadcast, so that a command goes to one
// worker.
type oneWorker struct{ adapter.Adapter }

// checkDSPy reports the dspy version in the worker's interpreter against
// the tested one. dspy is optional (the native engine runs programs), so a
// missing or untested dspy is no failure unless lm.engine is dspy.
func checkDSPy(ctx context.Context, cfg *config.Config, python string, timeout time.Duration) check {
	tested := pyworker.TestedDSPyVersion()
	install := fmt.Sprintf("%s -m pip install dspy==%s (python/requirements-dspy.lock pins the whole tested environment)", python, tested)
	needed := cfg.LM.Engine == "dspy"
	c := check{name: "dspy", status: statusOK, fix: install}
	v, err := dspyVersion(ctx, python, workerEnv(cfg), timeout)
	switch {
	case errors.Is(err, errNoDSPy) && needed:
		c.status, c.detail = statusFail, fmt.Sprintf("not installed, but lm.engine is dspy (set by %s); tested with dspy %s", cfg.Source("lm.engine"), tested)
		c.fix += ", or set lm.engine to auto or native"
	case errors.Is(err, errNoDSPy):
		c.detail = fmt.Sprintf("not installed: optional; the native engine runs programs (tested with dspy %s)", tested)
	case err != nil:
		c.status, c.detail = statusWarn, oneLine(err)
		if needed {
			c.status = statusFail
		}
	case v == tested:
		c.detail = fmt.Sprintf("dspy %s, the tested version (the dspy engine is available)", v)
	default:
		c.status, c.detail = statusWarn, fmt.Sprintf("dspy %s is not the tested version %s: the dspy engine may behave differently", v, tested)
	}
	return c
}

// errNoDSPy: the interpreter has no dspy module.
var errNoDSPy = errors.New("dspy is not installed")

// dspyProbe prints dspy's version, or exits 3 when there is no dspy
// module (an import failing for another reason is a traceback, exit 1).
const dspyProbe = `import sys
try:
    import dspy
except ModuleNotFoundError as e:
    if e.name != "dspy":
        raise
    sys.exit(3)
print(dspy.__version__)`

// dspyVersion runs the interpreter with the worker's environment, bounded
// by timeout, and returns dspy's version; errNoDSPy when the module is
// missing; a coded error when the probe fails otherwise.
func dspyVersion(ctx context.Context, python string, env []string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", dspyProbe)
	cmd.Env = env
	cmd.WaitDelay = time.Second // the pipes close even if a grandchild holds them
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return "", adapter.Errorf(adapter.CodeOf(ctx.Err()), "import dspy in %s did not finish within %v", python, timeout)
	case errors.As(err, &exit) && exit.ExitCode() == 3:
		return "", errNoDSPy
	case err != nil:
		return "", adapter.Errorf(adapter.CodeFailedPrecondition, "import dspy in %s failed: %s", python, lastLine(stderr.String(), err))
	}
	v := strings.TrimSpace(string(out))
	if v == "" || strings.ContainsAny(v, " \n") {
		return "", adapter.Errorf(adapter.CodeInternal, "dspy in %s printed no version: %q", python, v)
	}
	return v, nil
}

// workerEnv is the environment a worker gets from the host: the variables
// python.pass_env names.
func workerEnv(cfg *config.Config) []string {
	host := cfg.Environ()
	env := []string{} // not nil: nil would give the process's whole environment
	for _, name := range cfg.Python.PassEnv {
		for _, kv := range host {
			if strings.HasPrefix(kv, name+"=") {
				env = append(env, kv)
			}
		}
	}
	return env
}

// lastLine is the last non-empty line of a process's stderr, or err.
func lastLine(stderr string, err error) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		return last
	}
	return err.Error()
}

// checkPython finds the interpreter and runs it (port.CheckPython): it
// must be Python 3.9 or newer. It returns the interpreter's path for the
// other checks.
func checkPython(ctx context.Context, name string) (string, check) {
	python, version, err := port.CheckPython(ctx, name)
	if err != nil {
		return "", check{name: "python", status: statusFail, detail: err.Error(),
			fix: "install Python 3.9 or newer (Debian: apt-get install python3), set python.interpreter, or use --adapter mock"}
	}
	return python, check{name: "python", status: statusOK, detail: python + " " + version}
}
