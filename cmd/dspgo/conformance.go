package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/pool"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/conformance"
	"github.com/dspgo/dspgo/internal/program"
)

func (a *app) conformanceCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "conformance",
		Short: "Run the conformance suite against the configured adapter, or every registered one",
		Long: `Run conformance.Cases() against an adapter: each case prints PASS, FAIL (with
why) or SKIP (with the missing capability), and a last line counts them:
"N passed, M failed" (and ", K skipped"). Exit status 1 when a case failed.
The suite checks the dummy LM's outputs, so it runs on the dummy whatever
lm.provider says; with --adapter remote it configures the hosts' LM to it.`,
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
			var passed, failed, skipped int
			for _, name := range names {
				if _, _, err := a.registry().Resolve(a.reload(name)); err != nil {
					return usagef("use --adapter with one of: "+strings.Join(a.registry().Names(), ", "), "%v", err)
				}
				cfg := a.reload(name)
				if all && name == remote.Name {
					if reason := remoteUnreachable(cmd.Context(), a, cfg); reason != "" {
						fmt.Fprintf(a.stdout, "== %s\nSKIP  (every case)                %s\n", name, reason)
						skipped += len(conformance.Cases())
						continue
					}
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
						// Open applies the dummy LM (reload sets it), also
						// to remote hosts, which outlive the adapter: each
						// case starts from it.
						ad, _, err := a.open(ctx, cfg)
						return ad, err
					}}
				for _, r := range conformance.RunAll(cmd.Context(), h, nil) {
					switch r.Outcome {
					case conformance.Passed:
						passed++
						fmt.Fprintf(a.stdout, "PASS  %-28s %v\n", r.Case, r.Duration.Round(time.Millisecond))
					case conformance.Skipped:
						skipped++
						fmt.Fprintf(a.stdout, "SKIP  %-28s %s\n", r.Case, r.Reason)
					default:
						failed++
						fmt.Fprintf(a.stdout, "FAIL  %-28s %s\n", r.Case, oneLine(fmt.Errorf("%s", r.Reason)))
					}
				}
			}
			line := fmt.Sprintf("%d passed, %d failed", passed, failed)
			if skipped > 0 {
				line += fmt.Sprintf(", %d skipped", skipped)
			}
			fmt.Fprintln(a.stdout, line)
			if failed > 0 {
				return errFailed
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "run against every registered adapter")
	return cmd
}

// reload loads the configuration with the adapter set to name and the
// dummy LM, whose outputs the suite checks; the configuration was already
// checked, so it cannot fail.
func (a *app) reload(name string) *config.Config {
	cfg, err := a.load(map[string]any{"adapter": name, "lm.provider": dspgo.ProviderDummy})
	if err != nil {
		panic(err)
	}
	return cfg
}

// remoteUnreachable says why the remote adapter cannot be tested: no
// NATS server or no worker host; "" when a host answers.
func remoteUnreachable(ctx context.Context, a *app, cfg *config.Config) string {
	ctx, cancel := context.WithTimeout(ctx, cfg.Remote.ConnectTimeout+5*time.Second)
	defer cancel()
	ad, _, err := a.open(ctx, cfg)
	if err == nil {
		defer ad.Close(ctx)
		_, err = ad.Call(ctx, adapter.Request{Command: program.CmdPing})
	}
	if err != nil {
		return fmt.Sprintf("no worker host reachable at %s (start one with: dspgo workers --embedded-nats): %v", cfg.Remote.URL, err)
	}
	return ""
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
