// Command local is a program that opens the configured backend through
// config and the registry with dspgo's built-in factories, and imports
// nothing else of dspgo: what it links is what such a program pays for
// (see TestLocalProgramLinksNoNATS).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/registry"
)

func main() {
	cfg, err := config.Load(config.LoadOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	r, err := registry.New(registry.Builtin()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	a, res, err := r.Open(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(res)
	if err := a.Close(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
