// Command notebook-to-service is the Go side of docs/dspy.md's walkthrough:
// it serves over HTTP the DSPy program that notebook.py (beside this file)
// optimized and saved in Python. It loads the saved program.json, creates
// it on the backend that configuration selects (dspgo.yaml, DSPGO_*
// variables; the default is a pool of Python workers with the dummy LM),
// and answers POST /triage {"ticket": "…"} with the program's typed outputs
// as JSON.
//
//	.venv/bin/python examples/notebook-to-service/notebook.py      # writes program.json
//	go run ./examples/notebook-to-service -program program.json
//	curl -d '{"ticket":"I was charged twice"}' 127.0.0.1:8080/triage
//
// With the model the notebook used, through DSPy itself:
//
//	DSPGO_LM__PROVIDER=openai DSPGO_LM__MODEL=gpt-4o-mini DSPGO_LM__ENGINE=dspy \
//	DSPGO_PYTHON__INTERPRETER=.venv/bin/python DSPGO_PYTHON__PASS_ENV=PATH,HOME,OPENAI_API_KEY \
//	go run ./examples/notebook-to-service -program program.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/registry"
)

// Signature is the notebook's Triage signature as a string: a saved
// program records its fields' descriptions and demos, not which field is
// which nor their types, so the service states them (see docs/dspy.md,
// "Saved programs").
const Signature = "ticket: str -> team: Literal['billing', 'engineering', 'accounts'], priority: int"

func main() {
	programFile := flag.String("program", "program.json", "the program the notebook saved")
	listen := flag.String("listen", "127.0.0.1:8080", "the address to serve on")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal("notebook-to-service: ", err)
	}
	if err := run(ctx, *programFile, ln, config.LoadOptions{}); err != nil {
		log.Fatal("notebook-to-service: ", err)
	}
}

// run serves on ln until ctx ends, then shuts the server and the backend
// down.
func run(ctx context.Context, programFile string, ln net.Listener, opts config.LoadOptions) error {
	defer ln.Close()
	cfg, err := config.Load(opts)
	if err != nil {
		return err
	}
	reg, err := registry.New(registry.Builtin()...)
	if err != nil {
		return err
	}
	backend, why, err := reg.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer backend.Close(context.Background())
	log.Println(why) // e.g. adapter "pool" set by default

	svc, err := newService(ctx, dspgo.NewClient(backend), programFile)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: svc, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("serving %s on http://%s/triage", programFile, ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	<-errc // http.ErrServerClosed
	return err
}

// service answers POST /triage with the saved program's outputs.
type service struct {
	client *dspgo.Client
	prog   *dspgo.Program
}

// newService loads the program the notebook saved and creates it through
// client.
func newService(ctx context.Context, client *dspgo.Client, programFile string) (*service, error) {
	f, err := os.Open(programFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	spec, err := dspgo.LoadDSPyProgram(f, Signature)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", programFile, err)
	}
	prog, err := client.CreateProgram(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &service{client: client, prog: prog}, nil
}

// ServeHTTP runs the program on the request's ticket. Bad input is 400;
// a backend error is answered with its status and code.
func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/triage" || r.Method != http.MethodPost {
		http.Error(w, "POST /triage {\"ticket\": \"…\"}", http.StatusNotFound)
		return
	}
	var in struct {
		Ticket string `json:"ticket"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil || in.Ticket == "" {
		http.Error(w, `the body must be {"ticket": "…"}`, http.StatusBadRequest)
		return
	}
	out, err := s.client.Execute(r.Context(), s.prog.ID, map[string]any{"ticket": in.Ticket})
	if err != nil {
		writeJSON(w, status(err), map[string]string{"code": adapter.CodeOf(err).String(), "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// status is the HTTP status of a backend error.
func status(err error) int {
	switch adapter.CodeOf(err) {
	case adapter.CodeInvalidArgument:
		return http.StatusBadRequest
	case adapter.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case adapter.CodeUnavailable, adapter.CodeResourceExhausted:
		return http.StatusServiceUnavailable
	}
	if errors.Is(err, context.Canceled) {
		return 499 // the client went away
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
