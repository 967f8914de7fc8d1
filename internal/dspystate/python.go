package dspystate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/dspgo/dspgo/internal/program"
)

// The Python and DSPy rules the saved state is written with, in Go.
// testdata/python_rules.json holds cases computed by Python and DSPy
// themselves (testdata/generate.py).

var (
	camelWords  = regexp.MustCompile(`(.)([A-Z][a-z]+)`)
	camelCaps   = regexp.MustCompile(`([a-z0-9])([A-Z])`)
	letterDigit = regexp.MustCompile(`([a-zA-Z])(\p{Nd})`) // Python's \d is Unicode's decimal digits
	digitLetter = regexp.MustCompile(`(\p{Nd})([a-zA-Z])`)
)

// InferPrefix is DSPy's infer_prefix (dspy.signatures.signature): the
// human-readable form of a field name that DSPy gives a field as its prefix
// (followed by ":"): "question" is "Question", "snake_case_text" "Snake
// Case Text", "camelCaseText" "Camel Case Text", "text2number" "Text 2
// Number", "HTMLParser" "HTML Parser", "réponse" "Réponse". name is a
// field's name (program.NameProblem): its words are capitalized as
// Python's str.capitalize does (see capitalize).
func InferPrefix(name string) string {
	s := camelWords.ReplaceAllString(name, "${1}_${2}")
	s = camelCaps.ReplaceAllString(s, "${1}_${2}")
	s = letterDigit.ReplaceAllString(s, "${1}_${2}")
	s = digitLetter.ReplaceAllString(s, "${1}_${2}")
	words := strings.Split(s, "_")
	for i, w := range words {
		if !isUpper(w) {
			words[i] = capitalize(w)
		}
	}
	return strings.Join(words, " ")
}

// isUpper is Python's str.isupper for a field name's characters: some
// upper-case letter, and no lower-case or title-case one.
func isUpper(s string) bool {
	return strings.ContainsFunc(s, unicode.IsUpper) &&
		!strings.ContainsFunc(s, func(r rune) bool { return unicode.IsLower(r) || unicode.IsTitle(r) })
}

// fullTitle are the title cases of more than one character (Unicode's
// SpecialCasing) of the letters field names may hold, which Python's
// str.capitalize gives a word's first letter.
var fullTitle = map[rune]string{
	0xDF: "Ss", 0x1F0: "J\u030C", 0x390: "\u0399\u0308\u0301", 0x3B0: "\u03A5\u0308\u0301", 0x1E96: "H\u0331",
	0x1E97: "T\u0308", 0x1E98: "W\u030A", 0x1E99: "Y\u030A", 0x1F50: "\u03A5\u0313", 0x1F52: "\u03A5\u0313\u0300",
	0x1F54: "\u03A5\u0313\u0301", 0x1F56: "\u03A5\u0313\u0342", 0x1FB2: "\u1FBA\u0345", 0x1FB4: "\u0386\u0345",
	0x1FB6: "\u0391\u0342", 0x1FB7: "\u1FBC\u0342", 0x1FC2: "\u1FCA\u0345", 0x1FC4: "\u0389\u0345",
	0x1FC6: "\u0397\u0342", 0x1FC7: "\u1FCC\u0342", 0x1FD2: "\u0399\u0308\u0300", 0x1FD6: "\u0399\u0342",
	0x1FD7: "\u0399\u0308\u0342", 0x1FE2: "\u03A5\u0308\u0300", 0x1FE4: "\u03A1\u0313", 0x1FE6: "\u03A5\u0342",
	0x1FE7: "\u03A5\u0308\u0342", 0x1FF2: "\u1FFA\u0345", 0x1FF4: "\u038F\u0345", 0x1FF6: "\u03A9\u0342",
	0x1FF7: "\u1FFC\u0342",
}

// capitalize is Python's str.capitalize of a word of a field name: its
// first letter in title case, the rest in lower case, by Unicode's full
// mappings (ß's title case is "Ss", İ's lower case "i\u0307") and with
// Greek's final sigma (a Σ after a cased letter and before none is ς).
func capitalize(w string) string {
	r := []rune(w)
	var b strings.Builder
	for i, c := range r {
		switch {
		case i == 0 && fullTitle[c] != "":
			b.WriteString(fullTitle[c])
		case i == 0:
			b.WriteRune(unicode.ToTitle(c))
		case c == 0x130:
			b.WriteString("i\u0307")
		case c == 'Σ' && finalSigma(r, i):
			b.WriteRune('ς')
		default:
			b.WriteRune(unicode.ToLower(c))
		}
	}
	return b.String()
}

