package lmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dspgo/dspgo/internal/wait"
)

// DefaultAddr is where a server listens unless Options.Addr says otherwise:
// loopback, on a port the system picks.
const DefaultAddr = "127.0.0.1:0"

// maxBodyBytes bounds a request body.
const maxBodyBytes = 32 << 20

// maxChoices bounds a request's n.
const maxChoices = 16

// ErrClosed is returned by the waiting methods of a closed Server.
var ErrClosed = errors.New("lmtest: server closed")

// Options configure a Server. The zero value is a server on DefaultAddr
// that answers at once.
type Options struct {
	// Addr is the address to listen on, DefaultAddr when empty. It must be a
	// loopback address (127.0.0.0/8, ::1 or localhost); any other is refused.
	Addr string
	// Latency is waited before every reply (the request's cancellation ends
	// the wait at once).
	Latency time.Duration
	// ChunkDelay is waited before every piece of a stream.
	ChunkDelay time.Duration
	// APIKey, when set, is required as "Authorization: Bearer <APIKey>";
	// other requests get 401. When empty any Authorization is accepted.
	APIKey string
	// Fault, when set, is called for every chat request (with a copy of its
	// record, Seq and the parsed body filled in), from the request's handler:
	// concurrent requests call it concurrently. A non-nil result is merged
	// over the model name's directives and Faults (its non-zero fields win).
	Fault func(*Request) *Fault
	// Faults[i] is merged over the directives of the request whose Seq is
	// i+1 (the first request after Start or Reset is Seq 1), before Fault.
	Faults []Fault
	// Logger receives the HTTP server's own errors; nil discards them.
	Logger *slog.Logger
}

// Request is the record of one request to the chat completions endpoint,
// made when it arrives (before any latency) and completed when its reply
// ends. Requests are recorded whether they succeed or fail.
type Request struct {
	// Seq is the request's place in arrival order, from 1 (again from 1
	// after Reset).
	Seq int `json:"seq"`
	// Time is when the request arrived.
	Time time.Time `json:"time"`
	// Method and Path are the HTTP method and URL path.
	Method string `json:"method"`
	Path   string `json:"path"`
	// Model is the model name as sent, directives included.
	Model string `json:"model"`
	// Temperature is the request's temperature; nil when absent.
	Temperature *float64 `json:"temperature"`
	// MaxTokens is max_tokens, or max_completion_tokens when only that is
	// sent; nil when neither is.
	MaxTokens *int `json:"max_tokens"`
	// Stream is the request's stream flag.
	Stream bool `json:"stream"`
	// N is the number of choices asked for (1 when absent).
	N int `json:"n"`
	// ResponseFormat is the request's response_format, raw; empty when
	// absent.
	ResponseFormat json.RawMessage `json:"response_format,omitempty"`
	// Messages are the request's messages as role and text.
	Messages []Message `json:"messages"`
	// Images are the URLs of the messages' image_url content parts, in
	// order; nil when there are none.
	Images []string `json:"images,omitempty"`
	// Authorization is the Authorization header's value.
	Authorization string `json:"authorization"`
	// Header holds all the request's headers.
	Header http.Header `json:"headers"`
	// Body is the raw request body.
	Body string `json:"body"`
	// Format is the prompt's format as the server detected it.
	Format Format `json:"format"`
	// Fields are the output fields the prompt asks for.
	Fields []Field `json:"fields"`
	// Fault is what the server applied to the request (directives, options
	// and fail_first counting resolved).
	Fault Fault `json:"fault"`
	// Status is the HTTP status the server answered with; 0 when it sent
	// none (a drop, or a client gone before the reply).
	Status int `json:"status"`
	// Content is the reply's assistant content (empty for failures).
	Content string `json:"content"`
	// Error says why the server refused the request itself (a body that is
	// not JSON, an unknown directive, a wrong API key).
	Error string `json:"error,omitempty"`
	// Completed reports that the reply was written in full.
	Completed bool `json:"completed"`
	// Canceled reports that the client went away (the request's context
	// ended) before the reply was written in full, or that Close ended the
	// request.
	Canceled bool `json:"canceled"`
	// Done reports that the server has finished with the request (replied,
	// failed, dropped or seen it canceled).
	Done bool `json:"done"`
}

