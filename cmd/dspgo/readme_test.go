package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/internal/testutil"
)

// TestREADMECommands runs every `go run ./cmd/dspgo …` line of the
// README's shell blocks (make test runs the other one).
func TestREADMECommands(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "README.md"))
	require.NoError(t, err)
	var commands [][]string
	inShell := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			inShell = true
		case strings.HasPrefix(line, "```"):
			inShell = false
		case inShell && strings.HasPrefix(line, "go run ./cmd/dspgo "):
			commands = append(commands, shellWords(t, strings.TrimPrefix(line, "go run ./cmd/dspgo ")))
		}
	}
	require.GreaterOrEqual(t, len(commands), 5, "the README shows the CLI")
	for _, args := range commands {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := cli(t, "", nil, args...)
			assert.Equal(t, 0, r.status, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			assert.NotEmpty(t, r.stdout)
		})
	}
}

// shellWords splits a command line as a POSIX shell would for the quoting
// the README uses: double quotes, single quotes and name="value" words.
func shellWords(t *testing.T, line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	require.Zero(t, quote, "unbalanced quotes in %q", line)
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
