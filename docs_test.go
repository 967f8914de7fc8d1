package dspgo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/format"
	"go/scanner"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/internal/testutil"
)

// snippet is one ```go block of the documentation.
type snippet struct {
	file string // relative to the repository root
	line int    // of the block's first line of code
	code string
}

func (s snippet) name() string {
	base := strings.TrimSuffix(filepath.Base(s.file), ".md")
	return strings.ToLower(strings.NewReplacer("-", "_", ".", "_").Replace(base)) + fmt.Sprintf("_%d", s.line)
}

// output is the text of the snippet's closing "// Output:" comment, as
// in a Go example, and whether it has one.
func (s snippet) output() (string, bool) {
	lines := strings.Split(strings.TrimRight(s.code, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "//") {
			return "", false
		}
		if rest, ok := strings.CutPrefix(l, "// Output:"); ok {
			var out []string
			if rest = strings.TrimSpace(rest); rest != "" {
				out = append(out, rest)
			}
			for _, l := range lines[i+1:] {
				out = append(out, strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(l), "//"), " "))
			}
			return strings.Join(out, "\n"), true
		}
	}
	return "", false
}

// docSnippets returns every ```go block of README.md and docs/*.md.
func docSnippets(t *testing.T, root string) []snippet {
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	var out []snippet
	for _, path := range files {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		rel, _ := filepath.Rel(root, path)
		var cur *snippet
		for i, line := range strings.Split(string(data), "\n") {
			switch {
			case cur == nil && strings.TrimSpace(line) == "```go":
				cur = &snippet{file: rel, line: i + 2}
			case cur != nil && strings.TrimSpace(line) == "```":
				out = append(out, *cur)
				cur = nil
			case cur != nil:
				cur.code += line + "\n"
			}
		}
		require.Nil(t, cur, "%s: a ```go block is not closed", rel)
	}
	return out
}

// imports maps the package names snippets use to their paths: a
// fragment imports those it names.
var imports = map[string]string{
	"context": "context", "errors": "errors", "fmt": "fmt", "log": "log", "os": "os", "strings": "strings",
	"time": "time", "json": "encoding/json", "slog": "log/slog", "testing": "testing",
	"dspgo": "github.com/dspgo/dspgo", "adapter": "github.com/dspgo/dspgo/adapter",
	"mock": "github.com/dspgo/dspgo/adapters/mock", "port": "github.com/dspgo/dspgo/adapters/port",
	"pool": "github.com/dspgo/dspgo/adapters/pool", "config": "github.com/dspgo/dspgo/config",
	"registry": "github.com/dspgo/dspgo/registry", "conformance": "github.com/dspgo/dspgo/conformance",
	"fx": "go.uber.org/fx",
}

// usedPackages returns the import paths of the packages code names
// (name.Ident, outside comments and strings).
func usedPackages(t *testing.T, code string) []string {
	var s scanner.Scanner
	fset := token.NewFileSet()
	src := []byte(code)
	s.Init(fset.AddFile("", fset.Base(), len(src)), src, func(pos token.Position, msg string) {
		t.Errorf("%s: %s", pos, msg)
	}, 0)
	var used []string
	prev := token.ILLEGAL
	var ident string
	for {
		_, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok == token.PERIOD && prev == token.IDENT {
			if path, ok := imports[ident]; ok && !slices.Contains(used, path) {
				used = append(used, path)
			}
		}
		if tok == token.IDENT && prev != token.PERIOD {
			ident = lit
		} else if tok == token.IDENT {
			ident = ""
		}
		prev = tok
	}
	slices.Sort(used)
	return used
}

