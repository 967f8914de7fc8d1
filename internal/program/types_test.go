package program_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/testutil"
)

// typeVectors is protocol/testdata/types.json, which the Python worker's
// tests (python/tests/test_types.py) check too.
type typeVectors struct {
	About string `json:"about"`
	Parse []struct {
		Type      string `json:"type"`
		Canonical string `json:"canonical"`
		Error     string `json:"error"`
	} `json:"parse"`
	Convert []convertCase `json:"convert"`
}

// convertCase is one conversion of a vectors file: a value of a type
// converted as the input x, its result (as Python holds it) and Go type
// (fmt's %T; empty: not checked), or its error.
type convertCase struct {
	Type   string          `json:"type"`
	Value  json.RawMessage `json:"value"`
	Result json.RawMessage `json:"result"`
	Go     string          `json:"go"`
	Error  string          `json:"error"`
}

// checkConversion checks c, its type parsed by parse.
func checkConversion(t *testing.T, parse func(string) (program.Type, error), c convertCase) {
	t.Helper()
	what := fmt.Sprintf("%s of %s", c.Type, c.Value)
	typ, err := parse(c.Type)
	require.NoError(t, err, what)
	got, err := typ.Convert(decodeNumbers(t, c.Value), "input x")
	if c.Error != "" {
		assert.EqualError(t, err, c.Error, what)
		return
	}
	require.NoError(t, err, what)
	if c.Go != "" {
		assert.Equal(t, c.Go, fmt.Sprintf("%T", got), "%s: the Go type", what)
	}
	if got != nil {
		assert.True(t, reflect.TypeOf(got).AssignableTo(typ.GoType()), "%s: %T is a %s", what, got, typ.GoType())
	}
	want, err := program.CanonicalJSON(c.Result)
	require.NoError(t, err)
	assert.Equal(t, string(want), mustCanonical(t, got), "%s: the result", what)
	again, err := typ.Convert(got, "input x")
	require.NoError(t, err, "%s: a converted value converts again", what)
	assert.Equal(t, got, again, "%s: converting a converted value changes nothing", what)
}

// specCase is a case of a vector file's "specs": a signature, and its
// normalized form, or "ok" (it compiles), or the invalid_argument error's
// message.
type specCase struct {
	Name       string             `json:"name"`
	Signature  command.Signature  `json:"signature"`
	Normalized *command.Signature `json:"normalized"`
	OK         bool               `json:"ok"`
	Error      string             `json:"error"`
}

// check compiles c's signature and checks the outcome: the error (its
// message too when message is set), else the normalized signature (as
// canonical JSON, so numbers compare by value), which compiles again to
// the same spec and hash.
func (c specCase) check(t *testing.T, name string, message bool) {
	t.Helper()
	compiled, err := program.Compile(command.Spec{Signature: c.Signature})
	if c.Error != "" {
		if !message {
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%s: %v", name, err)
			return
		}
		assertInvalid(t, err, c.Error, name)
		return
	}
	require.NoError(t, err, name)
	if !c.OK {
		assert.Equal(t, mustCanonical(t, *c.Normalized), mustCanonical(t, compiled.Spec.Signature), name)
	}
	again, err := program.Compile(compiled.Spec)
	require.NoError(t, err, name)
	assert.Equal(t, compiled.Hash, again.Hash, "%s: the normalized spec hashes the same", name)
	assert.Equal(t, compiled.Spec, again.Spec, "%s: a normalized spec normalizes to itself", name)
}

// assertInvalid asserts that err is an *adapter.Error with
// CodeInvalidArgument and the message want.
func assertInvalid(t *testing.T, err error, want, name string) {
	t.Helper()
	var aerr *adapter.Error
	if assert.True(t, errors.As(err, &aerr), "%s: %v", name, err) {
		assert.Equal(t, adapter.CodeInvalidArgument, aerr.Code, name)
		assert.Equal(t, want, aerr.Message, name)
	}
}

// loadVectors reads the file of protocol/testdata named name.
func loadVectors[V any](t *testing.T, name string) V {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "protocol", "testdata", name))
	require.NoError(t, err)
	var v V
	require.NoError(t, json.Unmarshal(data, &v))
	return v
}

func loadTypeVectors(t *testing.T) typeVectors {
	t.Helper()
	v := loadVectors[typeVectors](t, "types.json")
	require.NotEmpty(t, v.Parse)
	require.NotEmpty(t, v.Convert)
	return v
}

// decodeNumbers decodes JSON as the mock decodes inputs: numbers as
// json.Number.
func decodeNumbers(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	return v
}

