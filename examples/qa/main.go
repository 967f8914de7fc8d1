// Command qa runs a question-answering program on the backend that
// configuration selects (dspgo.yaml, DSPGO_* variables, or the default: a
// pool of Python workers with the dummy LM), printing why that backend was
// chosen and the typed outputs.
//
//	go run ./examples/qa "What is Go?"
//	DSPGO_ADAPTER=mock go run ./examples/qa "What is Go?"
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/registry"
)

func main() {
	if err := run(context.Background(), strings.Join(os.Args[1:], " ")); err != nil {
		fmt.Fprintln(os.Stderr, "qa:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, question string) error {
	if question == "" {
		question = "What is Go?"
	}
	cfg, err := config.Load(config.LoadOptions{})
	if err != nil {
		return err
	}
	reg, err := registry.New(registry.Builtin()...)
	if err != nil {
		return err
	}
	backend, why, err := reg.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer backend.Close(ctx)
	fmt.Println(why) // e.g. adapter "pool" set by default

	client := dspgo.NewClient(backend) // Open applied the configured LM (lm.*)
	prog, err := client.CreateProgram(ctx, dspgo.ProgramSpec{
		Signature:    dspgo.MustParseSignature("question -> answer, confidence: float"),
		Instructions: "Answer in one sentence.",
		Kind:         dspgo.KindChainOfThought,
	})
	if err != nil {
		return err
	}
	out, err := client.Execute(ctx, prog.ID, map[string]any{"question": question})
	if err != nil {
		return err
	}
	fmt.Printf("reasoning:  %s\nanswer:     %s\nconfidence: %.2f\n", out["reasoning"], out["answer"], out["confidence"].(float64))
	return nil
}
