package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dspgo/dspgo/adapter"
)

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the merged configuration",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := a.load(nil)
			if err != nil {
				return err
			}
			for _, s := range cfg.Explain() {
				fmt.Fprintf(a.stdout, "%s = %s\n", s.Key, s.Value)
			}
			return nil
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "explain",
		Short: "Print every key with its value and the layer that set it",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := a.load(nil)
			if err != nil {
				return err
			}
			fmt.Fprint(a.stdout, cfg.ExplainText())
			_, res, err := a.registry().Resolve(cfg)
			if err != nil {
				return unknownAdapter(err)
			}
			fmt.Fprintf(a.stdout, "\n%s\n", res)
			return nil
		},
	})
	return cmd
}

func (a *app) adaptersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "adapters",
		Short: "List the registered adapters with their descriptions and capabilities",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range a.registry().Factories() {
				lm := ""
				if f.LMProviders != nil {
					lm = "; LM: " + strings.Join(f.LMProviders, ", ") + " only"
				}
				caps := "reported once opened"
				if f.Capabilities != nil {
					c, err := f.Capabilities(cmd.Context())
					if err != nil {
						return fmt.Errorf("asking adapter %s for its capabilities: %w", f.Name, err)
					}
					caps = capabilities(c)
				}
				fmt.Fprintf(a.stdout, "%-8s %s\n         capabilities: %s%s\n", f.Name, f.Description, caps, lm)
			}
			return nil
		},
	}
}

func capabilities(c adapter.Capabilities) string {
	var parts []string
	for _, f := range []struct {
		on   bool
		name string
	}{{c.Sessions, "sessions"}, {c.Broadcast, "broadcast"}, {c.Restarts, "restarts"}, {c.FaultInjection, "fault injection"},
		{c.Streaming, "streaming"}, {c.Tools, "tools"}} {
		if f.on {
			parts = append(parts, f.name)
		}
	}
	if c.MaxFrameBytes > 0 {
		parts = append(parts, fmt.Sprintf("frames up to %d MiB", c.MaxFrameBytes>>20))
	}
	return strings.Join(parts, ", ")
}