// Server is an OpenAI-compatible chat completions server on loopback for
// tests. Each Server has its own state; Close stops it and everything it
// started.
type Server struct {
	opts   Options
	srv    *http.Server
	ln     net.Listener
	url    string
	ctx    context.Context // every request's base context; canceled by Close
	cancel context.CancelFunc
	served chan struct{} // closed when Serve returns

	handlers sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	requests   []*Request
	failCounts map[string]int
	replies    []string      // scripted reply contents, taken in arrival order (Script)
	changed    chan struct{} // closed and replaced on every change of requests
}

// Start starts a server listening on opts.Addr (DefaultAddr when empty),
// which must be a loopback address. The caller must Close it.
func Start(opts Options) (*Server, error) {
	addr, err := loopbackAddr(opts.Addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("lmtest: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:       opts,
		ln:         ln,
		url:        "http://" + ln.Addr().String() + "/v1",
		ctx:        ctx,
		cancel:     cancel,
		served:     make(chan struct{}),
		failCounts: map[string]int{},
		changed:    make(chan struct{}),
	}
	errorLog := log.New(io.Discard, "", 0)
	if opts.Logger != nil {
		errorLog = slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          errorLog,
	}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// New starts a server for a test and closes it when the test ends; it fails
// the test if the server cannot start.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// loopbackAddr checks that addr is host:port on loopback; "localhost" is
// taken as 127.0.0.1.
func loopbackAddr(addr string) (string, error) {
	if addr == "" {
		return DefaultAddr, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("lmtest: address %q: %w", addr, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("lmtest: address %q is not a loopback address; the test server listens on loopback only (127.0.0.1, ::1, localhost)", addr)
	}
	return net.JoinHostPort(host, port), nil
}

// URL returns the base URL clients use: "http://127.0.0.1:PORT/v1".
func (s *Server) URL() string { return s.url }

// Addr returns the address the server listens on ("127.0.0.1:PORT").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server: it stops listening, ends every request in
// flight (their contexts are canceled, their connections closed) and
// returns once every handler has returned. Later calls do nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.notifyLocked()
	s.mu.Unlock()
	err := s.srv.Close()
	s.cancel()
	s.handlers.Wait()
	<-s.served
	return err
}

// Requests returns copies of the recorded requests, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked()
}

func (s *Server) snapshotLocked() []Request {
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = *r
	}
	return out
}

// Reset forgets the recorded requests, the fail_first counts and the
// scripted replies left; the next request is Seq 1 again. A request in
// flight is still completed, but no longer listed.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.failCounts = map[string]int{}
	s.replies = nil
	s.notifyLocked()
}

// Script queues reply contents, after any still queued: each chat request
// answered with a reply (not a failure, which takes none) takes the next as
// its content instead of the one Respond computes, whatever its format (the
// record's Format and Fields are still Respond's); garbage still replaces
// it. Once the queue is empty, replies are computed again. None are queued
// at first; Reset empties the queue.
func (s *Server) Script(replies ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies = append(s.replies, replies...)
}

// nextScripted takes the next scripted reply; ok is false when none is left.
func (s *Server) nextScripted() (reply string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.replies) == 0 {
		return "", false
	}
	reply = s.replies[0]
	s.replies = s.replies[1:]
	return reply, true
}

