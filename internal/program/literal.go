package program

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The values of a Literal (Type.Values) are Go values of these types,
// as DSPy 3.4.1's string signatures take them (docs/protocol.md, "Program
// specs"): a quoted string (string), an integer from 0 (int64), a float
// (float64), True or False (bool) or None (nil).

// literalKind is the kind all of t's values have (Str, Int, Float, Bool,
// or noneKind for None), or Any when they are of several kinds.
func (t Type) literalKind() Kind {
	kind := Any
	for i, v := range t.Values {
		k := literalValueKind(v)
		if i > 0 && k != kind {
			return Any
		}
		kind = k
	}
	return kind
}

// literalValueKind is the kind of one value of a Literal.
func literalValueKind(v any) Kind {
	switch v.(type) {
	case string:
		return Str
	case int64:
		return Int
	case float64:
		return Float
	case bool:
		return Bool
	}
	return noneKind
}

// StrLiteral reports whether t is a Literal of strings only, the Literal
// a dict's key type may be.
func (t Type) StrLiteral() bool {
	return t.Kind == Literal && t.literalKind() == Str
}

// IntLiteral reports whether t is a Literal of integers only.
func (t Type) IntLiteral() bool {
	return t.Kind == Literal && t.literalKind() == Int
}

// hasLiteralKind reports whether one of t's values is of kind k.
func (t Type) hasLiteralKind(k Kind) bool {
	for _, v := range t.Values {
		if literalValueKind(v) == k {
			return true
		}
	}
	return false
}

// hasLiteral reports whether v (of a Literal value's Go type) is one of
// t's values, of the same kind: 1, 1.0 and True are three values.
func (t Type) hasLiteral(v any) bool {
	for _, w := range t.Values {
		if w == v {
			return true
		}
	}
	return false
}

// LiteralText is a Literal's value as the canonical form of its type
// writes it: a string quoted as Python's repr quotes it (in single quotes,
// or double ones when it holds a single quote and no double one), with a
// backslash, the quote, \t, \n, \r and the other control characters
// (U+0000–U+001F, U+007F–U+009F, as \xhh) escaped and any other character
// as it is; an integer in decimal; a float as Python's repr writes it
// (FloatRepr); True, False; None.
func LiteralText(v any) string {
	switch v := v.(type) {
	case string:
		return pyQuote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return FloatRepr(v)
	case bool:
		if v {
			return "True"
		}
		return "False"
	}
	return "None"
}

// pyQuote quotes s as LiteralText does: as repr does, but for the
// characters it escapes, which are only the C0 and C1 controls and DEL
// (repr's printable characters depend on each Python's Unicode data).
func pyQuote(s string) string {
	return pyQuoted(s, func(r rune) bool { return r >= 0x20 && (r < 0x7f || r > 0x9f) })
}

// literalErrorText is a Literal's value as errors show it: a string as
// %q writes it, any other value as LiteralText.
func literalErrorText(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return LiteralText(v)
}

// The numbers a Literal takes: integers in decimal (checked for leading
// zeros and int64 apart) and floats in decimal, with a point or an
// exponent; no sign, underscore, base prefix or imaginary j.
var (
	literalDigits = regexp.MustCompile(`^[0-9]+$`)
)

// isLiteralFloat reports whether text is a float as a Literal takes it:
// digits with a point (1.5, 1., .5) or an exponent (1e3, 1.5E-7), or both.
func isLiteralFloat(text string) bool {
	mantissa, exp, hasExp := strings.Cut(strings.ToLower(text), "e")
	if hasExp {
		if exp != "" && (exp[0] == '+' || exp[0] == '-') {
			exp = exp[1:]
		}
		if !literalDigits.MatchString(exp) {
			return false
		}
	}
	whole, frac, point := strings.Cut(mantissa, ".")
	if !point {
		return hasExp && literalDigits.MatchString(whole)
	}
	return (whole == "" || literalDigits.MatchString(whole)) && (frac == "" || literalDigits.MatchString(frac)) && whole+frac != ""
}

