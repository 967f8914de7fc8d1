package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dspgo/dspgo/adapter"
)

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the merged configuration",
		Args:  subcommandArgs,
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

// subcommandArgs refuses arguments as cobra.NoArgs does, for a command
// with subcommands of its own: a misspelt one gets the suggestion cobra
// gives for the root's ("dspgo config explian": did you mean explain).
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, set only on the root's path
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return errors.New(msg)
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
