package dspgo_test

import (
	"context"
	"fmt"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapters/mock"
)

// QA is a typed program's input: each exported field is an input field.
type QA struct {
	Question string   `dspy:"question,desc=The question to answer"`
	Context  []string `dspy:"context"`
}

// Answer is its output: each field is decoded from the output of its
// name.
type Answer struct {
	Reasoning  string  // a chain of thought's reasoning
	Answer     string  `dspy:"answer"`
	Confidence float64 `dspy:"confidence,desc=0 to 1"`
	Level      string  `dspy:"level,enum=low|mid|high"`
	Sources    []int   `dspy:"sources,desc=Indexes into the context"`
}

// A typed program on the in-process mock: the signature comes from the
// structs, and the outputs come back as an Answer. The mock's dummy
// language model makes the outputs deterministic.
func ExampleNewTyped() {
	ctx := context.Background()
	backend := mock.New(mock.Options{})
	defer backend.Close(ctx)
	client := dspgo.NewClient(backend)

	qa, err := dspgo.NewTyped[QA, Answer](ctx, client, dspgo.ProgramSpec{
		Kind:         dspgo.KindChainOfThought,
		Instructions: "Answer the question from the context.",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(qa.Program().Spec.Signature)

	out, err := qa.Execute(ctx, QA{Question: "What is Go?", Context: []string{"Go is a programming language."}})
	if err != nil {
		panic(err)
	}
	fmt.Println("reasoning: ", out.Reasoning)
	fmt.Println("answer:    ", out.Answer)
	fmt.Println("confidence:", out.Confidence)
	fmt.Println("level:     ", out.Level)
	fmt.Println("sources:   ", out.Sources)
	// Output:
	// question, context: list[str] -> answer, confidence: float, level: Literal['low', 'mid', 'high'], sources: list[int]
	// reasoning:  reasoning 29843e79 da12c77f
	// answer:     answer 580a8266 ed94cf1a
	// confidence: 0.1751
	// level:      high
	// sources:    [726 999]
}
