package program_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
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
		"input: str | (int | float) | None -> output: str", "a: tuple[int, ...], b: Tuple[int, Optional[float], list[str]] -> c: Any",
		"a: Union[int, Optional[Union[str, None]]] -> b: dict[Literal['x', 'y'], list[int | None]]", "a: Literal['x,y', 'z)'] -> b",
		"a: None -> b", "a: (((int))) -> b: list", "a: tuple[()] -> b", "a: Optional[int, str] -> b", "a: int || str -> b",
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
		c, err := program.Compile(command.Spec{Signature: sig})
		if err != nil {
			t.Fatalf("a parsed signature does not compile: %q: %v", s, err)
		}
		again, err := program.ParseSignature(c.Spec.Signature.String())
		if err != nil {
			t.Fatalf("the canonical form %q of %q does not parse: %v", c.Spec.Signature.String(), s, err)
		}
		c2, err := program.Compile(command.Spec{Signature: again})
		if err != nil || c2.Hash != c.Hash {
			t.Fatalf("the canonical form of %q changes the program: %v", s, err)
		}
	})
}

// FuzzInputs: any JSON object of inputs either converts to the declared
// types, canonicalises and runs the dummy LM (whose outputs convert), or
// fails with CodeInvalidArgument; never a panic. Each input is given to two
// programs: one of the scalar, list, dict and Literal types, one of Any,
// Optional, Union, tuples and dicts with int and Literal keys.
func FuzzInputs(f *testing.F) {
	for _, s := range []string{
		`{"q":"x","n":1,"f":1.5,"b":true,"l":["a"],"d":{"k":[1,2]},"lit":"a"}`,
		`{"q":null}`, `{"n":1e400}`, `{"n":-0}`, `{"f":NaN}`, `{"l":[[[[[[]]]]]]}`, `{"d":{"":[]}}`, `{"q":"\ud800"}`,
		`{"n":123456789012345678901234567890}`, `{"extra":1}`, `[]`,
		`{"a":{"k":[1,null,2.5]},"o":null,"u":"x","t":[1,"a"],"v":[1.5,2],"di":{"-1":[1],"+2":[]},"dl":{"a":1},"ou":[2]}`,
		`{"a":123456789012345678901234567890,"o":3.0,"u":3.0,"t":[1],"v":[],"di":{"1":[],"01":[]},"dl":{"c":1},"ou":"x"}`,
		`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"di":{"9223372036854775808":[]}}`,
	} {
		f.Add([]byte(s))
	}
	var programs []*program.Compiled
	for _, s := range []string{
		"q, n: int, f: float, b: bool, l: list[str], d: dict[str, list[int]], lit: Literal['a', 'b'] -> out: list[dict[str, float]]",
		"a: Any, o: Optional[int], u: Union[int, str], t: tuple[int, str], v: tuple[float, ...], di: dict[int, list[int]], " +
			"dl: dict[Literal['a', 'b'], int], ou: Optional[Union[list[int], str]] -> x: Any, y: Optional[Union[int, list[str]]], " +
			"z: tuple[int, Optional[float]], w: dict[int, Union[str, bool]], k: dict[Literal['a', 'b'], tuple[int, ...]]",
	} {
		sig, err := program.ParseSignature(s)
		if err != nil {
			f.Fatal(err)
		}
		c, err := program.Compile(command.Spec{Signature: sig})
		if err != nil {
			f.Fatal(err)
		}
		programs = append(programs, c)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var raw map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if dec.Decode(&raw) != nil {
			return
		}
		for _, c := range programs {
			in, err := c.Inputs(raw)
			if err != nil {
				if adapter.CodeOf(err) != adapter.CodeInvalidArgument {
					t.Fatalf("Inputs: %v is not CodeInvalidArgument", err)
				}
				continue
			}
			out, err := c.DummyOutputs(in)
			if err != nil {
				t.Fatalf("converted inputs do not run: %v", err)
			}
			if _, err := c.Outputs(out); err != nil {
				t.Fatalf("dummy outputs do not convert: %v", err)
			}
		}
	})
}
