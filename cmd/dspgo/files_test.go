package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sparseFile is a file of size bytes (zeros) in a test's directory, which
// takes no room on disk.
func sparseFile(t *testing.T, name string, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(size))
	require.NoError(t, f.Close())
	return path
}

// TestReadFileLimit: a file of maxFileBytes is read whole; one byte more
// is bad usage naming the flag, the file and the limit.
func TestReadFileLimit(t *testing.T) {
	data, err := readFile("--program", sparseFile(t, "limit.json", maxFileBytes), programFix)
	require.NoError(t, err)
	assert.Len(t, data, maxFileBytes)

	over := sparseFile(t, "over.json", maxFileBytes+1)
	_, err = readFile("--program", over, programFix)
	var usage *usageError
	require.ErrorAs(t, err, &usage)
	assert.EqualError(t, err, fmt.Sprintf("--program %s is 67108865 bytes; the limit is 67108864 bytes (64 MiB); %s", over, programFix))

	_, err = readFile("--program", filepath.Join(t.TempDir(), "missing.json"), programFix)
	assert.ErrorIs(t, err, os.ErrNotExist, "other errors as they are")
}

// TestRunRefusesAProgramFileOverTheLimit: dspgo run reads no --program
// file (a spec, a program DSPy saved, a module's state) of more than
// maxFileBytes, by its size, nor more than that of one without a size:
// bad usage, before any backend starts, where /dev/zero once ran the
// process out of memory.
func TestRunRefusesAProgramFileOverTheLimit(t *testing.T) {
	over := sparseFile(t, "program.json", maxFileBytes+1)
	for _, args := range [][]string{
		{"--program", over, "--input", "question=x"},
		{"--program", over, "--signature", "question -> answer", "--input", "question=x"},
		{"--module", "triage", "--program", over, "--signature", "question -> answer", "--input", "question=x"},
	} {
		r := cli(t, "", nil, append([]string{"run", "--adapter", "mock"}, args...)...)
		assert.Equal(t, 2, r.status, "%v: %s", args, r.stderr)
		assert.Equal(t, fmt.Sprintf("dspgo: --program %s is 67108865 bytes; the limit is 67108864 bytes (64 MiB); %s\n", over, programFix), r.stderr, "%v", args)
		assert.Empty(t, r.stdout)
	}
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	r := cli(t, "", nil, "run", "--adapter", "mock", "--program", "/dev/zero", "--input", "question=x")
	assert.Equal(t, 2, r.status, r.stderr)
	assert.Equal(t, "dspgo: --program /dev/zero holds more than the limit of 67108864 bytes (64 MiB); "+programFix+"\n", r.stderr)
}

// TestRunRefusesAnInputLineOverTheLimit: a line of --inputs (or stdin)
// is read no further than maxFileBytes: one without a line break
// (/dev/zero) is bad usage, not the end of the process's memory.
func TestRunRefusesAnInputLineOverTheLimit(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	r := cli(t, "", nil, "run", "--adapter", "mock", "--signature", "question -> answer", "--inputs", "/dev/zero")
	assert.Equal(t, 2, r.status, r.stderr)
	assert.Contains(t, r.stderr, "dspgo: input line 1 holds more than the limit of one row, 67108864 bytes (64 MiB); give each row's inputs on a line of their own")
	assert.Empty(t, r.stdout, "no row runs")
}

// TestReadLine: lines up to maxFileBytes, their '\n' aside, are read
// whole; a longer one is refused once the limit is passed.
func TestReadLine(t *testing.T) {
	text := strings.Repeat("x", maxFileBytes) + "\n" + "{}" + "\n" + strings.Repeat("y", maxFileBytes+1) + "\n"
	r := bufio.NewReaderSize(strings.NewReader(text), 64<<10)
	line, err := readLine(r, 1)
	require.NoError(t, err)
	assert.Len(t, line, maxFileBytes+1, "the limit, and the line break")
	line, err = readLine(r, 2)
	require.NoError(t, err)
	assert.Equal(t, "{}\n", string(line))
	_, err = readLine(r, 3)
	var usage *usageError
	require.ErrorAs(t, err, &usage)
	assert.Contains(t, err.Error(), "input line 3 holds more than the limit of one row, 67108864 bytes (64 MiB)")
}

// TestBenchRefusesAReportOverTheLimit: --compare and --with are read
// with the same limit.
func TestBenchRefusesAReportOverTheLimit(t *testing.T) {
	over := sparseFile(t, "old.json", maxFileBytes+1)
	r := cli(t, "", nil, "bench", "--compare", over, "--with", filepath.Join("internal", "bench", "testdata", "new.json"))
	assert.Equal(t, 2, r.status, r.stderr)
	assert.Contains(t, r.stderr, fmt.Sprintf("dspgo: --compare %s is 67108865 bytes; the limit is 67108864 bytes (64 MiB); give a report", over))
}