// finalSigma reports whether the Σ at r[i] ends a word, as Unicode's
// Final_Sigma condition says: a cased letter before it, and none after
// it, case-ignorable characters between skipped.
func finalSigma(r []rune, i int) bool {
	cased := func(c rune) bool { return unicode.IsUpper(c) || unicode.IsLower(c) || unicode.IsTitle(c) }
	ignorable := func(c rune) bool { return unicode.In(c, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk) }
	j := i - 1
	for j >= 0 && ignorable(r[j]) {
		j--
	}
	if j < 0 || !cased(r[j]) {
		return false
	}
	k := i + 1
	for k < len(r) && ignorable(r[k]) {
		k++
	}
	return k == len(r) || !cased(r[k])
}

// prefixName returns the field name whose InferPrefix, with ":", is
// prefix, when it is the snake_case of the prefix's words ("Context
// List:" is "context_list").
func prefixName(prefix string) (string, bool) {
	words, ok := strings.CutSuffix(prefix, ":")
	if !ok {
		return "", false
	}
	name := strings.ToLower(strings.ReplaceAll(words, " ", "_"))
	if !isFieldName(name) || InferPrefix(name)+":" != prefix {
		return "", false
	}
	return name, true
}

// isFieldName reports whether s can be a field's name
// (program.NameProblem).
func isFieldName(s string) bool {
	return program.NameProblem(s) == ""
}

// isPySpace is Python's str.isspace for one character.
func isPySpace(r rune) bool { return unicode.IsSpace(r) || 0x1c <= r && r <= 0x1f }

// Cleandoc is Python 3.11's inspect.cleandoc, with which a DSPy signature
// reads its instructions: tabs expanded, the first line's leading white
// space and the other lines' common indentation removed, and the blank
// lines at the start and end dropped.
func Cleandoc(doc string) string {
	lines := strings.Split(expandTabs(doc), "\n")
	runes := make([][]rune, len(lines))
	margin := -1
	for i, line := range lines {
		runes[i] = []rune(line)
		if i == 0 {
			continue
		}
		content := len([]rune(strings.TrimLeftFunc(line, isPySpace)))
		if content > 0 {
			if indent := len(runes[i]) - content; margin < 0 || indent < margin {
				margin = indent
			}
		}
	}
	lines[0] = strings.TrimLeftFunc(lines[0], isPySpace)
	if margin >= 0 {
		for i := 1; i < len(lines); i++ {
			lines[i] = string(runes[i][min(margin, len(runes[i])):])
		}
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	return strings.Join(lines, "\n")
}

// expandTabs is Python's str.expandtabs(8).
func expandTabs(s string) string {
	if !strings.Contains(s, "\t") {
		return s
	}
	var b strings.Builder
	col := 0
	for _, r := range s {
		switch r {
		case '\t':
			n := 8 - col%8
			b.WriteString(strings.Repeat(" ", n))
			col += n
		case '\n', '\r':
			b.WriteRune(r)
			col = 0
		default:
			b.WriteRune(r)
			col++
		}
	}
	return b.String()
}

// PyStr is Python's repr of a str: single quotes unless the text holds a
// single quote and no double quote; backslash, the quote, \t, \n and \r
// escaped; other characters that are not printable as \xNN, \uNNNN or
// \UNNNNNNNN.
func PyStr(s string) string { return program.PyRepr(s) }

// PyReprJSON is Python's repr of the value json.loads reads from a JSON
// text: objects as dicts in their keys' order, arrays as lists, a number
// with a fraction or exponent as a float, any other as an int, true, false
// and null as True, False and None.
func PyReprJSON(raw []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var b strings.Builder
	if err := reprValue(dec, &b); err != nil {
		return "", err
	}
	return b.String(), nil
}

func reprValue(dec *json.Decoder, b *strings.Builder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		open, end := "[", "]"
		if t == '{' {
			open, end = "{", "}"
		}
		b.WriteString(open)
		for i := 0; dec.More(); i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			if t == '{' {
				key, err := dec.Token()
				if err != nil {
					return err
				}
				b.WriteString(PyStr(key.(string)) + ": ")
			}
			if err := reprValue(dec, b); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return err
		}
		b.WriteString(end)
	case string:
		b.WriteString(PyStr(t))
	case json.Number:
		s := t.String()
		if !strings.ContainsAny(s, ".eE") {
			n, ok := new(big.Int).SetString(s, 10)
			if !ok {
				return fmt.Errorf("number %s", s)
			}
			b.WriteString(n.String())
			break
		}
		f, err := strconv.ParseFloat(s, 64)
		switch {
		case math.IsInf(f, 0):
			b.WriteString(map[bool]string{true: "inf", false: "-inf"}[f > 0])
		case err != nil:
			return err
		default:
			b.WriteString(program.FloatRepr(f))
		}
	case bool:
		b.WriteString(map[bool]string{true: "True", false: "False"}[t])
	case nil:
		b.WriteString("None")
	}
	return nil
}
