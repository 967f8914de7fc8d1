// Command react runs a ReAct agent whose tools are Go functions: the
// language model chooses a tool, the tool runs here in Go, its result goes
// back to the model, until it answers. Offline, the dummy LM's scripted
// mode plays the model's part; with an OpenAI-compatible endpoint
// (DSPGO_LM__PROVIDER=openai, DSPGO_LM__MODEL, DSPGO_LM__BASE_URL) the real
// model chooses. The answer streams as it is produced.
//
//	go run ./examples/react "What is 17 * 23, and what is the weather in Paris?"
//	DSPGO_ADAPTER=mock go run ./examples/react
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/registry"
)

func main() {
	if err := run(context.Background(), strings.Join(os.Args[1:], " "), config.LoadOptions{}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "react:", err)
		os.Exit(1)
	}
}

// multiply is a tool: the model passes {"a": …, "b": …}.
func multiply(_ context.Context, args json.RawMessage) (any, error) {
	var in struct{ A, B float64 }
	if err := json.Unmarshal(args, &in); err != nil {
		return nil, adapter.Errorf(adapter.CodeInvalidArgument, "multiply takes numbers a and b: %v", err)
	}
	return in.A * in.B, nil
}

// weather is a tool that can fail: its error becomes the model's
// observation, with its code.
func weather(ctx context.Context, args json.RawMessage) (any, error) {
	var in struct{ City string }
	if err := json.Unmarshal(args, &in); err != nil {
		return nil, adapter.Errorf(adapter.CodeInvalidArgument, "weather takes a city: %v", err)
	}
	forecasts := map[string]string{"paris": "light rain, 14°C", "tokyo": "clear, 21°C"}
	if f, ok := forecasts[strings.ToLower(in.City)]; ok {
		return map[string]string{"city": in.City, "forecast": f}, nil
	}
	return nil, adapter.Errorf(adapter.CodeNotFound, "no forecast for %q", in.City)
}

func run(ctx context.Context, question string, load config.LoadOptions, out io.Writer) error {
	if question == "" {
		question = "What is 17 * 23, and what is the weather in Paris?"
	}
	cfg, err := config.Load(load)
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
	fmt.Fprintln(out, why)

	client := dspgo.NewClient(backend,
		dspgo.WithTool("multiply", "Multiplies a by b.", map[string]any{
			"type": "object", "required": []string{"a", "b"},
			"properties": map[string]any{"a": map[string]string{"type": "number"}, "b": map[string]string{"type": "number"}},
		}, multiply),
		dspgo.WithTool("weather", "Today's forecast for a city.", map[string]any{
			"type": "object", "required": []string{"city"}, "properties": map[string]any{"city": map[string]string{"type": "string"}},
		}, weather),
	)
	lm := registry.LMConfig(cfg)
	if lm.Provider == "" || lm.Provider == dspgo.ProviderDummy {
		// Offline: the script is the model's choices.
		lm.Script = []dspgo.ScriptStep{
			{Tool: "multiply", Args: map[string]any{"a": 17, "b": 23}},
			{Tool: "weather", Args: map[string]any{"city": "Paris"}},
			{Tool: "weather", Args: map[string]any{"city": "Atlantis"}},
			{Finish: true},
		}
	}
	if err := client.ConfigureLM(ctx, lm); err != nil {
		return err
	}
	agent, err := client.CreateProgram(ctx, dspgo.ProgramSpec{
		Signature:    dspgo.MustParseSignature("question -> answer"),
		Instructions: "Use the tools to find the facts, then answer in one sentence.",
		Kind:         dspgo.KindReact,
		MaxIters:     6,
	})
	if err != nil {
		return err
	}
	fmt.Fprint(out, "answer: ")
	for part, err := range client.ExecuteStream(ctx, agent.ID, map[string]any{"question": question}) {
		if err != nil {
			return errors.Join(errors.New("the agent failed"), err)
		}
		if part.Outputs == nil {
			fmt.Fprint(out, part.Delta) // the answer as it is produced
			continue
		}
		fmt.Fprintln(out)
		for i, step := range part.Trajectory {
			fmt.Fprintf(out, "step %d: %s(%s) → %s\n", i+1, step.Tool, step.Args, step.Observation)
		}
	}
	return nil
}
