package program

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/dspgo/dspgo/command"
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
//	str, Any: "<field> <hex digits 0-7> <hex digits 8-15>"
//	int:      n mod 1000
//	float:    (n mod 10000) / 10000
//	bool:     n is odd
//	Literal:  Values[n mod len(Values)] (a string, an int64, a float64, a
//	          bool or nil)
//	list[T], tuple[T, ...]: digest[4] mod 3 + 1 elements (one when T
//	          holds a model), element i from child(i)
//	tuple[T0, T1, …]: element i of type Ti from child(i)
//	dict[K, V]: as many entries as a list (at most the number of a
//	          Literal K's values), value i from child(i), key i "key_<i>"
//	          for str, the integer i for int (JSON "<i>"), Values[i] for a Literal
//	Optional[T]: null when n mod 4 is 0, else T's value from child(0)
//	Union[M0, M1, …]: the value of member M[n mod count] from child(0)
//	datetime.date: 2000-01-01 plus n mod 36525 days
//	datetime.datetime: 2000-01-01T00:00:00Z plus n mod 3155760000
//	          seconds
//	a model:  an object of its fields, field i dummyValue(its type,
//	          child(i))
//
// where child(i) = SHA-256(digest ‖ the byte i). Values are JSON-like (a
// dict's keys are strings), as Compiled.Outputs takes them.
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
		return dummyList(*t.Elem, d, field)
	case Tuple:
		if t.Variadic {
			return dummyList(*t.Elem, d, field)
		}
		tuple := make([]any, len(t.Members))
		for i, m := range t.Members {
			tuple[i] = dummyValue(m, child(d, i), field)
		}
		return tuple
	case Dict:
		count := dummyCount(*t.Elem, d)
		key := func(i int) string { return "key_" + strconv.Itoa(i) }
		switch {
		case t.Key == nil || t.Key.Kind == Str:
		case t.Key.Kind == Int:
			key = strconv.Itoa
		case t.Key.Kind == Literal:
			count = min(count, len(t.Key.Values))
			key = func(i int) string { return t.Key.Values[i].(string) } // a key's Literal is of strings
		}
		dict := make(map[string]any, count)
		for i := range count {
			dict[key(i)] = dummyValue(*t.Elem, child(d, i), field)
		}
		return dict
	case Optional:
		if n%4 == 0 {
			return nil
		}
		return dummyValue(*t.Elem, child(d, 0), field)
	case Union:
		return dummyValue(t.Members[int(n%uint32(len(t.Members)))], child(d, 0), field)
	case Date:
		return dummyDate(n)
	case DateTime:
		return dummyDateTime(n)
	case Object:
		object := make(map[string]any, len(t.Model.Fields))
		for i, f := range t.Model.Fields {
			object[f.Name] = dummyValue(f.Type, child(d, i), field)
		}
		return object
	}
	h := hex.EncodeToString(d[:8])
	return field + " " + h[:8] + " " + h[8:16]
}

// dummyCount is how many elements a dummy list or dict of elem has:
// digest[4] mod 3 + 1, or one when elem holds a model (whose values may
// be large).
func dummyCount(elem Type, d [sha256.Size]byte) int {
	if elem.HoldsModel() {
		return 1
	}
	return int(d[4]%3) + 1
}

func dummyList(elem Type, d [sha256.Size]byte, field string) []any {
	list := make([]any, dummyCount(elem, d))
	for i := range list {
		list[i] = dummyValue(elem, child(d, i), field)
	}
	return list
}

func child(d [sha256.Size]byte, i int) [sha256.Size]byte {
	return sha256.Sum256(append(d[:], byte(i)))
}

// DummyChunks cuts finished outputs into the dummy language model's
// chunks, fields in output order: a str value before every space that
// follows a non-space character (an empty string is one empty delta), any
// other value one delta of its canonical JSON (docs/protocol.md, "Dummy LM
// chunks").
func (c *Compiled) DummyChunks(outputs map[string]any) ([]command.Delta, error) {
	var out []command.Delta
	for _, f := range c.fields {
		text, err := ValueText(outputs[f.Name])
		if err != nil {
			return nil, invalid("output %s: %v", f.Name, err)
		}
		if _, isStr := outputs[f.Name].(string); !isStr {
			out = append(out, command.Delta{Field: f.Name, Delta: text})
			continue
		}
		for _, d := range TextDeltas(text) {
			out = append(out, command.Delta{Field: f.Name, Delta: d})
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
