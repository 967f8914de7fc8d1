package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/conformance"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/testutil"
)

// localCredentialsDir is the tests' remote.local_credentials_dir: the
// embedded servers of "dspgo workers" write their local credentials
// there, and callers find them, as in a user's own directory.
var localCredentialsDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dspgo-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	localCredentialsDir = dir
	defer os.RemoveAll(dir)
	goleak.VerifyTestMain(m)
}

// testEnviron is the environment of an in-process CLI: the test's
// interpreter and worker files, the tests' local credentials directory,
// and extra; no other variable.
func testEnviron(t *testing.T, extra ...string) []string {
	return append([]string{"DSPGO_PYTHON__INTERPRETER=" + testutil.Python(t), "DSPGO_PYTHON__WORKER_DIR=" + testutil.PythonDir(),
		"DSPGO_REMOTE__LOCAL_CREDENTIALS_DIR=" + localCredentialsDir}, extra...)
}

// result is one run of the CLI.
type result struct {
	status         int
	stdout, stderr string
}

// cli runs the CLI in process with the test's interpreter and worker
// files, and no DSPGO_* variables but those given.
func cli(t *testing.T, stdin string, environ []string, args ...string) result {
	t.Helper()
	testutil.VerifyNoChildren(t)
	var out, errOut bytes.Buffer
	no := false
	e := env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, stdinIsTerminal: &no, stderrIsTerminal: &no,
		environ: func() []string { return testEnviron(t, environ...) }}
	status := run(context.Background(), args, e)
	return result{status, out.String(), errOut.String()}
}

func TestRunOneRowOnPythonWorkers(t *testing.T) {
	r := cli(t, "", nil, "run", "--signature", "question -> answer", "--input", "question=What is Go?")
	require.Equal(t, 0, r.status, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 1, "one JSON line")
	var out struct {
		Row     int
		Outputs map[string]any
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &out))
	assert.Equal(t, 1, out.Row)
	assert.Contains(t, out.Outputs["answer"], "answer ")
	assert.Equal(t, `dspgo: answered by adapter "pool" (set by default) with the offline dummy LM (lm.provider set by default); set lm.provider to use a real model`+"\n",
		r.stderr, "one line on stderr: which adapter and LM answered")
}

func TestRunTypedInputsAndFormats(t *testing.T) {
	r := cli(t, "", nil, "run", "--adapter", "mock", "--signature", "question, n: int, tags: list[str] -> answers: list[str], score: float",
		"--input", "question=Why?", "--input", "n=3", "--input", `tags=["a","b"]`, "--output", "json")
	require.Equal(t, 0, r.status, r.stderr)
	var one []struct {
		Row     int
		Outputs map[string]any
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &one), "one JSON array")
	require.Len(t, one, 1)
	assert.Equal(t, 1, one[0].Row)
	assert.Contains(t, one[0].Outputs, "answers")
	assert.Contains(t, r.stdout, "\n  ", "pretty JSON")

	// Blank lines count: row numbers are line numbers, in every format.
	in := `{"q":"a"}` + "\n\n" + `{"q":"b"}` + "\n" + `{"x":1}` + "\n"
	r = cli(t, in, nil, "run", "--adapter", "mock", "--signature", "q -> a, n: int", "--output", "json")
	require.Equal(t, 1, r.status, r.stderr)
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rows), "a JSON array, failed rows included: %s", r.stdout)
	require.Len(t, rows, 3)
	for i, n := range []float64{1, 3, 4} {
		assert.Equal(t, n, rows[i]["row"])
	}
	assert.Contains(t, rows[1], "outputs")
	assert.Equal(t, "invalid_argument", rows[2]["error"].(map[string]any)["code"])

	r = cli(t, `{"q":"a"}`+"\n\n"+`{"q":"b"}`+"\n", nil, "run", "--adapter", "mock", "--signature", "q -> a, n: int", "--output", "table")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Regexp(t, `(?m)^row\s+a\s+n\s+error$`, r.stdout)
	assert.Regexp(t, `(?m)^1\s+a [0-9a-f]{8} [0-9a-f]{8}\s+\d+`, r.stdout)
	assert.Regexp(t, `(?m)^3\s+a [0-9a-f]{8} [0-9a-f]{8}\s+\d+`, r.stdout)
}

