package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxFileBytes is the most the CLI reads of a file its command line names
// (--program, --compare, --with) and of one line of --inputs: 64 MiB, the
// bound of dspgo.LoadDSPyProgram. A program, and a row's inputs, go to the
// backend whole in one frame (port.max_frame_bytes, 16 MiB by default,
// which a configuration may raise), but a file DSPy saved holds more than
// the spec made of it; past this bound no backend would take it.
const maxFileBytes = 64 << 20

// fileLimit says maxFileBytes in errors.
var fileLimit = fmt.Sprintf("%d bytes (%d MiB)", maxFileBytes, maxFileBytes>>20)

// readFile reads the file at path, named by flag, of at most
// maxFileBytes. A larger one is bad usage, whose message names flag, the
// file and the limit and whose fix is fix: refused by its size before any
// of it is read, or, when it has no size (a pipe, a device such as
// /dev/zero) or grows meanwhile, once one byte past the limit is read,
// never further. Other errors are os.Open's and the read's, as they are.
func readFile(flag, path, fix string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	if info, err := f.Stat(); err == nil && info.Mode().IsRegular() && info.Size() > maxFileBytes {
		return nil, usagef(fix, "%s %s is %d bytes; the limit is %s", flag, path, info.Size(), fileLimit)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileBytes {
		return nil, usagef(fix, "%s %s holds more than the limit of %s", flag, path, fileLimit)
	}
	return data, nil
}

// programFix is the fix of a --program file over maxFileBytes.
const programFix = "give a smaller file: a program goes to the workers whole, in one frame of at most port.max_frame_bytes"

// readProgramFile reads the --program file: one that does not open is bad
// usage too.
func readProgramFile(path string) ([]byte, error) {
	data, err := readFile("--program", path, programFix)
	var usage *usageError
	if err != nil && !errors.As(err, &usage) {
		return nil, usagef("give an existing file", "--program: %v", err)
	}
	return data, err
}

// readLine reads one line of r, its '\n' included (none at the end of the
// input), refusing, as bad usage naming line n, one of more than
// maxFileBytes before its '\n': read no further than that, so input with
// no line break (/dev/zero) cannot exhaust memory.
func readLine(r *bufio.Reader, n int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(bytes.TrimSuffix(line, []byte("\n"))) > maxFileBytes {
			return nil, usagef("give each row's inputs on a line of their own, within the limit: a row goes to the workers whole, in one frame of at most port.max_frame_bytes",
				"input line %d holds more than the limit of one row, %s", n, fileLimit)
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}
