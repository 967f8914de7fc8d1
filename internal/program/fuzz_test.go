package program_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/program"
)

// FuzzParseSignature: any text either parses to a signature whose
// canonical form parses to the same signature, or fails with
// CodeInvalidArgument; never a panic.
func FuzzParseSignature(f *testing.F) {
	for _, s := range []string{
		"question -> answer", "question, context: list[str] -> answer, confidence: float",
		"a: dict[str, list[Literal['x', 'y']]] -> b: bool", "->", "a -> b -> c", "a: list[", "a: Literal['a', 'a'] -> b",
		"é -> b", "a,,b -> c", "a: dict[int, str] -> b", "a: " + string(bytes.Repeat([]byte("list["), 20)) + "str" + string(bytes.Repeat([]byte("]"), 20)) + " -> b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := program.ParseSignature(s)
		if err != nil {
			if adapter.CodeOf(err) != adapter.CodeInvalidArgument {
				t.Fatalf("ParseSignature(%q): %v is not CodeInvalidArgument", s, err)
			}
			return
		}
		c, err := program.Compile(program.Spec{Signature: sig})
		if err != nil {
			t.Fatalf("a parsed signature does not compile: %q: %v", s, err)
		}
		again, err := program.ParseSignature(c.Spec.Signature.String())
		if err != nil {
			t.Fatalf("the canonical form %q of %q does not parse: %v", c.Spec.Signature.String(), s, err)
		}
		c2, err := program.Compile(program.Spec{Signature: again})
		if err != nil || c2.Hash != c.Hash {
			t.Fatalf("the canonical form of %q changes the program: %v", s, err)
		}
	})
}

// FuzzInputs: any JSON object of inputs either converts to the declared
// types, canonicalises and runs the dummy LM, or fails with
// CodeInvalidArgument; never a panic.
func FuzzInputs(f *testing.F) {
	for _, s := range []string{
		`{"q":"x","n":1,"f":1.5,"b":true,"l":["a"],"d":{"k":[1,2]},"lit":"a"}`,
		`{"q":null}`, `{"n":1e400}`, `{"n":-0}`, `{"f":NaN}`, `{"l":[[[[[[]]]]]]}`, `{"d":{"":[]}}`, `{"q":"\ud800"}`,
		`{"n":123456789012345678901234567890}`, `{"extra":1}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	sig, err := program.ParseSignature("q, n: int, f: float, b: bool, l: list[str], d: dict[str, list[int]], lit: Literal['a', 'b'] -> out: list[dict[str, float]]")
	if err != nil {
		f.Fatal(err)
	}
	c, err := program.Compile(program.Spec{Signature: sig})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var raw map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if dec.Decode(&raw) != nil {
			return
		}
		in, err := c.Inputs(raw)
		if err != nil {
			if adapter.CodeOf(err) != adapter.CodeInvalidArgument {
				t.Fatalf("Inputs: %v is not CodeInvalidArgument", err)
			}
			return
		}
		out, err := c.DummyOutputs(in)
		if err != nil {
			t.Fatalf("converted inputs do not run: %v", err)
		}
		if _, err := c.Outputs(out); err != nil {
			t.Fatalf("dummy outputs do not convert: %v", err)
		}
	})
}