// TestRunFlagTextIsTheValueOfAStrInput: --input gives a str or Literal
// input (and an Optional one, null aside) its text as it is, and any
// other input its text read as JSON: the same inputs as the JSON line.
func TestRunFlagTextIsTheValueOfAStrInput(t *testing.T) {
	sig := "q, l: Literal['1', '2'], o: Optional[str], p: Optional[str], n: int, tags: list[str] -> a"
	flags := cli(t, "", nil, "run", "--adapter", "mock", "--signature", sig, "--input", "q=42", "--input", "l=1",
		"--input", "o=[x]", "--input", "p=null", "--input", "n=3", "--input", `tags=["a"]`)
	require.Equal(t, 0, flags.status, flags.stderr)
	line := cli(t, `{"q":"42","l":"1","o":"[x]","p":null,"n":3,"tags":["a"]}`+"\n", nil, "run", "--adapter", "mock", "--signature", sig)
	require.Equal(t, 0, line.status, line.stderr)
	assert.Equal(t, line.stdout, flags.stdout, "the same inputs, so the same outputs")
	other := cli(t, `{"q":"43","l":"1","o":"[x]","p":null,"n":3,"tags":["a"]}`+"\n", nil, "run", "--adapter", "mock", "--signature", sig)
	assert.NotEqual(t, other.stdout, flags.stdout, "the mock's outputs follow its inputs")
}

func TestBatchWithFailedRowsGoesOn(t *testing.T) {
	in := strings.Join([]string{`{"question":"a"}`, `not json`, ``, `{"question":"b"}`, `{"q":1}`, `{"question":"c"}`}, "\n")
	r := cli(t, in, nil, "run", "--signature", "question -> answer", "--concurrency", "3")
	assert.Equal(t, 1, r.status, "some rows failed")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 5, "one line per row, in input order; blank lines skipped")
	for i, n := range []int{1, 2, 4, 5, 6} {
		assert.Contains(t, lines[i], fmt.Sprintf(`{"row":%d,`, n), "the row number is the line number")
	}
	assert.Contains(t, lines[0], `"outputs":{"answer"`)
	assert.Contains(t, lines[1], "line 2 is not a JSON object")
	assert.Contains(t, lines[2], `"outputs":{"answer"`)
	assert.Contains(t, lines[3], `input \"q\" is not in the signature (the program takes \"question\")`)
	assert.Contains(t, lines[4], `"outputs":{"answer"`)
	assert.Contains(t, r.stderr, "2 of 5 rows failed")
}

func TestProgressBarOnATerminal(t *testing.T) {
	testutil.VerifyNoChildren(t)
	var out, errOut bytes.Buffer
	no, yes := false, true
	rows := strings.Repeat(`{"q":"x"}`+"\n", 20)
	status := run(context.Background(), []string{"run", "--adapter", "mock", "--signature", "q -> a"},
		env{stdin: strings.NewReader(rows), stdout: &out, stderr: &errOut, stdinIsTerminal: &no, stderrIsTerminal: &yes, environ: func() []string { return nil }})
	require.Equal(t, 0, status, errOut.String())
	assert.Regexp(t, `\[#+\] 20/20\s+[\d.]+ rows/s\s+ETA 0s`, errOut.String())
	assert.Equal(t, 20, strings.Count(out.String(), "\n"), "the bar goes to stderr only")
	assert.Contains(t, errOut.String(), "20/20")
}

func TestBadUsage(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		status int
		want   string
	}{
		{"unknown flag", []string{"run", "--bogus"}, 2, "unknown flag: --bogus; see 'dspgo run --help'"},
		{"unknown flag of dspgo", []string{"--bogus"}, 2, "unknown flag: --bogus; see 'dspgo --help'"},
		{"unknown flag of a subcommand's subcommand", []string{"config", "explain", "--bogus"}, 2, "unknown flag: --bogus; see 'dspgo config explain --help'"},
		{"unknown command", []string{"fly"}, 2, `unknown command "fly"`},
		{"misspelt command", []string{"confg"}, 2, `unknown command "confg" for "dspgo" Did you mean this? config`},
		{"misspelt subcommand", []string{"config", "explian"}, 2, `unknown command "explian" for "dspgo config" Did you mean this? explain`},
		{"unknown adapter", []string{"run", "--adapter", "python", "--signature", "q -> a", "--input", "q=x"}, 2,
			`adapter "python" (set by flag:--adapter) is not registered; known adapters: memory, mock, pool, port`},
		{"missing input field", []string{"run", "--adapter", "mock", "--signature", "question -> answer", "--input", "q=x"}, 2,
			`the program takes --input question=…`},
		{"bad signature", []string{"run", "--adapter", "mock", "--signature", "question answer", "--input", "q=x"}, 2, `write it like`},
		{"unknown kind", []string{"run", "--adapter", "mock", "--signature", "q -> a", "--kind", "cot", "--input", "q=x"}, 2,
			`unknown --kind "cot"; use --kind predict, chain_of_thought or react`},
		{"no program", []string{"run", "--adapter", "mock", "--input", "q=x"}, 2, `add --signature "question -> answer" or --program FILE`},
		{"bad config value", []string{"run", "--adapter", "mock", "--pool-affinity", "sticky", "--signature", "q -> a", "--input", "q=x"}, 2,
			`pool.affinity: "sticky" is not one of none, prefer, strict (set by flag:--pool-affinity)`},
		{"no python", []string{"run", "--python", "no-such-python", "--signature", "q -> a", "--input", "q=x"}, 1,
			`was not found on PATH`},
		{"the dspy engine without dspy", []string{"run", "--lm-provider", "openai", "--lm-model", "m", "--lm-engine", "dspy", "--signature", "q -> a", "--input", "q=x"}, 1,
			`(failed_precondition); install dspy into the workers' interpreter (`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, "", nil, tc.args...)
			assert.Equal(t, tc.status, r.status, r.stderr)
			assert.Contains(t, r.stderr, tc.want)
			assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
			if tc.name == "no python" {
				assert.Contains(t, r.stderr, "--adapter mock", "suggests running without Python")
			}
		})
	}
}

func TestProgramFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/qa.yaml"
	require.NoError(t, os.WriteFile(path, []byte("id: qa\ninputs:\n  - {name: question, description: what to answer}\noutputs:\n  - {name: answer}\n  - {name: confidence, type: float}\ninstructions: Be brief.\nkind: chain_of_thought\n"), 0o600))
	r := cli(t, "", nil, "run", "--adapter", "mock", "--program", path, "--input", "question=?")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Contains(t, r.stdout, `"reasoning"`)
	assert.Contains(t, r.stdout, `"confidence"`)

	require.NoError(t, os.WriteFile(path, []byte("signature: q -> a\nunknown: 1\n"), 0o600))
	r = cli(t, "", nil, "run", "--adapter", "mock", "--program", path, "--input", "q=?")
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, "field unknown not found")
	assert.NotContains(t, r.stderr, "specFile", "no Go type in a user's message")
}

// A program file declares pydantic models, which its signature's types
// name; an input of a model's type takes JSON.
func TestProgramFileModels(t *testing.T) {
	path := t.TempDir() + "/extract.yaml"
	require.NoError(t, os.WriteFile(path, []byte(`signature: "doc: Document -> people: list[Person]"
models:
  - name: Person
    description: A person the text names.
    fields:
      - {name: name}
      - {name: age, type: "Optional[int]", description: in years}
  - name: Document
    fields: [{name: text}]
`), 0o600))
	r := cli(t, "", nil, "run", "--adapter", "mock", "--program", path, "--input", `doc={"text": "Ann, 41."}`)
	require.Equal(t, 0, r.status, r.stderr)
	assert.Contains(t, r.stdout, `"people":[{"age":`)

	r = cli(t, "", nil, "run", "--adapter", "mock", "--program", path, "--input", `doc={"body": "Ann, 41."}`)
	assert.NotEqual(t, 0, r.status)
	assert.Contains(t, r.stderr, `input doc: expected Document, got an object without "text"`)
}

func TestConformanceAll(t *testing.T) {
	// No NATS server listens there: remote is skipped, saying why.
	r := cli(t, "", nil, "conformance", "--all", "--remote-url", "nats://"+freeAddr(t))
	require.Equal(t, 0, r.status, r.stdout+r.stderr)
	for _, name := range []string{"== memory", "== mock", "== pool", "== port", "== remote"} {
		assert.Contains(t, r.stdout, name)
	}
	assert.NotContains(t, r.stdout, "FAIL")
	assert.Contains(t, r.stdout, "no worker host reachable")
	// Every case on the 4 local adapters; remote needs hosts.
	n := len(conformance.Cases())
	assert.Regexp(t, fmt.Sprintf(`(?m)^%d passed, 0 failed, %d skipped$`, 4*n, n), r.stdout)
}

func TestConfigExplainAndAdapters(t *testing.T) {
	r := cli(t, "", []string{"DSPGO_POOL__SIZE=3"}, "config", "explain", "--adapter", "port")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Regexp(t, `(?m)^pool\.size\s+3\s+env:DSPGO_POOL__SIZE$`, r.stdout)
	assert.Regexp(t, `(?m)^adapter\s+port\s+flag:--adapter$`, r.stdout)
	assert.Contains(t, r.stdout, `adapter "port" set by flag:--adapter`)

	r = cli(t, "", nil, "config")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Contains(t, r.stdout, "pool.checkout_timeout = 30s")

	r = cli(t, "", nil, "adapters")
	require.Equal(t, 0, r.status)
	for _, name := range []string{"memory", "mock", "pool", "port", "remote"} { // remote: main imports its registering package
		assert.Regexp(t, regexp.MustCompile(`(?m)^`+name+`\s`), r.stdout)
	}
	assert.Contains(t, r.stdout, "capabilities: sessions")
	assert.Regexp(t, `(?m)^mock\s.*\n\s+capabilities: .*; LM: dummy only$`, r.stdout)
	assert.Regexp(t, `(?m)^pool\s.*\n\s+capabilities: [^;]*$`, r.stdout)
}

