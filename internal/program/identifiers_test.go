package program_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// verdictOf is NameProblem's answer as testdata/identifiers.txt writes
// Python's: ok, ident, word or nfkc.
func verdictOf(name string) string {
	switch p := program.NameProblem(name); {
	case p == "":
		return "ok"
	case strings.Contains(p, "not a valid identifier"):
		return "ident"
	case strings.Contains(p, "ChatAdapter"):
		return "word"
	case strings.Contains(p, "NFKC"):
		return "nfkc"
	default:
		return "unknown: " + p
	}
}

// TestNameRuleAllCodePoints checks NameProblem against what Python 3.11
// itself says (str.isidentifier, \w, unicodedata.is_normalized) of every
// code point c as a name "c" and as "ac" (testdata/identifiers.txt, from
// testdata/gen_identifiers.py).
func TestNameRuleAllCodePoints(t *testing.T) {
	f, err := os.Open("testdata/identifiers.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	next, bad := rune(0), 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		var lo, hi rune
		var alone, after string
		if _, err := fmt.Sscanf(line, "%x %x %s %s", &lo, &hi, &alone, &after); err != nil || lo != next {
			t.Fatalf("line %q: %v (expected a range from %X)", line, err, next)
		}
		for r := lo; r <= hi; r++ {
			s := string(r)
			if 0xD800 <= r && r <= 0xDFFF {
				s = string([]byte{0xED, byte(0xA0 | (r>>6)&0x1F), byte(0x80 | r&0x3F)}) // its (invalid) UTF-8
			}
			if got := verdictOf(s); got != alone && bad < 20 {
				bad++
				t.Errorf("U+%04X alone: got %s, Python says %s", r, got, alone)
			}
			if got := verdictOf("a" + s); got != after && bad < 20 {
				bad++
				t.Errorf("U+%04X after a: got %s, Python says %s", r, got, after)
			}
		}
		next = hi + 1
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if next != 0x110000 {
		t.Fatalf("the vectors end at %X", next)
	}
}

// TestNameRuleNames checks names of several characters, Hangul jamo that
// compose among them, and the errors that refuse names.
func TestNameRuleNames(t *testing.T) {
	for _, c := range []struct{ name, verdict string }{
		{"réponse", "ok"}, {"antwort_ü", "ok"}, {"答え", "ok"}, {"Ответ_2", "ok"}, {"_", "ok"},
		{"ﬁeld", "nfkc"}, {"ａｂ", "nfkc"}, {"ℌx", "nfkc"},
		{"e\u0301", "word"}, {"x·y", "word"}, {"x·ﬁ", "word"},
		{"\u1100\u1161", "nfkc"}, {"\uAC00\u11A8", "nfkc"}, {"\uAC01\u11A8", "ok"}, {"\u1161\u1100", "ok"}, {"\u1100x\u1161", "ok"},
		{"2x", "ident"}, {"a-b", "ident"}, {"", "ident"}, {"a b", "ident"}, {"x\xff", "ident"}, {"·ﬁ", "ident"},
	} {
		if got := verdictOf(c.name); got != c.verdict {
			t.Errorf("%q (%s): got %s, want %s", c.name, strconv.QuoteToASCII(c.name), got, c.verdict)
		}
	}
}

// TestNameVectors checks the shared vectors of names
// (protocol/testdata/names.json), which the Python worker's tests check
// too: NameProblem's words, and a spec's error for a field so named.
func TestNameVectors(t *testing.T) {
	raw, err := os.ReadFile("../../protocol/testdata/names.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Names []struct{ Name, Problem string }
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	for _, v := range file.Names {
		if got := program.NameProblem(v.Name); got != v.Problem {
			t.Errorf("%q: got %q, want %q", v.Name, got, v.Problem)
		}
		sig := command.Signature{Inputs: []command.Field{{Name: "q", Type: "str"}}, Outputs: []command.Field{{Name: v.Name, Type: "str"}}}
		_, err := program.Compile(command.Spec{Signature: sig})
		if v.Problem == "" {
			if err != nil {
				t.Errorf("%q: %v", v.Name, err)
			}
		} else if want := fmt.Sprintf("output field name %q %s", v.Name, v.Problem); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", v.Name, err, want)
		}
	}
}