// Wait returns when cond holds for the recorded requests (it is called
// again after every change), ctx's error when ctx ends first, or ErrClosed
// when the server closes first.
func (s *Server) Wait(ctx context.Context, cond func([]Request) bool) error {
	for {
		s.mu.Lock()
		reqs, changed, closed := s.snapshotLocked(), s.changed, s.closed
		s.mu.Unlock()
		if cond(reqs) {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitRequests waits until at least n requests have been recorded, and
// returns them (see Wait).
func (s *Server) WaitRequests(ctx context.Context, n int) ([]Request, error) {
	var out []Request
	err := s.Wait(ctx, func(reqs []Request) bool {
		out = reqs
		return len(reqs) >= n
	})
	return out, err
}

// WaitDone waits until at least n recorded requests are done (replied,
// failed, dropped or canceled), and returns the requests (see Wait).
func (s *Server) WaitDone(ctx context.Context, n int) ([]Request, error) {
	return s.waitCount(ctx, n, func(r Request) bool { return r.Done })
}

// WaitCanceled waits until the server has seen at least n requests
// canceled by their clients (Request.Canceled), and returns the requests
// (see Wait).
func (s *Server) WaitCanceled(ctx context.Context, n int) ([]Request, error) {
	return s.waitCount(ctx, n, func(r Request) bool { return r.Canceled })
}

func (s *Server) waitCount(ctx context.Context, n int, match func(Request) bool) ([]Request, error) {
	var out []Request
	err := s.Wait(ctx, func(reqs []Request) bool {
		out = reqs
		count := 0
		for _, r := range reqs {
			if match(r) {
				count++
			}
		}
		return count >= n
	})
	return out, err
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// record adds a request, numbering it.
func (s *Server) record(r *Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
	r.Seq = len(s.requests)
	s.notifyLocked()
}

// update changes a recorded request under the lock.
func (s *Server) update(r *Request, change func(*Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	change(r)
	s.notifyLocked()
}

// copyOf returns a copy of a recorded request, read under the lock.
func (s *Server) copyOf(r *Request) Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *r
}

// ServeHTTP serves the endpoints listed in the package documentation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "the test server is closing", 0)
		return
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()

	path := r.URL.Path
	switch path {
	case "/v1/chat/completions", "/chat/completions":
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "use POST for "+path, 0)
			return
		}
		s.chat(w, r)
		return
	case "/v1/models", "/models":
		writeJSON(w, http.StatusOK, map[string]any{
			"object": "list",
			"data":   []any{map[string]any{"id": "test-model", "object": "model", "created": 0, "owned_by": "lmtest"}},
		})
		return
	}
	if test, ok := strings.CutPrefix(strings.TrimPrefix(path, "/v1"), "/_test/"); ok {
		s.control(w, r, test)
		return
	}
	writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+path, 0)
}

