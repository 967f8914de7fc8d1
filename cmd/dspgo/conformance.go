package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/conformance"
	"github.com/dspgo/dspgo/internal/secret"
)

func (a *app) conformanceCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "conformance",
		Short: "Run the conformance suite against the configured adapter, or every registered one",
		Long: `Run conformance.Cases() against an adapter: each case prints PASS, FAIL (with
why, and the logs of its adapter) or SKIP (with the missing capability) as
it ends; on a terminal, a status line shows the case running. A last line
counts them: "N passed, M failed" (and ", K skipped"). Exit status 1 when
a case failed, or when the adapter cannot be opened: then one line says
why and what to do. The logs of passing cases are dropped: cases crash
workers on purpose. The suite checks the dummy LM's outputs, so it runs on
the dummy whatever lm.provider says; with --adapter remote it configures
the hosts' LM to it.`,
		Example: "  dspgo conformance --adapter mock\n  dspgo conformance --all",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load(nil)
			if err != nil {
				return err
			}
			names := []string{cfg.Adapter}
			if all {
				names = a.registry().Names()
			}
			var t tally
			for _, name := range names {
				logs := &caseLogs{}
				cfg, err := a.suiteConfig(name, all, logs)
				if err != nil {
					return err
				}
				if _, _, err := a.registry().Resolve(cfg); err != nil {
					return unknownAdapter(err)
				}
				if err := a.runSuite(cmd.Context(), name, cfg, all, logs, &t); err != nil {
					return err
				}
			}
			line := fmt.Sprintf("%d passed, %d failed", t.passed, t.failed)
			if t.skipped > 0 {
				line += fmt.Sprintf(", %d skipped", t.skipped)
			}
			fmt.Fprintln(a.stdout, line)
			if t.failed > 0 {
				return errFailed
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "run against every registered adapter")
	return cmd
}

// tally counts the cases of a run.
type tally struct{ passed, failed, skipped int }

// runSuite runs every case against the adapter name, printing each as
// it ends. An adapter that cannot be opened is one line: with --all, a
// SKIP (remote: no worker host is an ordinary state of a machine) or a
// FAIL for every case; alone, the error returned, which says what to do.
func (a *app) runSuite(ctx context.Context, name string, cfg *config.Config, all bool, logs *caseLogs, t *tally) error {
	cases := conformance.Cases()
	if why := a.unopenable(ctx, cfg); why != "" {
		switch {
		case !all:
			return errors.New(why)
		case name == remote.Name:
			fmt.Fprintf(a.stdout, "== %s\nSKIP  %-28s %s\n", name, "(every case)", why)
			t.skipped += len(cases)
		default:
			fmt.Fprintf(a.stdout, "== %s\nFAIL  %-28s %s\n", name, "(every case)", why)
			t.failed += len(cases)
		}
		return nil
	}
	fmt.Fprintf(a.stdout, "== %s\n", name)
	faults := &conformance.Faults{Crash: crash, Recover: recoverMock}
	if name == remote.Name {
		// A caller cannot stop a host's worker (shutdown is the
		// adapter's own): crash_recovery is skipped.
		faults = nil
	}
	h := conformance.Harness{Name: name, Faults: faults,
		New: func(ctx context.Context) (adapter.Adapter, error) {
			// Open applies the dummy LM (suiteConfig sets it), also to
			// remote hosts, which outlive the adapter: each case starts
			// from it. Its warnings were said when unopenable opened it.
			ad, _, err := a.registry().Open(ctx, cfg)
			return ad, err
		}}
	status := newStatus(a.stdout, isTerminal(a.stdout, a.stdoutIsTerminal))
	for i, c := range cases {
		logs.reset()
		status.start(fmt.Sprintf("%-28s %d/%d", c.Name, i+1, len(cases)))
		r := conformance.RunCase(ctx, h, c)
		status.stop()
		switch r.Outcome {
		case conformance.Passed:
			t.passed++
			fmt.Fprintf(a.stdout, "PASS  %-28s %v\n", r.Case, r.Duration.Round(time.Millisecond))
		case conformance.Skipped:
			t.skipped++
			fmt.Fprintf(a.stdout, "SKIP  %-28s %s\n", r.Case, r.Reason)
		default:
			t.failed++
			fmt.Fprintf(a.stdout, "FAIL  %-28s %s\n", r.Case, oneLine(fmt.Errorf("%s", r.Reason)))
			for _, line := range logs.lines() {
				fmt.Fprintf(a.stdout, "      log: %s\n", line)
			}
		}
	}
	return nil
}