// program returns the snippet as a Go file: as it stands when it is one
// (package clause and all), or else as the body of func main with the
// imports it names. Its //line directive points compile errors at the
// Markdown.
func (s snippet) program(t *testing.T) (src string, test bool) {
	directive := fmt.Sprintf("//line %s:%d\n", s.file, s.line)
	if m := regexp.MustCompile(`(?m)^package (\w+)`).FindStringSubmatch(s.code); m != nil {
		return directive + s.code, strings.HasSuffix(m[1], "_test")
	}
	var b strings.Builder
	b.WriteString("package main\n\nimport (\n")
	for _, path := range usedPackages(t, s.code) {
		fmt.Fprintf(&b, "\t%q\n", path)
	}
	b.WriteString(")\n\nfunc main() {\n" + directive)
	for _, line := range strings.Split(strings.TrimRight(s.code, "\n"), "\n") {
		if line != "" {
			line = "\t" + line
		}
		b.WriteString(line + "\n")
	}
	b.WriteString("}\n")
	return b.String(), false
}

// TestDocSnippets builds every Go snippet of README.md and docs/*.md, as
// a program (a fragment becomes the body of main, importing the packages
// it names) or a test, in one go build, and runs each: it must exit 0,
// and print what its "// Output:" comment says when it has one. The
// programs run in a directory holding examples/dspgo.yaml as dspgo.yaml,
// with 2 pool workers on the test interpreter, and leave no process.
func TestDocSnippets(t *testing.T) {
	testutil.VerifyNoChildren(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	root := testutil.RepoRoot()
	snippets := docSnippets(t, root)
	require.GreaterOrEqual(t, len(snippets), 6, "README.md and docs/ show Go code")

	gen := t.TempDir()
	bin := filepath.Join(gen, "bin")
	require.NoError(t, os.Mkdir(bin, 0o755))
	// The packages live in the module, in a directory that exists only in
	// the overlay, so that they build against this checkout.
	virtual := filepath.Join(root, "internal", "docsnippets_by_test")
	overlay := map[string]string{}
	var mains, tests []string
	for _, s := range snippets {
		src, test := s.program(t)
		formatted, err := format.Source([]byte(src))
		if assert.NoError(t, err, "%s:%d does not parse", s.file, s.line) {
			assert.Equal(t, src, string(formatted), "%s:%d is not gofmt'ed", s.file, s.line)
		}
		file := filepath.Join(gen, s.name()+".go")
		require.NoError(t, os.WriteFile(file, []byte(src), 0o644))
		name := "main.go"
		if test {
			name = "snippet_test.go"
			tests = append(tests, "./internal/docsnippets_by_test/"+s.name())
		} else {
			mains = append(mains, "./internal/docsnippets_by_test/"+s.name())
		}
		overlay[filepath.Join(virtual, s.name(), name)] = file
	}
	ov, err := json.Marshal(map[string]any{"Replace": overlay})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(gen, "overlay.json"), ov, 0o644))
	build := func(args ...string) {
		cmd := exec.CommandContext(t.Context(), goTool, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	build(append([]string{"build", "-overlay", filepath.Join(gen, "overlay.json"), "-o", bin + "/"}, mains...)...)
	if len(tests) > 0 {
		build(append([]string{"test", "-c", "-vet=off", "-overlay", filepath.Join(gen, "overlay.json"), "-o", bin + "/"}, tests...)...)
	}

	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(root, "examples", "dspgo.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dspgo.yaml"), cfg, 0o644))
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DSPGO_") {
			environ = append(environ, kv)
		}
	}
	environ = append(environ, "DSPGO_PYTHON__INTERPRETER="+testutil.Python(t), "DSPGO_POOL__SIZE=2")
	t.Run("run", func(t *testing.T) {
		for _, s := range snippets {
			t.Run(s.name(), func(t *testing.T) {
				t.Parallel()
				exe := filepath.Join(bin, s.name())
				if _, err := os.Stat(exe); err != nil {
					exe += ".test"
				}
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, exe)
				cmd.Dir, cmd.Env = dir, environ
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				require.NoError(t, cmd.Run(), "%s:%d\nstdout: %s\nstderr: %s", s.file, s.line, stdout.String(), stderr.String())
				if want, ok := s.output(); ok {
					assert.Equal(t, want, strings.TrimSpace(stdout.String()), "%s:%d prints what its Output comment says", s.file, s.line)
				}
			})
		}
	})
}
