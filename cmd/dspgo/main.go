// Command dspgo runs DSPy-style programs on the configured backend, runs
// the conformance suite, explains the configuration, checks the machine
// and measures throughput.
//
//	dspgo run --signature "question -> answer" --input question="What is Go?"
//	dspgo conformance --all
//	dspgo config explain
//	dspgo doctor
//	dspgo bench --op ping --workers 1,2
//	dspgo --version
//
// Exit status: 0 success; 1 a failure (some rows, cases or checks failed);
// 2 bad usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	_ "github.com/dspgo/dspgo/adapters/remote/remoteconfig" // registers the remote adapter: the CLI links NATS
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ}))
}

// env is what a command reads and writes besides its arguments; tests
// supply their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        func() []string
	// stdinIsTerminal, stdoutIsTerminal and stderrIsTerminal override
	// detection when set.
	stdinIsTerminal, stdoutIsTerminal, stderrIsTerminal *bool
}

// usageError is bad usage: one line saying what is wrong and how to fix
// it; exit status 2.
type usageError struct{ msg, fix string }

func (e *usageError) Error() string {
	if e.fix == "" {
		return e.msg
	}
	return e.msg + "; " + e.fix
}

func usagef(fix, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), fix: fix}
}

// failure is an error already reported in the command's output (failed
// rows, cases or checks): only the exit status remains to give.
var errFailed = errors.New("failed")

// run executes the command line and returns the exit status.
func run(ctx context.Context, args []string, e env) int {
	root := newRoot(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var usage *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errFailed):
		return exitFailure
	case errors.As(err, &usage), isCobraUsage(err):
		fmt.Fprintf(e.stderr, "dspgo: %v\n", oneLine(err))
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "dspgo: %v\n", oneLine(err))
	return exitFailure
}

// isCobraUsage recognises cobra's own usage errors: unknown commands and
// flags, bad flag values, wrong argument counts.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, s := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "invalid argument", "flag needs an argument", "accepts ", "requires at least", "if any flags in the group"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func isTerminal(f any, override *bool) bool {
	if override != nil {
		return *override
	}
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	info, err := file.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
