// Command lmtestd serves lmtest's OpenAI-compatible test server for tests
// in other languages. It listens on loopback (flag -addr, default
// 127.0.0.1:0; any other address is refused), prints one line
// {"url":"http://127.0.0.1:PORT/v1"} on stdout once it listens, and serves
// until its standard input reaches end of file or it receives SIGTERM or
// SIGINT, so that a test that dies never leaves it behind: start it with a
// pipe on stdin and close the pipe to stop it.
//
// Usage:
//
//	lmtestd [-addr 127.0.0.1:0] [-latency D] [-chunk-delay D] [-api-key KEY] [-log]
//
// From Python:
//
//	proc = subprocess.Popen([lmtestd], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
//	url = json.loads(proc.stdout.readline())["url"]   # http://127.0.0.1:PORT/v1
//	base = url[: -len("/v1")]
//	lm = dspy.LM("openai/test-model+status=429,fail_first=1", api_base=url, api_key="k")
//	...
//	sent = json.load(urllib.request.urlopen(base + "/_test/requests"))
//	urllib.request.urlopen(urllib.request.Request(base + "/_test/reset", data=b"", method="POST"))
//	urllib.request.urlopen(base + "/_test/wait?canceled=1&timeout=10s")  # blocks until seen
//	proc.stdin.close(); proc.wait()
//
// The server's behaviour (formats, values, model-name directives, the
// /_test/requests, /_test/reset, /_test/script and /_test/wait endpoints)
// is documented in package internal/lmtest.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/dspgo/dspgo/internal/lmtest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run serves until stdin ends or a signal arrives; it returns the exit
// status (0, or 2 for bad usage or a server that cannot start).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("lmtestd", flag.ContinueOnError)
	flags.SetOutput(stderr)
	addr := flags.String("addr", lmtest.DefaultAddr, "loopback `address` to listen on")
	latency := flags.Duration("latency", 0, "wait this long before every reply")
	chunkDelay := flags.Duration("chunk-delay", 0, "wait this long before every piece of a stream")
	apiKey := flags.String("api-key", "", "require \"Authorization: Bearer `KEY`\" (any is accepted when empty)")
	verbose := flags.Bool("log", false, "log the HTTP server's errors to stderr")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "lmtestd: unexpected arguments %q\n", flags.Args())
		return 2
	}
	opts := lmtest.Options{Addr: *addr, Latency: *latency, ChunkDelay: *chunkDelay, APIKey: *apiKey}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	// Signals are handled from before the URL is printed: a test may stop
	// lmtestd as soon as it has read it.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv, err := lmtest.Start(opts)
	if err != nil {
		fmt.Fprintf(stderr, "lmtestd: %v\n", err)
		return 2
	}
	defer srv.Close()

	line, _ := json.Marshal(map[string]string{"url": srv.URL()})
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		fmt.Fprintf(stderr, "lmtestd: %v\n", err)
		return 2
	}

	stdinDone := make(chan struct{})
	go func() {
		defer close(stdinDone)
		_, _ = io.Copy(io.Discard, stdin)
	}()
	select {
	case <-ctx.Done():
	case <-stdinDone:
	}
	return 0
}