// suiteConfig loads the configuration of the suite's run on name: the
// dummy LM, whose outputs the suite checks, and with --all the adapter
// name; the logs of what it opens go to logs. Without --all, the adapter
// keeps the source that chose it: a flag, a variable or a file.
func (a *app) suiteConfig(name string, all bool, logs io.Writer) (*config.Config, error) {
	set := map[string]any{"lm.provider": dspgo.ProviderDummy}
	if all {
		set["adapter"] = name
	}
	return a.loadWith(set, logs)
}

// unopenable opens the adapter of cfg once and pings it. It returns why
// that failed and what to do, in one line, or "" when the adapter
// answered: without a backend, every case would fail the same way.
func (a *app) unopenable(ctx context.Context, cfg *config.Config) string {
	timeout := cfg.Port.StartTimeout + 5*time.Second
	if cfg.Adapter == remote.Name {
		timeout = cfg.Remote.ConnectTimeout + 5*time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ad, _, err := a.open(ctx, cfg)
	if err == nil {
		defer ad.Close(context.WithoutCancel(ctx))
		_, err = ad.Call(ctx, adapter.Request{Command: command.Ping})
	}
	switch {
	case err == nil:
		return ""
	case cfg.Adapter == remote.Name:
		why := oneLine(err)
		if !strings.Contains(why, startAHost) { // open says it of an unreachable server
			why += "; " + startAHost
		}
		// The URL's credentials (a password, a token) are not shown.
		return fmt.Sprintf("no worker host reachable at %s: %s", secret.URLs(cfg.Remote.URL), why)
	}
	fix := "; dspgo doctor checks this machine"
	if strings.Contains(err.Error(), "--adapter mock") {
		fix = "" // the error says what to do
	}
	return fmt.Sprintf("cannot open adapter %q: %s%s", cfg.Adapter, oneLine(err), fix)
}

// caseLogs keeps the logs of the case running, for its FAIL line: cases
// crash workers on purpose, and a passing case's warnings are noise.
// Safe for concurrent use.
type caseLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *caseLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *caseLogs) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
}

func (l *caseLogs) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	text := strings.TrimSpace(l.buf.String())
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}

// status shows, on a terminal, the case running and for how long, on a
// line that the case's result replaces.
type status struct {
	w          io.Writer
	on         bool
	text       string
	t0         time.Time
	quit, done chan struct{}
}

func newStatus(w io.Writer, on bool) *status { return &status{w: w, on: on} }

// start shows text until stop, redrawn with the time it has run.
func (s *status) start(text string) {
	if !s.on {
		return
	}
	s.text, s.t0 = text, time.Now()
	s.quit, s.done = make(chan struct{}), make(chan struct{})
	s.draw()
	go func() {
		defer close(s.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-tick.C:
				s.draw()
			}
		}
	}()
}

func (s *status) draw() {
	fmt.Fprintf(s.w, "\r\033[KRUN   %s  %.1fs", s.text, time.Since(s.t0).Seconds())
}

// stop ends the status line and clears it for the result's line.
func (s *status) stop() {
	if !s.on {
		return
	}
	close(s.quit)
	<-s.done
	fmt.Fprint(s.w, "\r\033[K")
}

// crash kills the worker(s) of the built-in adapters, as a crash would.
func crash(_ context.Context, ad adapter.Adapter) error {
	switch x := ad.(type) {
	case *mock.Adapter:
		x.Crash()
	case *port.Adapter:
		x.Kill()
	case *pool.Pool:
		for _, w := range x.Workers() {
			w.Kill()
		}
	default:
		return fmt.Errorf("no way to crash a %T", ad)
	}
	return nil
}

// recoverMock restarts a crashed mock; the others restart by themselves.
func recoverMock(_ context.Context, ad adapter.Adapter) error {
	if m, ok := ad.(*mock.Adapter); ok {
		m.Restart()
	}
	return nil
}