// literalValue parses one value of a Literal at p.i.
func (p *typeParser) literalValue() (any, error) {
	p.space()
	if p.done() {
		return nil, fmt.Errorf("expected a value of a Literal at position %d of %q", p.i, p.s)
	}
	c := p.s[p.i]
	switch {
	case c == '\'' || c == '"':
		return p.literalString()
	case '0' <= c && c <= '9' || c == '.':
		start := p.i
		for !p.done() && (isIdentByte(p.s[p.i]) || p.s[p.i] == '.' ||
			(p.s[p.i] == '+' || p.s[p.i] == '-') && (p.s[p.i-1] == 'e' || p.s[p.i-1] == 'E')) {
			p.i++
		}
		text := p.s[start:p.i]
		if literalDigits.MatchString(text) {
			n, err := strconv.ParseInt(text, 10, 64)
			if err != nil || len(text) > 1 && text[0] == '0' {
				return nil, fmt.Errorf("value %s of a Literal is not an integer within int64, written without leading zeros, in %q", text, p.s)
			}
			return n, nil
		}
		if !isLiteralFloat(text) {
			return nil, fmt.Errorf("value %s of a Literal is not a number written in decimal (without '_', a base prefix or 'j') in %q", text, p.s)
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("value %s of a Literal is not a finite float in %q", text, p.s)
		}
		return f, nil
	case isIdentByte(c):
		switch word := p.word(); word {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		}
	}
	return nil, fmt.Errorf("values of a Literal must be quoted strings, integers from 0, floats, True, False or None (DSPy's string signatures take no negative number) in %q", p.s)
}

// literalString parses a quoted string at p.i as Python's
// ast.literal_eval reads it: in single or double quotes (not triple ones,
// without a prefix), with the escapes \\, \', \", \a, \b, \f, \n, \r,
// \t, \v, \ooo (octal, to \377), \xhh, \uhhhh and \Uhhhhhhhh (not a
// surrogate); a character that is not an escape stands for itself, but
// for a line break.
func (p *typeParser) literalString() (string, error) {
	q := p.s[p.i]
	if strings.HasPrefix(p.s[p.i:], strings.Repeat(string(q), 3)) {
		return "", fmt.Errorf("a Literal's strings may not be triple-quoted, in %q", p.s)
	}
	var b strings.Builder
	for i := p.i + 1; i < len(p.s); {
		c := p.s[i]
		switch {
		case c == q:
			p.i = i + 1
			return b.String(), nil
		case c == '\n' || c == '\r':
			return "", fmt.Errorf("unterminated value of a Literal in %q", p.s)
		case c == '\\':
			r, n, err := p.literalEscape(i)
			if err != nil {
				return "", err
			}
			b.WriteRune(r)
			i += n
		default:
			r, n := utf8.DecodeRuneInString(p.s[i:])
			if r == utf8.RuneError && n == 1 {
				return "", fmt.Errorf("a value of a Literal is not valid UTF-8 in %q", p.s)
			}
			if r == 0 {
				return "", fmt.Errorf("a value of a Literal holds a NUL character (write \\x00) in %q", p.s)
			}
			b.WriteRune(r)
			i += n
		}
	}
	return "", fmt.Errorf("unterminated value of a Literal in %q", p.s)
}

// literalEscapes are the escapes of one character.
var literalEscapes = map[byte]rune{
	'\\': '\\', '\'': '\'', '"': '"', 'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v',
}

// literalEscape reads the escape at p.s[i] (a backslash): the character
// and the escape's length.
func (p *typeParser) literalEscape(i int) (rune, int, error) {
	rest := p.s[i+1:]
	if rest == "" {
		return 0, 0, fmt.Errorf("unterminated value of a Literal in %q", p.s)
	}
	if r, ok := literalEscapes[rest[0]]; ok {
		return r, 2, nil
	}
	digits, base := 0, 16
	switch c := rest[0]; {
	case '0' <= c && c <= '7':
		base = 8
		for digits < 3 && digits < len(rest) && '0' <= rest[digits] && rest[digits] <= '7' {
			digits++
		}
		n, _ := strconv.ParseUint(rest[:digits], 8, 32)
		if n > 0o377 {
			return 0, 0, fmt.Errorf("escape \\%s of a Literal's string is beyond \\377 in %q", rest[:digits], p.s)
		}
		return rune(n), 1 + digits, nil
	case c == 'x':
		digits = 2
	case c == 'u':
		digits = 4
	case c == 'U':
		digits = 8
	default:
		r, _ := utf8.DecodeRuneInString(rest)
		return 0, 0, fmt.Errorf("escape \\%c of a Literal's string is not one dspgo takes (\\\\, \\', \\\", \\a, \\b, \\f, \\n, \\r, \\t, \\v, \\ooo, \\xhh, \\uhhhh, \\Uhhhhhhhh) in %q", r, p.s)
	}
	hex := rest[1:min(len(rest), 1+digits)]
	n, err := strconv.ParseUint(hex, base, 32)
	if len(hex) < digits || err != nil || strings.ContainsAny(hex, "+-_") {
		return 0, 0, fmt.Errorf("escape \\%c of a Literal's string needs %d hex digits in %q", rest[0], digits, p.s)
	}
	if n > utf8.MaxRune || 0xd800 <= n && n <= 0xdfff {
		return 0, 0, fmt.Errorf("escape \\%s of a Literal's string is not a Unicode character in %q", rest[:1+digits], p.s)
	}
	return rune(n), 1 + 1 + digits, nil
}

