package lmtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Fault is how the server treats one request: delays, and the failure it
// answers with instead of a reply. The zero Fault is a normal reply.
type Fault struct {
	// Latency is waited before the reply, on top of Options.Latency
	// (directive latency=D).
	Latency time.Duration `json:"latency_ns"`
	// ChunkDelay, when positive, replaces Options.ChunkDelay: the wait
	// before each piece of a stream (directive chunk_delay=D).
	ChunkDelay time.Duration `json:"chunk_delay_ns"`
	// Status, when non-zero, is the HTTP status of an OpenAI-shaped error
	// reply {"error": {"message", "type", "param", "code"}} (directive
	// status=N).
	Status int `json:"status"`
	// RetryAfter is sent as the Retry-After header (seconds) and
	// retry-after-ms when positive; a 429 without it says 1 second
	// (directive retry_after=D, a bare number being seconds).
	RetryAfter time.Duration `json:"retry_after_ns"`
	// FailFirst, when positive, applies the failure (Status, Malformed,
	// Garbage, Drop, DropMidStream; status 500 when none is set) to the
	// first FailFirst requests that carry this exact model name only (as sent,
	// directives included); later
	// ones are answered normally (directive fail_first=N). Counts start
	// again at Reset.
	FailFirst int `json:"fail_first"`
	// Malformed answers 200 with a body that is not valid JSON (or, when
	// streaming, an event that is not) (directive malformed).
	Malformed bool `json:"malformed"`
	// Garbage answers a valid reply whose content is GarbageText, which no
	// adapter can parse (directive garbage).
	Garbage bool `json:"garbage"`
	// Drop closes the connection without any response (directive drop).
	Drop bool `json:"drop"`
	// DropMidStream sends the headers and about half of the stream's
	// pieces, then closes the connection; without streaming it is Drop
	// (directive drop_mid_stream).
	DropMidStream bool `json:"drop_mid_stream"`
	// NeedsDemos answers a ChatAdapter prompt from its demos only: each
	// output is the one of the demo whose inputs share the most words with
	// the real inputs, and the value rule's when no demo shares a word
	// (directive needs_demos; demos.go). It is not a failure.
	NeedsDemos bool `json:"needs_demos"`
	// MaxContext, when positive, is the model's context window in tokens
	// (CountTokens of the messages): a request whose prompt holds more is
	// answered 400 with OpenAI's error code "context_length_exceeded"
	// (directive max_context=N). It is not a failure fail_first counts.
	MaxContext int `json:"max_context"`
}

// fails reports whether the fault replaces the reply by a failure.
func (f Fault) fails() bool {
	return f.Status != 0 || f.Malformed || f.Garbage || f.Drop || f.DropMidStream
}

// withoutFailure is the fault with its delays (and needs_demos) only.
func (f Fault) withoutFailure() Fault {
	return Fault{Latency: f.Latency, ChunkDelay: f.ChunkDelay, NeedsDemos: f.NeedsDemos, MaxContext: f.MaxContext}
}

// merge returns f with the non-zero fields of o in place of its own.
func (f Fault) merge(o Fault) Fault {
	if o.Latency != 0 {
		f.Latency = o.Latency
	}
	if o.ChunkDelay != 0 {
		f.ChunkDelay = o.ChunkDelay
	}
	if o.Status != 0 {
		f.Status = o.Status
	}
	if o.RetryAfter != 0 {
		f.RetryAfter = o.RetryAfter
	}
	if o.FailFirst != 0 {
		f.FailFirst = o.FailFirst
	}
	if o.MaxContext != 0 {
		f.MaxContext = o.MaxContext
	}
	f.Malformed = f.Malformed || o.Malformed
	f.Garbage = f.Garbage || o.Garbage
	f.Drop = f.Drop || o.Drop
	f.DropMidStream = f.DropMidStream || o.DropMidStream
	f.NeedsDemos = f.NeedsDemos || o.NeedsDemos
	return f
}

// ParseModel splits a model name into its base name and the Fault its
// directives ask for: "test-model+status=429,retry_after=1" is
// "test-model" with Status 429 and RetryAfter 1s. Directives follow the
// first "+", separated by commas: latency=D, chunk_delay=D, status=N,
// retry_after=D, fail_first=N, malformed, garbage, drop, drop_mid_stream,
// needs_demos, max_context=N;
// a duration D is Go's ("2s", "50ms") or a bare number of seconds ("1",
// "0.5"). An unknown or malformed directive is an error, which the server
// answers with 400.
func ParseModel(model string) (string, Fault, error) {
	base, directives, ok := strings.Cut(model, "+")
	var f Fault
	if !ok {
		return base, f, nil
	}
	for _, d := range strings.Split(directives, ",") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		key, value, hasValue := strings.Cut(d, "=")
		var err error
		switch key {
		case "needs_demos":
			if hasValue {
				return "", Fault{}, fmt.Errorf("model directive %q takes no value", key)
			}
			f.NeedsDemos = true
			continue
		case "malformed", "garbage", "drop", "drop_mid_stream":
			if hasValue {
				return "", Fault{}, fmt.Errorf("model directive %q takes no value", key)
			}
			switch key {
			case "malformed":
				f.Malformed = true
			case "garbage":
				f.Garbage = true
			case "drop":
				f.Drop = true
			default:
				f.DropMidStream = true
			}
			continue
		case "latency":
			f.Latency, err = parseDirectiveDuration(value)
		case "chunk_delay":
			f.ChunkDelay, err = parseDirectiveDuration(value)
		case "retry_after":
			f.RetryAfter, err = parseDirectiveDuration(value)
		case "status":
			f.Status, err = strconv.Atoi(value)
			if err == nil && (f.Status < 100 || f.Status > 599) {
				err = fmt.Errorf("status %d is not an HTTP status", f.Status)
			}
		case "max_context":
			f.MaxContext, err = strconv.Atoi(value)
			if err == nil && f.MaxContext < 1 {
				err = fmt.Errorf("max_context %d is not positive", f.MaxContext)
			}
		case "fail_first":
			f.FailFirst, err = strconv.Atoi(value)
			if err == nil && f.FailFirst < 0 {
				err = fmt.Errorf("fail_first %d is negative", f.FailFirst)
			}
		default:
			return "", Fault{}, fmt.Errorf("unknown model directive %q (known: latency, chunk_delay, status, retry_after, fail_first, malformed, garbage, drop, drop_mid_stream, needs_demos, max_context)", key)
		}
		if err != nil {
			return "", Fault{}, fmt.Errorf("model directive %q: %w", d, err)
		}
	}
	return base, f, nil
}

func parseDirectiveDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("missing value")
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if secs < 0 {
			return 0, fmt.Errorf("negative duration %q", s)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, err
}
