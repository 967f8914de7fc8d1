package dspgo_test

import (
	"context"
	"fmt"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapters/mock"
)

// The whole flow on the in-process mock: no set-up, deterministic outputs.
func Example() {
	ctx := context.Background()
	backend := mock.New(mock.Options{})
	defer backend.Close(ctx)

	client := dspgo.NewClient(backend)
	sig := dspgo.MustParseSignature("question, context: list[str] -> answer, confidence: float")
	prog, err := client.CreateProgram(ctx, dspgo.ProgramSpec{ID: "qa", Signature: sig})
	if err != nil {
		panic(err)
	}
	out, err := client.Execute(ctx, prog.ID, map[string]any{"question": "What is Go?", "context": []string{"Go is a language."}})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%T %T\n", out["answer"], out["confidence"])
	// Output: string float64
}