func TestBench(t *testing.T) {
	r := cli(t, "", nil, "bench", "--adapter", "pool", "--workers", "1,2", "--duration", "100ms", "--format", "json", "--op", "execute")
	require.Equal(t, 0, r.status, r.stderr)
	var results []struct {
		Name      string  `json:"name"`
		Calls     int     `json:"calls"`
		Errors    int     `json:"errors"`
		PerSecond float64 `json:"per_second"`
		P99       int64   `json:"p99_ns"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &results))
	require.Len(t, results, 2)
	assert.Equal(t, "pool workers=2 execute", results[1].Name)
	for _, res := range results {
		assert.Positive(t, res.Calls)
		assert.Zero(t, res.Errors)
		assert.Positive(t, res.P99)
	}
	r = cli(t, "", nil, "bench", "--adapter", "mock", "--duration", "50ms")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Regexp(t, `calls/s\s+p50\s+p90\s+p99\s+max`, r.stdout)
}

// TestVersion: dspgo --version says what was built, and with what Go.
func TestVersion(t *testing.T) {
	for _, flag := range []string{"--version", "-v"} {
		r := cli(t, "", nil, flag)
		assert.Equal(t, 0, r.status, r.stderr)
		assert.Regexp(t, `^dspgo \S.*, `+regexp.QuoteMeta(runtime.Version())+"\n$", r.stdout, flag)
	}
}

// TestConfigErrorsSayWhatToFix: a configuration that does not load says
// what to fix; it does not send the user to config explain, which loads
// the same configuration and fails the same way.
func TestConfigErrorsSayWhatToFix(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "dspgo.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("pool:\n  size: [\n"), 0o600))
	r := cli(t, "", nil, "config", "explain", "--config", bad)
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, "; fix the configuration file\n")

	r = cli(t, "", []string{"DSPGO_POOL__SIZE=abc"}, "config", "explain")
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, "pool.size = abc (set by env:DSPGO_POOL__SIZE): expected an integer; fix the configuration (each problem names the layer that set it)\n")
	assert.NotContains(t, r.stderr, "config explain")
}

// TestProgramFileNumbers: a program file's numbers are ints or floats as
// written, in JSON as in YAML, so a constraint shows the LM what its
// author wrote (0, 1.0).
func TestProgramFileNumbers(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"p.json": `{"inputs": [{"name": "q"}], "outputs": [{"name": "score", "type": "float", "constraints": [{"name": "ge", "value": 0}, {"name": "le", "value": 1.0}]}]}`,
		"p.yaml": "inputs: [{name: q}]\noutputs:\n  - {name: score, type: float, constraints: [{name: ge, value: 0}, {name: le, value: 1.0}]}\n",
	}
	for name, text := range files {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
		spec, err := loadSpec(path, []byte(text))
		require.NoError(t, err, name)
		c, err := program.Compile(command.Spec{Signature: spec.Signature})
		require.NoError(t, err, name)
		assert.Equal(t, []command.Constraint{{Name: "ge", Value: "0"}, {Name: "le", Value: "1.0"}}, c.Spec.Signature.Outputs[0].Constraints, name)
	}
}

// TestRunUnicodeFieldNames: --input names fields of other letters than
// ASCII's, and the outputs are so named in every format.
func TestRunUnicodeFieldNames(t *testing.T) {
	sig := "frage, größe: int -> réponse, 答え: list[str]"
	r := cli(t, "", nil, "run", "--adapter", "mock", "--signature", sig, "--input", "frage=Pourquoi?", "--input", "größe=3", "--output", "json")
	require.Equal(t, 0, r.status, r.stderr)
	var one []struct{ Outputs map[string]any }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &one), "one JSON array")
	require.Len(t, one, 1)
	assert.Contains(t, one[0].Outputs, "réponse")
	assert.IsType(t, []any{}, one[0].Outputs["答え"])

	r = cli(t, "", nil, "run", "--adapter", "mock", "--signature", sig, "--input", "frage=?", "--input", "größe=3", "--output", "table")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Regexp(t, `(?m)^row\s+réponse\s+答え\s+error$`, r.stdout)

	r = cli(t, "", nil, "run", "--adapter", "mock", "--signature", "ﬁeld -> x", "--input", "ﬁeld=?")
	assert.Equal(t, 2, r.status, r.stderr)
	assert.Contains(t, r.stderr, `input field name "ﬁeld" is not in NFKC form`)
}