// literal parses the bracketed part of Literal[v, …].
func (p *typeParser) literal() (Type, error) {
	if err := p.expect('['); err != nil {
		return Type{}, err
	}
	t := Type{Kind: Literal}
	for {
		v, err := p.literalValue()
		if err != nil {
			return Type{}, err
		}
		if t.hasLiteral(v) {
			return Type{}, fmt.Errorf("value %s appears twice in the Literal %q", literalErrorText(v), p.s)
		}
		t.Values = append(t.Values, v)
		p.space()
		if !p.done() && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if err := p.expect(']'); err != nil {
			return Type{}, err
		}
		return t, nil
	}
}

// literalString is the canonical form of a Literal type.
func (t Type) literalString() string {
	texts := make([]string, len(t.Values))
	for i, v := range t.Values {
		texts[i] = LiteralText(v)
	}
	return "Literal[" + strings.Join(texts, ", ") + "]"
}

// literalGoType is the Go type a Literal's values convert to: that of its
// values' kind when they have one (string, int64, float64, bool), else
// any (values of several kinds, or None).
func (t Type) literalGoType() reflect.Type {
	switch t.literalKind() {
	case Str:
		return reflect.TypeFor[string]()
	case Int:
		return reflect.TypeFor[int64]()
	case Float:
		return reflect.TypeFor[float64]()
	case Bool:
		return reflect.TypeFor[bool]()
	}
	return anyType
}

// convertLiteral converts v, not null, to t, a Literal: a string to one
// of its strings, a bool to one of its bools, a number to one of its
// integers (an integral number, as int takes it) or else to one of its
// floats (in a union's exact pass, a non-integral number only).
func (t Type) convertLiteral(v reflect.Value, path string, c conv) (reflect.Value, error) {
	var out any
	found := false
	switch {
	case v.Kind() == reflect.String && v.Type() != reflect.TypeFor[json.Number]():
		s := v.String()
		if t.hasLiteral(s) {
			out, found = s, true
		} else if t.hasLiteralKind(Str) {
			return reflect.Value{}, fmt.Errorf("%s: %q is not one of %s", path, s, t)
		}
	case v.Kind() == reflect.Bool:
		if t.hasLiteral(v.Bool()) {
			out, found = v.Bool(), true
		} else if t.hasLiteralKind(Bool) {
			return reflect.Value{}, fmt.Errorf("%s: %s is not one of %s", path, LiteralText(v.Bool()), t)
		}
	default:
		n, isInt := toInt(v)
		f, isFloat := toFloat(v)
		switch {
		case isInt && t.hasLiteral(n):
			out, found = n, true
		case isFloat && t.hasLiteral(f) && !(c.exact && f == math.Trunc(f)):
			out, found = f, true
		case isInt && (t.hasLiteralKind(Int) || t.hasLiteralKind(Float)):
			return reflect.Value{}, fmt.Errorf("%s: %d is not one of %s", path, n, t)
		case isFloat && t.hasLiteralKind(Float):
			return reflect.Value{}, fmt.Errorf("%s: %s is not one of %s", path, FloatRepr(f), t)
		}
	}
	if !found {
		return reflect.Value{}, fmt.Errorf("%s: expected %s, got %s", path, t, describe(v))
	}
	rv := reflect.New(t.literalGoType()).Elem()
	rv.Set(reflect.ValueOf(out))
	return rv, nil
}