// control serves /_test/requests, /_test/reset, /_test/script and
// /_test/wait, to loopback clients only.
func (s *Server) control(w http.ResponseWriter, r *http.Request, name string) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		writeError(w, http.StatusForbidden, "the test endpoints answer loopback clients only", 0)
		return
	}
	switch {
	case name == "requests" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Requests())
	case name == "reset" && r.Method == http.MethodPost:
		s.Reset()
		writeJSON(w, http.StatusOK, map[string]any{"reset": true})
	case name == "script" && r.Method == http.MethodPost:
		var body struct {
			Replies []string `json:"replies"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, `the body must be {"replies": [string, ...]}: `+err.Error(), 0)
			return
		}
		s.Script(body.Replies...)
		writeJSON(w, http.StatusOK, map[string]any{"scripted": len(body.Replies)})
	case name == "wait" && r.Method == http.MethodGet:
		s.serveWait(w, r)
	default:
		writeError(w, http.StatusNotFound, "no such test endpoint: "+r.Method+" "+r.URL.Path+" (GET requests, POST reset, POST script, GET wait)", 0)
	}
}

// serveWait answers GET /_test/wait?requests=N&done=N&canceled=N&timeout=D
// with the requests once at least N are recorded, done and canceled (each
// condition optional), or 504 after the timeout (default 10s).
func (s *Server) serveWait(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	want := map[string]int{}
	for _, key := range []string{"requests", "done", "canceled"} {
		if v := q.Get(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("%s=%q is not a number", key, v), 0)
				return
			}
			want[key] = n
		}
	}
	timeout := 10 * time.Second
	if v := q.Get("timeout"); v != "" {
		d, err := parseDirectiveDuration(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("timeout=%q: %v", v, err), 0)
			return
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	var got []Request
	err := s.Wait(ctx, func(reqs []Request) bool {
		got = reqs
		done, canceled := 0, 0
		for _, r := range reqs {
			if r.Done {
				done++
			}
			if r.Canceled {
				canceled++
			}
		}
		return len(reqs) >= want["requests"] && done >= want["done"] && canceled >= want["canceled"]
	})
	if err != nil {
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("the condition %v did not hold within %v: %v", want, timeout, err), 0)
		return
	}
	writeJSON(w, http.StatusOK, got)
}

// chatRequest is the part of a chat completions request the server reads.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Temperature         *float64        `json:"temperature"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	N                   *int            `json:"n"`
	ResponseFormat      json.RawMessage `json:"response_format"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// contentPart is one part of a list content.
type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

// parts is a list content's parts; nil for a string content.
func (m chatMessage) parts() []contentPart {
	var parts []contentPart
	_ = json.Unmarshal(m.Content, &parts) // a string (or anything else) has none
	return parts
}

// text is a message content's text: a string, or the text parts of a list
// joined by newlines.
func (m chatMessage) text() string {
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s
	}
	var texts []string
	for _, p := range m.parts() {
		if p.Type == "text" || p.Type == "input_text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// chat serves one chat completions request.
func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rec := &Request{
		Time:          time.Now(),
		Method:        r.Method,
		Path:          r.URL.Path,
		N:             1,
		Authorization: r.Header.Get("Authorization"),
		Header:        r.Header.Clone(),
	}
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	rec.Body = string(body)
	var req chatRequest
	parseErr := readErr
	if parseErr == nil {
		parseErr = json.Unmarshal(body, &req)
	}
	var reply Reply
	if parseErr == nil {
		rec.Model = req.Model
		rec.Temperature = req.Temperature
		rec.MaxTokens = req.MaxTokens
		if rec.MaxTokens == nil {
			rec.MaxTokens = req.MaxCompletionTokens
		}
		rec.Stream = req.Stream
		if req.N != nil {
			rec.N = min(max(*req.N, 1), maxChoices)
		}
		if len(req.ResponseFormat) > 0 && string(req.ResponseFormat) != "null" {
			rec.ResponseFormat = req.ResponseFormat
		}
		for _, m := range req.Messages {
			rec.Messages = append(rec.Messages, Message{Role: m.Role, Content: m.text()})
			for _, p := range m.parts() {
				if p.Type == "image_url" {
					rec.Images = append(rec.Images, p.ImageURL.URL)
				}
			}
		}
		reply = Respond(rec.Messages, rec.ResponseFormat)
		rec.Format, rec.Fields = reply.Format, reply.Fields
	}
	s.record(rec)

	fail := func(status int, message string) {
		s.update(rec, func(r *Request) { r.Status, r.Error, r.Done, r.Completed = status, message, true, true })
		writeError(w, status, message, 0)
	}
	switch {
	case readErr != nil:
		fail(http.StatusBadRequest, "could not read the request body: "+readErr.Error())
		return
	case parseErr != nil:
		fail(http.StatusBadRequest, "the request body is not a JSON chat completions request: "+parseErr.Error())
		return
	case req.Model == "":
		fail(http.StatusBadRequest, "you must provide a model parameter")
		return
	}
	_, fault, err := ParseModel(req.Model)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	if s.opts.APIKey != "" && rec.Authorization != "Bearer "+s.opts.APIKey {
		fail(http.StatusUnauthorized, "Incorrect API key provided.")
		return
	}
	fault = s.resolveFault(rec, fault)
	s.update(rec, func(r *Request) { r.Fault = fault })

	canceled := func() { s.abortCanceled(rec) }
	if !wait.Sleep(ctx, s.opts.Latency+fault.Latency) {
		canceled()
		return
	}
	switch {
	case fault.Drop || (fault.DropMidStream && !req.Stream):
		s.update(rec, func(r *Request) { r.Done = true })
		// net/http's way to close the connection without a response.
		panic(http.ErrAbortHandler)
	case fault.Status != 0:
		retry := fault.RetryAfter
		if retry == 0 && fault.Status == http.StatusTooManyRequests {
			retry = time.Second
		}
		s.update(rec, func(r *Request) { r.Status, r.Done, r.Completed = fault.Status, true, true })
		writeError(w, fault.Status, "", retry)
		return
	}

	promptTokens := 0
	for _, m := range rec.Messages {
		promptTokens += CountTokens(m.Content)
	}
	if fault.MaxContext > 0 && promptTokens > fault.MaxContext {
		s.update(rec, func(r *Request) { r.Status, r.Done, r.Completed = http.StatusBadRequest, true, true })
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
			"message": fmt.Sprintf("This model's maximum context length is %d tokens. However, your messages resulted in %d tokens.", fault.MaxContext, promptTokens),
			"type":    "invalid_request_error", "param": "messages", "code": "context_length_exceeded",
		}})
		return
	}

	content := reply.Content
	if fault.NeedsDemos && reply.Format == FormatChat {
		content = demoContent(rec.Messages, reply)
	}
	if scripted, ok := s.nextScripted(); ok {
		content = scripted
	}
	if fault.Garbage {
		content = GarbageText
	}
	created := rec.Time.Unix()
	id := fmt.Sprintf("chatcmpl-lmtest-%d", s.copyOf(rec).Seq)
	model, _, _ := strings.Cut(req.Model, "+")
	usage := usage{PromptTokens: promptTokens, CompletionTokens: rec.N * CountTokens(content)}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens

	if ctx.Err() != nil {
		canceled()
		return
	}
	if !req.Stream {
		if fault.Malformed {
			s.writeMalformed(w, rec, id)
			return
		}
		choices := make([]choice, rec.N)
		for i := range choices {
			choices[i] = choice{Index: i, Message: Message{Role: "assistant", Content: content}, FinishReason: "stop"}
		}
		writeJSON(w, http.StatusOK, completion{
			ID: id, Object: "chat.completion", Created: created, Model: model, Choices: choices, Usage: usage,
		})
		s.update(rec, func(r *Request) { r.Status, r.Content, r.Done, r.Completed = http.StatusOK, content, true, true })
		return
	}
	delay := s.opts.ChunkDelay
	if fault.ChunkDelay > 0 {
		delay = fault.ChunkDelay
	}
	s.stream(w, r, rec, streamPlan{
		id: id, created: created, model: model, content: content, n: rec.N, usage: usage,
		delay: delay, malformed: fault.Malformed, dropMid: fault.DropMidStream,
	})
}

// abortCanceled marks a request canceled by its client and aborts the
// handler with http.ErrAbortHandler (net/http's way to end a response
// without writing more, and without logging), so it never returns.
func (s *Server) abortCanceled(rec *Request) {
	s.update(rec, func(r *Request) { r.Canceled, r.Done = true, true })
	panic(http.ErrAbortHandler)
}

// resolveFault merges the options' faults over the model's directives and
// applies fail_first counting.
func (s *Server) resolveFault(rec *Request, fault Fault) Fault {
	snapshot := s.copyOf(rec)
	if i := snapshot.Seq - 1; i < len(s.opts.Faults) {
		fault = fault.merge(s.opts.Faults[i])
	}
	if s.opts.Fault != nil {
		if f := s.opts.Fault(&snapshot); f != nil {
			fault = fault.merge(*f)
		}
	}
	if fault.FailFirst <= 0 {
		return fault
	}
	if !fault.fails() {
		fault.Status = http.StatusInternalServerError
	}
	s.mu.Lock()
	seen := s.failCounts[snapshot.Model]
	s.failCounts[snapshot.Model] = seen + 1
	s.mu.Unlock()
	if seen >= fault.FailFirst {
		return fault.withoutFailure()
	}
	return fault
}

// writeMalformed answers 200 with a body cut in the middle of its JSON.
func (s *Server) writeMalformed(w http.ResponseWriter, rec *Request, id string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `{"id": "`+id+`", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "[[ ## `)
	s.update(rec, func(r *Request) { r.Status, r.Done, r.Completed = http.StatusOK, true, true })
}

type streamPlan struct {
	id        string
	created   int64
	model     string
	content   string
	n         int
	usage     usage
	delay     time.Duration
	malformed bool
	dropMid   bool
}

// stream answers with Server-Sent Events: the content's pieces (the first
// with the role), a chunk with finish_reason "stop", a chunk with the usage,
// and "data: [DONE]", flushing after each event.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, rec *Request, p streamPlan) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush() // the headers go at once, as OpenAI sends them
	s.update(rec, func(r *Request) { r.Status = http.StatusOK })
	canceled := func() { s.abortCanceled(rec) }
	send := func(data string) bool {
		if ctx.Err() != nil {
			return false
		}
		if _, err := io.WriteString(w, "data: "+data+"\n\n"); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	chunkOf := func(choices []chunkChoice, u *usage) string {
		return marshal(chunk{ID: p.id, Object: "chat.completion.chunk", Created: p.created, Model: p.model, Choices: choices, Usage: u})
	}
	if p.malformed {
		if send(`{"id": "`+p.id+`", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "[[ ## `) && send("[DONE]") {
			s.update(rec, func(r *Request) { r.Done, r.Completed = true, true })
		} else {
			canceled()
		}
		return
	}
	pieces := Pieces(p.content)
	dropAt := max(1, len(pieces)/2)
	for i, piece := range pieces {
		if p.dropMid && i == dropAt {
			s.update(rec, func(r *Request) { r.Done = true })
			panic(http.ErrAbortHandler)
		}
		if !wait.Sleep(ctx, p.delay) {
			canceled()
			return
		}
		choices := make([]chunkChoice, p.n)
		for c := range choices {
			text := piece
			choices[c] = chunkChoice{Index: c, Delta: delta{Content: &text}}
			if i == 0 {
				choices[c].Delta.Role = "assistant"
			}
		}
		if !send(chunkOf(choices, nil)) {
			canceled()
			return
		}
	}
	if p.dropMid {
		s.update(rec, func(r *Request) { r.Done = true })
		panic(http.ErrAbortHandler)
	}
	stop := "stop"
	final := make([]chunkChoice, p.n)
	for c := range final {
		final[c] = chunkChoice{Index: c, FinishReason: &stop}
	}
	if !send(chunkOf(final, nil)) || !send(chunkOf([]chunkChoice{}, &p.usage)) || !send("[DONE]") {
		canceled()
		return
	}
	s.update(rec, func(r *Request) { r.Content, r.Done, r.Completed = p.content, true, true })
}

// CountTokens is the server's token count of a text: its number of
// whitespace-separated words. A reply's prompt_tokens is the sum over the
// request's messages (their text as Message.Content), its
// completion_tokens that of the content times n.
func CountTokens(text string) int { return len(strings.Fields(text)) }

// Pieces cuts a text into the pieces a stream sends: a cut before every
// space or newline that follows a character that is neither, so that each
// word keeps its leading white space ("[[ ## answer ## ]]" is five pieces).
// Joined, the pieces are the text.
func Pieces(text string) []string {
	var out []string
	start := 0
	for i := 1; i < len(text); i++ {
		c, prev := text[i], text[i-1]
		if (c == ' ' || c == '\n') && prev != ' ' && prev != '\n' {
			out = append(out, text[start:i])
			start = i
		}
	}
	return append(out, text[start:])
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type choice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

type completion struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   usage    `json:"usage"`
}

type delta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chunkChoice struct {
	Index        int     `json:"index"`
	Delta        delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

type chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *usage        `json:"usage"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, marshal(v)+"\n")
}

// errorKinds are the OpenAI error type and code of each status.
var errorKinds = map[int][2]string{
	400: {"invalid_request_error", "invalid_request"},
	401: {"invalid_request_error", "invalid_api_key"},
	403: {"permission_error", "permission_denied"},
	404: {"invalid_request_error", "model_not_found"},
	405: {"invalid_request_error", "method_not_allowed"},
	408: {"timeout_error", "timeout"},
	409: {"conflict_error", "conflict"},
	413: {"invalid_request_error", "request_too_large"},
	422: {"invalid_request_error", "unprocessable_entity"},
	429: {"requests", "rate_limit_exceeded"},
	500: {"server_error", "internal_error"},
	502: {"server_error", "bad_gateway"},
	503: {"server_error", "service_unavailable"},
	504: {"server_error", "timeout"},
}

// writeError writes an OpenAI-shaped error, with Retry-After when retry is
// positive. An empty message says which status the test asked for.
func writeError(w http.ResponseWriter, status int, message string, retry time.Duration) {
	kind, ok := errorKinds[status]
	if !ok {
		kind = [2]string{"api_error", "status_" + strconv.Itoa(status)}
	}
	if message == "" {
		message = fmt.Sprintf("lmtest: status %d (%s) as the test asked", status, http.StatusText(status))
	}
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.FormatFloat(retry.Seconds(), 'f', -1, 64))
		w.Header().Set("retry-after-ms", strconv.FormatInt(retry.Milliseconds(), 10))
	}
	writeJSON(w, status, map[string]any{
		"error": map[string]any{"message": message, "type": kind[0], "param": nil, "code": kind[1]},
	})
}