// TestTypeVectors: every type of protocol/testdata/types.json parses to
// its canonical form (which parses to the same type) or fails with its
// message, and every value converts to its result, of its Go type, or
// fails with its message: the same as in the Python worker.
func TestTypeVectors(t *testing.T) {
	v := loadTypeVectors(t)
	for _, c := range v.Parse {
		typ, err := program.ParseType(c.Type)
		if c.Error != "" {
			assert.EqualError(t, err, c.Error, "%q", c.Type)
			continue
		}
		require.NoError(t, err, "%q", c.Type)
		assert.Equal(t, c.Canonical, typ.String(), "%q", c.Type)
		again, err := program.ParseType(typ.String())
		require.NoError(t, err, "%q", c.Type)
		assert.Equal(t, typ, again, "the canonical form of %q parses to the same type", c.Type)
	}
	for _, c := range v.Convert {
		checkConversion(t, program.ParseType, c)
	}
}

// dspySignature is one entry of testdata/dspy_signatures.txt.
type dspySignature struct {
	Signature string
	// Mark is '=' (Want is the canonical signature), '!' (DSPy accepts
	// it, dspgo refuses it with an error containing Want) or 'x' (both
	// refuse it).
	Mark byte
	Want string
}

// loadDSPySignatures reads testdata/dspy_signatures.txt (its format is
// in its header; python/tests/test_dspy_signatures.py reads it too).
func loadDSPySignatures(t *testing.T) []dspySignature {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "dspy_signatures.txt"))
	require.NoError(t, err)
	var out []dspySignature
	for n, line := range strings.Split(string(data), "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, `"`):
			var s string
			require.NoError(t, json.Unmarshal([]byte(line), &s), "line %d", n+1)
			out = append(out, dspySignature{Signature: s})
		case len(line) > 6 && strings.HasPrefix(line, "    ") && strings.Contains("=!x", line[4:5]) && line[5] == ' ':
			require.NotEmpty(t, out, "line %d: an expectation before any signature", n+1)
			last := &out[len(out)-1]
			require.Zero(t, last.Mark, "line %d: a second expectation", n+1)
			last.Mark, last.Want = line[4], line[6:]
		default:
			t.Fatalf("line %d of dspy_signatures.txt is not an entry: %q", n+1, line)
		}
	}
	for _, e := range out {
		require.NotZero(t, e.Mark, "%q has no expectation", e.Signature)
	}
	return out
}

// TestDSPySignatures parses the signature strings of DSPy's own tests:
// dspgo gives each its listed canonical form (the Python worker's parser
// and the real DSPy are checked against the same file by
// python/tests/test_dspy_signatures.py), or refuses it as listed.
func TestDSPySignatures(t *testing.T) {
	entries := loadDSPySignatures(t)
	require.Greater(t, len(entries), 50)
	for _, e := range entries {
		sig, err := program.ParseSignature(e.Signature)
		if e.Mark != '=' {
			require.Error(t, err, "%q", e.Signature)
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%q", e.Signature)
			assert.Contains(t, err.Error(), e.Want, "%q", e.Signature)
			continue
		}
		require.NoError(t, err, "%q", e.Signature)
		c, err := program.Compile(command.Spec{Signature: sig})
		require.NoError(t, err, "%q", e.Signature)
		assert.Equal(t, e.Want, c.Spec.Signature.String(), "%q", e.Signature)
	}
}

// pythonTypes runs the Python worker's parser and conversion on JSON lines
// (after a first line naming the worker's directory):
// {"sig": s} gives {"ok": the canonical signature} or {"err": the
// message}; {"type": t, "value": v} gives {"ok": the canonical JSON of the
// converted value} or {"err": the message}.
const pythonTypes = `
import json, sys
sys.path.insert(0, json.loads(sys.stdin.readline()))
from dspgo_worker.errors import WorkerError
from dspgo_worker.canonical import canonical_json
from dspgo_worker.fieldtypes import parse_type
from dspgo_worker.signature import parse_signature
from dspgo_worker.spec import CompiledSpec
from dspgo_worker.values import convert
def side(fields):
    return ", ".join(f.name if str(f.type) == "str" else f"{f.name}: {f.type}" for f in fields)
for line in sys.stdin:
    case = json.loads(line)
    try:
        if "sig" in case:
            c = CompiledSpec({"signature": parse_signature(case["sig"])})
            out = {"ok": side(c.inputs) + " -> " + side(c.declared_outputs)}
        else:
            out = {"ok": canonical_json(convert(parse_type(case["type"]), case["value"], "input x")).decode()}
    except (WorkerError, ValueError) as exc:
        out = {"err": exc.message if isinstance(exc, WorkerError) else str(exc)}
    print(json.dumps(out))
`

// randomTypeText writes a random type string: mostly well formed, in
// every spelling the parser takes, sometimes not.
func randomTypeText(r *rand.Rand, depth int) string {
	leaf := []string{"str", "int", "float", "bool", "Any", "typing.Any", "None", "NoneType", "Literal['a', 'b']", "Literal[\"x\"]", "Literal[1, 2]", "Literal[3,0]", "Literal[True, None]", "Literal[1.5, 'it\\'s']", "Literal[1, 1.0, True, False]", "dspy.Image", "dspy.File", "dspy.Audio", "list", "dict", "tuple"}
	junk := []string{"", "List", "float]", "...", "set[int]", "int,", "[int]", "Literal[-1]", "Literal[01]", "Literal['\\q']", "Literal[1e999]", "Optional[]", "()", "|"}
	if depth > 3 || r.IntN(3) == 0 {
		if r.IntN(40) == 0 {
			return junk[r.IntN(len(junk))]
		}
		return leaf[r.IntN(len(leaf))]
	}
	sub := func() string { return randomTypeText(r, depth+1) }
	several := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = sub()
		}
		return strings.Join(parts, ", ")
	}
	keys := []string{"str", "int", "Literal['k', 'j']", "float", "Optional[int]", "Literal[1, 2]"}
	switch r.IntN(12) {
	case 0:
		return []string{"list", "List", "typing.List"}[r.IntN(3)] + "[" + sub() + "]"
	case 1:
		return []string{"dict", "Dict"}[r.IntN(2)] + "[" + keys[r.IntN(len(keys))] + ", " + sub() + "]"
	case 2:
		return []string{"tuple", "Tuple"}[r.IntN(2)] + "[" + several(1+r.IntN(3)) + "]"
	case 3:
		return "tuple[" + sub() + ", ...]"
	case 4:
		return []string{"Optional", "typing.Optional"}[r.IntN(2)] + "[" + sub() + "]"
	case 5:
		return "Union[" + several(1+r.IntN(3)) + "]"
	case 6, 7:
		return sub() + " | " + sub()
	case 8:
		return "(" + sub() + ")"
	}
	return sub()
}

// randomValueFor returns a JSON value for a type string: often one of its
// type, sometimes not.
func randomValueFor(r *rand.Rand, typ string, depth int) any {
	scalars := []any{"x", "7", "", 3, -2, 3.0, 2.5, 1.5, 1e20, true, false, nil, "it's"}
	t, err := program.ParseType(typ)
	if err != nil || depth > 4 || r.IntN(8) == 0 {
		return scalars[r.IntN(len(scalars))]
	}
	return randomValueOf(r, t, depth)
}

func randomValueOf(r *rand.Rand, t program.Type, depth int) any {
	if depth > 4 || r.IntN(10) == 0 {
		return []any{"x", 3, 2.5, true, nil, []any{1}, map[string]any{"1": "a"}}[r.IntN(7)]
	}
	switch t.Kind {
	case program.Str:
		return []string{"a", "b c", "42"}[r.IntN(3)]
	case program.Literal:
		return t.Values[r.IntN(len(t.Values))]
	case program.Int:
		return []any{r.IntN(100), 4.0}[r.IntN(2)]
	case program.Float:
		return []any{2.5, 3, 1e-7}[r.IntN(3)]
	case program.Bool:
		return r.IntN(2) == 0
	case program.Any:
		return []any{nil, "s", 1, 1.5, []any{1, "a"}, map[string]any{"k": nil}}[r.IntN(6)]
	case program.Optional:
		if r.IntN(3) == 0 {
			return nil
		}
		return randomValueOf(r, *t.Elem, depth+1)
	case program.Union:
		return randomValueOf(r, t.Members[r.IntN(len(t.Members))], depth+1)
	case program.List:
		out := make([]any, r.IntN(3))
		for i := range out {
			out[i] = randomValueOf(r, *t.Elem, depth+1)
		}
		return out
	case program.Tuple:
		if t.Variadic {
			return randomValueOf(r, program.Type{Kind: program.List, Elem: t.Elem}, depth)
		}
		out := make([]any, 0, len(t.Members))
		for _, m := range t.Members {
			out = append(out, randomValueOf(r, m, depth+1))
		}
		return out[:len(out)-r.IntN(2)*r.IntN(2)]
	case program.Dict:
		out := map[string]any{}
		for range r.IntN(3) {
			key := []string{"a", "k", "1", "-2", "01", "x"}[r.IntN(6)]
			out[key] = randomValueOf(r, *t.Elem, depth+1)
		}
		return out
	}
	return nil
}

// fuzzCorpus returns the committed corpus of a fuzz target: each file's
// one argument, unquoted.
func fuzzCorpus(t *testing.T, target string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	require.NoError(t, err)
	var out []string
	for _, name := range files {
		data, err := os.ReadFile(name)
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		require.Len(t, lines, 2, name)
		lit := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(lines[1], "string("), "[]byte("), ")")
		s, err := strconv.Unquote(lit)
		require.NoError(t, err, name)
		out = append(out, s)
	}
	return out
}

// printableASCII reports whether s is printable ASCII, where Go's %q and
// Python's quoting of s agree.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// TestTypesMatchPython: Go and the Python worker parse the same
// signatures to the same canonical forms (or both refuse them, with the
// same message when it is printable ASCII), and convert the same values
// to the same canonical JSON (or both refuse them, with the same message):
// 3,000 random types, their signatures and values, the fuzz corpus of
// FuzzParseSignature and the signatures of DSPy's tests.
func TestTypesMatchPython(t *testing.T) {
	testutil.VerifyNoChildren(t)
	r := rand.New(rand.NewPCG(19, 19))
	var input bytes.Buffer
	dir, err := json.Marshal(testutil.PythonDir())
	require.NoError(t, err)
	input.Write(append(dir, '\n'))
	type result struct {
		OK  *string `json:"ok"`
		Err *string `json:"err"`
	}
	var want []result
	var what []string
	var exactMessage []bool
	add := func(c map[string]any, res result, desc string, exact bool) {
		line, err := json.Marshal(c)
		require.NoError(t, err)
		input.Write(line)
		input.WriteByte('\n')
		want = append(want, res)
		what = append(what, desc)
		exactMessage = append(exactMessage, exact)
	}
	addSignature := func(s string) {
		if !utf8.ValidString(s) {
			return // JSON cannot carry it to Python as it is
		}
		var res result
		sig, err := program.ParseSignature(s)
		if err == nil {
			var c *program.Compiled
			if c, err = program.Compile(command.Spec{Signature: sig}); err == nil {
				canon := c.Spec.Signature.String()
				res.OK = &canon
			}
		}
		if err != nil {
			msg := err.Error()
			if e, ok := err.(*adapter.Error); ok {
				msg = e.Message
			}
			res.Err = &msg
		}
		add(map[string]any{"sig": s}, res, "signature "+strconv.Quote(s), printableASCII(s))
	}
	for range 3000 {
		typ := randomTypeText(r, 0)
		addSignature("a: " + typ + ", b -> c: " + randomTypeText(r, 0))
		value := randomValueFor(r, typ, 0)
		var res result
		if parsed, err := program.ParseType(typ); err == nil {
			raw, err := json.Marshal(value)
			require.NoError(t, err)
			got, err := parsed.Convert(decodeNumbers(t, raw), "input x")
			if err != nil {
				msg := err.Error()
				res.Err = &msg
			} else {
				canon := mustCanonical(t, got)
				res.OK = &canon
			}
			add(map[string]any{"type": typ, "value": value}, res, fmt.Sprintf("%s of %s", typ, raw), true)
		}
	}
	for _, s := range fuzzCorpus(t, "FuzzParseSignature") {
		addSignature(s)
	}
	for _, e := range loadDSPySignatures(t) {
		addSignature(e.Signature)
	}

	got := runPython(t, pythonTypes, &input)
	require.Len(t, got, len(want))
	mismatches, accepted := 0, 0
	for i, line := range got {
		var res result
		require.NoError(t, json.Unmarshal([]byte(line), &res), line)
		ok := (res.OK == nil) == (want[i].OK == nil)
		switch {
		case !ok:
		case res.OK != nil:
			ok = *res.OK == *want[i].OK
		case exactMessage[i]:
			ok = *res.Err == *want[i].Err
		}
		if res.OK != nil {
			accepted++
		}
		if !ok && mismatches < 20 {
			mismatches++
			assert.Failf(t, "Go and Python differ", "%s: Go %s, Python %s", what[i], show(want[i].OK, want[i].Err), line)
		}
	}
	t.Logf("%d cases, %d accepted", len(got), accepted)
	assert.Greater(t, accepted, len(got)/3, "most random cases are well formed")
	assert.Less(t, accepted, len(got)*9/10, "some are not")
}

func show(ok, err *string) string {
	if ok != nil {
		return "ok " + strconv.Quote(*ok)
	}
	return "error " + strconv.Quote(*err)
}
