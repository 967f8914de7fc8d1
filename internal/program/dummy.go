package program

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// DummyOutputs runs the deterministic "dummy" language model: each output
// field's value is derived from SHA-256 of the canonical JSON of
// {"field": name, "inputs": inputs, "spec_hash": hash}, where inputs are
// the converted inputs (see Compiled.Inputs). The rule, which the Python
// worker implements too, is in docs/protocol.md ("The dummy language
// model"). chain_of_thought adds "reasoning" first.
func (c *Compiled) DummyOutputs(inputs map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(c.fields))
	for i, f := range c.fields {
		canon, err := Canonical(map[string]any{"field": f.Name, "inputs": inputs, "spec_hash": c.Hash})
		if err != nil {
			return nil, invalid("inputs: %v", err)
		}
		sum := sha256.Sum256(canon)
		out[f.Name] = dummyValue(c.types[i], sum, f.Name)
	}
	return out, nil
}

// dummyValue maps a digest to a value of type t:
//
//	n = the digest's first 4 bytes as a big-endian unsigned integer
//	str:      "<field> <hex digits 0-7> <hex digits 8-15>"
//	int:      n mod 1000
//	float:    (n mod 10000) / 10000
//	bool:     n is odd
//	Literal:  Values[n mod len(Values)]
//	list[T]:  digest[4] mod 3 + 1 elements, element i from child(i)
//	dict[str, T]: as many entries, keys "key_0", "key_1"…, values from child(i)
//
// where child(i) = SHA-256(digest ‖ the byte i).
func dummyValue(t Type, d [sha256.Size]byte, field string) any {
	n := uint32(d[0])<<24 | uint32(d[1])<<16 | uint32(d[2])<<8 | uint32(d[3]) // big-endian
	switch t.Kind {
	case Int:
		return int64(n % 1000)
	case Float:
		return float64(n%10000) / 10000
	case Bool:
		return n%2 == 1
	case Literal:
		return t.Values[int(n%uint32(len(t.Values)))]
	case List:
		count := int(d[4]%3) + 1
		list := make([]any, count)
		for i := range list {
			list[i] = dummyValue(*t.Elem, child(d, i), field)
		}
		return list
	case Dict:
		count := int(d[4]%3) + 1
		dict := make(map[string]any, count)
		for i := range count {
			dict["key_"+strconv.Itoa(i)] = dummyValue(*t.Elem, child(d, i), field)
		}
		return dict
	}
	h := hex.EncodeToString(d[:8])
	return field + " " + h[:8] + " " + h[8:16]
}

func child(d [sha256.Size]byte, i int) [sha256.Size]byte {
	return sha256.Sum256(append(d[:], byte(i)))
}

// StreamDelta is one chunk of a streamed execution: a piece of the text of
// one output field.
type StreamDelta struct {
	Field string `json:"field"`
	Delta string `json:"delta"`
}

// DummyChunks cuts finished outputs into the dummy language model's
// chunks, fields in output order: a str value before every space that
// follows a non-space character (an empty string is one empty delta), any
// other value one delta of its canonical JSON (docs/protocol.md, "Dummy LM
// chunks").
func (c *Compiled) DummyChunks(outputs map[string]any) ([]StreamDelta, error) {
	var out []StreamDelta
	for _, f := range c.fields {
		text, err := ValueText(outputs[f.Name])
		if err != nil {
			return nil, invalid("output %s: %v", f.Name, err)
		}
		if _, isStr := outputs[f.Name].(string); !isStr {
			out = append(out, StreamDelta{f.Name, text})
			continue
		}
		for _, d := range TextDeltas(text) {
			out = append(out, StreamDelta{f.Name, d})
		}
	}
	return out, nil
}

// ValueText is the text a stream gives of an output value: a string
// itself, any other value its canonical JSON.
func ValueText(v any) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	b, err := Canonical(v)
	return string(b), err
}

// TextDeltas cuts s before every space that follows a non-space
// character; an empty s is one empty delta.
func TextDeltas(s string) []string {
	if s == "" {
		return []string{""}
	}
	var out []string
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i] == ' ' && s[i-1] != ' ' {
			out = append(out, s[start:i])
			start = i
		}
	}
	return append(out, s[start:])
}
