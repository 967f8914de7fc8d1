package lmtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testClient is an HTTP client of its own, whose idle connections are
// closed when the test ends (so that no goroutine outlives it).
func testClient(t *testing.T) *http.Client {
	t.Helper()
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport}
}

// waitCtx bounds a test's waits.
func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// answerPrompt is a DSPy ChatAdapter prompt asking for answer: str and
// n: int.
var answerPrompt = []map[string]any{
	{"role": "system", "content": "Your input fields are:\n1. `question` (str):\nYour output fields are:\n1. `answer` (str): \n2. `n` (int):\n" +
		"All interactions will be structured in the following way, with the appropriate values filled in.\n\n[[ ## question ## ]]\n{question}\n\n" +
		"[[ ## answer ## ]]\n{answer}\n\n[[ ## n ## ]]\n{n}        # note: the value you produce must be a single int value\n\n[[ ## completed ## ]]\n" +
		"In adhering to this structure, your objective is: \n        Given the fields `question`, produce the fields `answer`, `n`."},
	{"role": "user", "content": "[[ ## question ## ]]\nWhat is Go?\n\nRespond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, then `[[ ## n ## ]]` (must be formatted as a valid Python int), and then ending with the marker for `[[ ## completed ## ]]`."},
}

func answerContent(t *testing.T) string {
	t.Helper()
	return "[[ ## answer ## ]]\n" + mustValue(t, "answer", "str").(string) + "\n\n[[ ## n ## ]]\n" +
		marshal(mustValue(t, "n", "int")) + "\n\n[[ ## completed ## ]]\n"
}

func chatBody(model string, stream bool) map[string]any {
	return map[string]any{"model": model, "messages": answerPrompt, "stream": stream}
}

// post sends a chat completion request and returns the response (its body
// read) or the transport error.
func post(ctx context.Context, client *http.Client, url string, body any, header http.Header) (*http.Response, []byte, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/chat/completions", bytes.NewReader(data))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return resp, got, err
}

func mustPost(t *testing.T, client *http.Client, url string, body any) (*http.Response, []byte) {
	t.Helper()
	resp, got, err := post(waitCtx(t), client, url, body, nil)
	require.NoError(t, err)
	return resp, got
}

type completionReply struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index        int     `json:"index"`
		Message      Message `json:"message"`
		FinishReason string  `json:"finish_reason"`
	} `json:"choices"`
	Usage usage `json:"usage"`
}

func promptTokens() int {
	n := 0
	for _, m := range answerPrompt {
		n += CountTokens(m["content"].(string))
	}
	return n
}

func TestChatCompletion(t *testing.T) {
	s := New(t, Options{})
	client := testClient(t)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+/v1$`, s.URL())
	assert.Equal(t, strings.TrimSuffix(strings.TrimPrefix(s.URL(), "http://"), "/v1"), s.Addr())

	for _, url := range []string{s.URL(), strings.TrimSuffix(s.URL(), "/v1")} {
		resp, data := mustPost(t, client, url, chatBody("test-model", false))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(data))
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var reply completionReply
		require.NoError(t, json.Unmarshal(data, &reply))
		assert.Equal(t, "chat.completion", reply.Object)
		assert.Equal(t, "test-model", reply.Model)
		assert.NotEmpty(t, reply.ID)
		assert.NotZero(t, reply.Created)
		require.Len(t, reply.Choices, 1)
		assert.Equal(t, "stop", reply.Choices[0].FinishReason)
		assert.Equal(t, Message{Role: "assistant", Content: answerContent(t)}, reply.Choices[0].Message)
		completion := CountTokens(answerContent(t))
		assert.Equal(t, usage{PromptTokens: promptTokens(), CompletionTokens: completion, TotalTokens: promptTokens() + completion}, reply.Usage)
	}

	// n choices, identical.
	body := chatBody("test-model", false)
	body["n"] = 3
	_, data := mustPost(t, client, s.URL(), body)
	var reply completionReply
	require.NoError(t, json.Unmarshal(data, &reply))
	require.Len(t, reply.Choices, 3)
	for i, c := range reply.Choices {
		assert.Equal(t, i, c.Index)
		assert.Equal(t, answerContent(t), c.Message.Content)
	}
	assert.Equal(t, 3*CountTokens(answerContent(t)), reply.Usage.CompletionTokens)
}

// sseEvents splits a stream body into its events' data, checking the
// framing: every event is one "data: " line followed by a blank line.
func sseEvents(t *testing.T, body []byte) []string {
	t.Helper()
	require.True(t, bytes.HasSuffix(body, []byte("\n\n")), "stream does not end with a blank line: %q", body)
	var out []string
	for _, event := range strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(event, "data: ")
		require.True(t, ok, "event %q", event)
		require.NotContains(t, data, "\n")
		out = append(out, data)
	}
	return out
}

type streamChunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

func TestStream(t *testing.T) {
	s := New(t, Options{})
	client := testClient(t)
	body := chatBody("test-model", true)
	body["stream_options"] = map[string]any{"include_usage": false} // usage is sent anyway
	resp, data := mustPost(t, client, s.URL(), body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	events := sseEvents(t, data)
	require.Equal(t, "[DONE]", events[len(events)-1])
	chunks := make([]streamChunk, len(events)-1)
	for i, e := range events[:len(events)-1] {
		require.NoError(t, json.Unmarshal([]byte(e), &chunks[i]), e)
		assert.Equal(t, "chat.completion.chunk", chunks[i].Object)
		assert.Equal(t, chunks[0].ID, chunks[i].ID)
		assert.Equal(t, "test-model", chunks[i].Model)
	}
	// content pieces, then the finish chunk, then the usage chunk.
	pieces := chunks[:len(chunks)-2]
	var content strings.Builder
	for i, c := range pieces {
		require.Len(t, c.Choices, 1)
		require.NotNil(t, c.Choices[0].Delta.Content)
		assert.Nil(t, c.Choices[0].FinishReason)
		assert.Nil(t, c.Usage)
		if i == 0 {
			assert.Equal(t, "assistant", c.Choices[0].Delta.Role)
		} else {
			assert.Empty(t, c.Choices[0].Delta.Role)
		}
		content.WriteString(*c.Choices[0].Delta.Content)
	}
	assert.Equal(t, answerContent(t), content.String())
	assert.Equal(t, Pieces(answerContent(t)), func() []string {
		var out []string
		for _, c := range pieces {
			out = append(out, *c.Choices[0].Delta.Content)
		}
		return out
	}())
	assert.Equal(t, "[[", *pieces[0].Choices[0].Delta.Content, "a header is cut across pieces")

	finish := chunks[len(chunks)-2]
	require.Len(t, finish.Choices, 1)
	require.NotNil(t, finish.Choices[0].FinishReason)
	assert.Equal(t, "stop", *finish.Choices[0].FinishReason)
	assert.Nil(t, finish.Choices[0].Delta.Content)

	last := chunks[len(chunks)-1]
	assert.Empty(t, last.Choices)
	require.NotNil(t, last.Usage)
	completion := CountTokens(answerContent(t))
	assert.Equal(t, usage{PromptTokens: promptTokens(), CompletionTokens: completion, TotalTokens: promptTokens() + completion}, *last.Usage)

	reqs := s.Requests()
	require.Len(t, reqs, 1)
	assert.True(t, reqs[0].Stream)
	assert.True(t, reqs[0].Completed)
	assert.False(t, reqs[0].Canceled)
	assert.Equal(t, answerContent(t), reqs[0].Content)
}

// TestStreamIsFlushedPerEvent reads a slow stream event by event: each
// arrives before the next is written.
func TestStreamIsFlushedPerEvent(t *testing.T) {
	s := New(t, Options{ChunkDelay: 5 * time.Millisecond})
	client := testClient(t)
	data, err := json.Marshal(chatBody("test-model", true))
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(waitCtx(t), http.MethodPost, s.URL()+"/chat/completions", bytes.NewReader(data))
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	reader := bufio.NewReader(resp.Body)
	line, err := reader.ReadString('\n')
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(line, "data: {"), line)
	// The first event arrived while the server still has pieces to send.
	reqs := s.Requests()
	require.Len(t, reqs, 1)
	assert.False(t, reqs[0].Done)
	rest, err := io.ReadAll(reader)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(rest), "data: [DONE]\n\n"))
}

func TestRecordedFields(t *testing.T) {
	s := New(t, Options{})
	client := testClient(t)
	body := map[string]any{
		"model":                 "openai-ish+latency=0ms",
		"temperature":           0.7,
		"max_completion_tokens": 55,
		"response_format":       map[string]any{"type": "json_object"},
		"unknown_field":         []int{1, 2},
		"messages": []map[string]any{
			{"role": "system", "content": "Be brief."},
			{"role": "user", "content": []map[string]any{{"type": "text", "text": "part one"}, {"type": "image_url", "image_url": map[string]any{"url": "x"}}, {"type": "text", "text": "part two"}}},
		},
	}
	header := http.Header{"Authorization": {"Bearer sk-test"}, "X-Test": {"1"}}
	resp, _, err := post(waitCtx(t), client, s.URL(), body, header)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	reqs := s.Requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, 1, r.Seq)
	assert.WithinDuration(t, time.Now(), r.Time, time.Minute)
	assert.Equal(t, http.MethodPost, r.Method)
	assert.Equal(t, "/v1/chat/completions", r.Path)
	assert.Equal(t, "openai-ish+latency=0ms", r.Model)
	require.NotNil(t, r.Temperature)
	assert.Equal(t, 0.7, *r.Temperature)
	require.NotNil(t, r.MaxTokens)
	assert.Equal(t, 55, *r.MaxTokens)
	assert.False(t, r.Stream)
	assert.Equal(t, 1, r.N)
	assert.JSONEq(t, `{"type": "json_object"}`, string(r.ResponseFormat))
	assert.Equal(t, []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "part one\npart two"}}, r.Messages)
	assert.Equal(t, "Bearer sk-test", r.Authorization)
	assert.Equal(t, "1", r.Header.Get("X-Test"))
	data, err := json.Marshal(body)
	require.NoError(t, err)
	assert.Equal(t, string(data), r.Body)
	assert.Equal(t, FormatJSON, r.Format)
	assert.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, "{}", r.Content)
	assert.True(t, r.Completed)
	assert.True(t, r.Done)
	assert.False(t, r.Canceled)

	// max_tokens wins over max_completion_tokens; absent fields are nil.
	_, _ = mustPost(t, client, s.URL(), map[string]any{"model": "m", "messages": answerPrompt, "max_tokens": 7, "max_completion_tokens": 9})
	_, _ = mustPost(t, client, s.URL(), map[string]any{"model": "m", "messages": answerPrompt})
	reqs = s.Requests()
	require.Len(t, reqs, 3)
	assert.Equal(t, 7, *reqs[1].MaxTokens)
	assert.Nil(t, reqs[2].MaxTokens)
	assert.Nil(t, reqs[2].Temperature)
	assert.Empty(t, reqs[2].ResponseFormat)
	assert.Equal(t, []Field{{"answer", "str"}, {"n", "int"}}, reqs[2].Fields)
	assert.Equal(t, FormatChat, reqs[2].Format)

	s.Reset()
	assert.Empty(t, s.Requests())
	_, _ = mustPost(t, client, s.URL(), chatBody("m", false))
	assert.Equal(t, 1, s.Requests()[0].Seq)
}

type errorReply struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func TestDirectiveStatuses(t *testing.T) {
	s := New(t, Options{})
	client := testClient(t)
	tests := []struct {
		model          string
		status         int
		typ, code      string
		retryAfter     string
		retryAfterMs   string
		messageContain string
	}{
		{"test-model+status=400", 400, "invalid_request_error", "invalid_request", "", "", "400"},
		{"test-model+status=401", 401, "invalid_request_error", "invalid_api_key", "", "", "401"},
		{"test-model+status=403", 403, "permission_error", "permission_denied", "", "", ""},
		{"test-model+status=404", 404, "invalid_request_error", "model_not_found", "", "", ""},
		{"test-model+status=429", 429, "requests", "rate_limit_exceeded", "1", "1000", "Too Many Requests"},
		{"test-model+status=429,retry_after=0.25", 429, "requests", "rate_limit_exceeded", "0.25", "250", ""},
		{"test-model+status=429,retry_after=2s", 429, "requests", "rate_limit_exceeded", "2", "2000", ""},
		{"test-model+status=500", 500, "server_error", "internal_error", "", "", ""},
		{"test-model+status=503,retry_after=3", 503, "server_error", "service_unavailable", "3", "3000", ""},
		{"test-model+status=418", 418, "api_error", "status_418", "", "", ""},
		{"test-model+bogus", 400, "invalid_request_error", "invalid_request", "", "", `unknown model directive "bogus"`},
		{"test-model+status=abc", 400, "invalid_request_error", "invalid_request", "", "", "status=abc"},
		{"test-model+drop=1", 400, "invalid_request_error", "invalid_request", "", "", "takes no value"},
		{"test-model+latency=-1s", 400, "invalid_request_error", "invalid_request", "", "", "negative"},
		{"", 400, "invalid_request_error", "invalid_request", "", "", "model"},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			resp, data := mustPost(t, client, s.URL(), chatBody(tt.model, false))
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var e errorReply
			require.NoError(t, json.Unmarshal(data, &e), string(data))
			assert.Equal(t, tt.typ, e.Error.Type)
			assert.Equal(t, tt.code, e.Error.Code)
			assert.Nil(t, e.Error.Param)
			assert.Contains(t, e.Error.Message, tt.messageContain)
			assert.Equal(t, tt.retryAfter, resp.Header.Get("Retry-After"))
			assert.Equal(t, tt.retryAfterMs, resp.Header.Get("retry-after-ms"))
		})
	}
	reqs := s.Requests()
	require.Len(t, reqs, len(tests), "failed requests are recorded too")
	for i, r := range reqs {
		assert.Equal(t, tests[i].model, r.Model)
		assert.Equal(t, tests[i].status, r.Status)
		assert.True(t, r.Done)
	}
	assert.Empty(t, reqs[0].Error, "a status the test asked for is no refusal")
	assert.Contains(t, reqs[10].Error, "bogus")
}

func TestDirectiveBodies(t *testing.T) {
	s := New(t, Options{})
	client := testClient(t)

	t.Run("malformed", func(t *testing.T) {
		resp, data := mustPost(t, client, s.URL(), chatBody("test-model+malformed", false))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.False(t, json.Valid(data), string(data))
	})
	t.Run("malformed stream", func(t *testing.T) {
		resp, data := mustPost(t, client, s.URL(), chatBody("test-model+malformed", true))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		events := sseEvents(t, data)
		require.Len(t, events, 2)
		assert.False(t, json.Valid([]byte(events[0])))
		assert.Equal(t, "[DONE]", events[1])
	})
	t.Run("garbage", func(t *testing.T) {
		resp, data := mustPost(t, client, s.URL(), chatBody("test-model+garbage", false))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		var reply completionReply
		require.NoError(t, json.Unmarshal(data, &reply))
		assert.Equal(t, GarbageText, reply.Choices[0].Message.Content)
		assert.NotContains(t, GarbageText, "[[")
		assert.False(t, json.Valid([]byte(GarbageText)))
	})
	t.Run("garbage stream", func(t *testing.T) {
		_, data := mustPost(t, client, s.URL(), chatBody("test-model+garbage", true))
		var content strings.Builder
		for _, e := range sseEvents(t, data) {
			var c streamChunk
			if json.Unmarshal([]byte(e), &c) == nil && len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil {
				content.WriteString(*c.Choices[0].Delta.Content)
			}
		}
		assert.Equal(t, GarbageText, content.String())
	})
	t.Run("drop", func(t *testing.T) {
		_, _, err := post(waitCtx(t), client, s.URL(), chatBody("test-model+drop", false), nil)
		require.Error(t, err)
		assert.ErrorIs(t, err, io.EOF)
	})
	t.Run("drop_mid_stream without stream is a drop", func(t *testing.T) {
		_, _, err := post(waitCtx(t), client, s.URL(), chatBody("test-model+drop_mid_stream", false), nil)
		require.Error(t, err)
	})
	t.Run("drop_mid_stream", func(t *testing.T) {
		resp, data, err := post(waitCtx(t), client, s.URL(), chatBody("test-model+drop_mid_stream", true), nil)
		require.Error(t, err, "the body ends before its end")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		text := string(data)
		assert.Contains(t, text, `"role":"assistant"`)
		assert.NotContains(t, text, "[DONE]")
		assert.NotContains(t, text, `"finish_reason":"stop"`)
	})
	for _, r := range s.Requests() {
		assert.True(t, r.Done, r.Model)
		assert.False(t, r.Canceled, r.Model)
		switch {
		case strings.Contains(r.Model, "drop"):
			assert.False(t, r.Completed, r.Model)
		default:
			assert.True(t, r.Completed, r.Model)
		}
	}
}

func TestFailFirst(t *testing.T) {
	s := New(t, Options{})
	client := testClient(t)
	statuses := func(model string, n int) []int {
		var out []int
		for range n {
			resp, _ := mustPost(t, client, s.URL(), chatBody(model, false))
			out = append(out, resp.StatusCode)
		}
		return out
	}
	assert.Equal(t, []int{503, 503, 200, 200}, statuses("test-model+status=503,fail_first=2", 4))
	assert.Equal(t, []int{500, 200}, statuses("test-model+fail_first=1", 2), "500 when no failure is named")
	assert.Equal(t, []int{503, 503, 200}, statuses("other+fail_first=2,status=503", 3), "counts are per model name")

	// fail_first applies to other failures too.
	_, _, err := post(waitCtx(t), client, s.URL(), chatBody("m+drop,fail_first=1", false), nil)
	require.Error(t, err)
	resp, _ := mustPost(t, client, s.URL(), chatBody("m+drop,fail_first=1", false))
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	s.Reset()
	assert.Equal(t, []int{503, 503, 200}, statuses("test-model+status=503,fail_first=2", 3), "Reset starts the counts again")
	reqs := s.Requests()
	assert.Equal(t, 503, reqs[0].Fault.Status)
	assert.Equal(t, 0, reqs[2].Fault.Status)
	assert.Equal(t, 2, reqs[0].Fault.FailFirst)
}

func TestLatency(t *testing.T) {
	s := New(t, Options{Latency: 20 * time.Millisecond})
	client := testClient(t)
	start := time.Now()
	resp, _ := mustPost(t, client, s.URL(), chatBody("test-model+latency=30ms", false))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "options and directive latencies add up")

	start = time.Now()
	_, data := mustPost(t, client, s.URL(), chatBody("test-model+chunk_delay=5ms", true))
	pieces := len(sseEvents(t, data)) - 3
	assert.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond+time.Duration(pieces)*5*time.Millisecond)
	assert.Equal(t, 5*time.Millisecond, s.Requests()[1].Fault.ChunkDelay)
}

func TestOptionsFaults(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	s := New(t, Options{
		Faults: []Fault{{Status: 429}, {}, {Garbage: true}},
		Fault: func(r *Request) *Fault {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, r.Model)
			if r.Model == "hooked" {
				return &Fault{Status: 502}
			}
			return nil
		},
	})
	client := testClient(t)
	resp, _ := mustPost(t, client, s.URL(), chatBody("a", false))
	assert.Equal(t, 429, resp.StatusCode, "Faults[0] for Seq 1")
	resp, _ = mustPost(t, client, s.URL(), chatBody("b+status=500", false))
	assert.Equal(t, 500, resp.StatusCode, "the zero Fault leaves the directives")
	_, data := mustPost(t, client, s.URL(), chatBody("c", false))
	assert.Contains(t, string(data), GarbageText)
	resp, _ = mustPost(t, client, s.URL(), chatBody("hooked", false))
	assert.Equal(t, 502, resp.StatusCode)
	resp, _ = mustPost(t, client, s.URL(), chatBody("d", false))
	assert.Equal(t, 200, resp.StatusCode)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"a", "b+status=500", "c", "hooked", "d"}, seen)
}

func TestAPIKey(t *testing.T) {
	s := New(t, Options{APIKey: "sk-right"})
	client := testClient(t)
	resp, _, err := post(waitCtx(t), client, s.URL(), chatBody("m", false), http.Header{"Authorization": {"Bearer sk-wrong"}})
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _, err = post(waitCtx(t), client, s.URL(), chatBody("m", false), http.Header{"Authorization": {"Bearer sk-right"}})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	reqs := s.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "Bearer sk-wrong", reqs[0].Authorization)
	assert.Equal(t, "Incorrect API key provided.", reqs[0].Error)
}

func TestBadRequests(t *testing.T) {
	s := New(t, Options{})
	client := testClient(t)
	req, err := http.NewRequestWithContext(waitCtx(t), http.MethodPost, s.URL()+"/chat/completions", strings.NewReader("{not json"))
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	reqs := s.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "{not json", reqs[0].Body)
	assert.Contains(t, reqs[0].Error, "not a JSON")

	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/v1/chat/completions"}, {http.MethodGet, "/v1/nothing"}, {http.MethodGet, "/_test/nothing"},
	} {
		req, err := http.NewRequestWithContext(waitCtx(t), tt.method, strings.TrimSuffix(s.URL(), "/v1")+tt.path, nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		var e errorReply
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
		_ = resp.Body.Close()
		assert.GreaterOrEqual(t, resp.StatusCode, 400, tt.path)
		assert.NotEmpty(t, e.Error.Message)
	}

	resp, err = client.Get(s.URL() + "/models")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestCancellation: a client that goes away while the server waits is seen
// at once, in the latency wait and between stream pieces.
func TestCancellation(t *testing.T) {
	tests := []struct {
		name   string
		model  string
		stream bool
	}{
		{"latency", "test-model+latency=1h", false},
		{"latency before a stream", "test-model+latency=1h", true},
		{"between stream pieces", "test-model+chunk_delay=1h", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t, Options{})
			client := testClient(t)
			ctx, cancel := context.WithCancel(waitCtx(t))
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, _, err := post(ctx, client, s.URL(), chatBody(tt.model, tt.stream), nil)
				done <- err
			}()
			_, err := s.WaitRequests(waitCtx(t), 1)
			require.NoError(t, err)
			cancel()
			reqs, err := s.WaitCanceled(waitCtx(t), 1)
			require.NoError(t, err)
			assert.True(t, reqs[0].Canceled)
			assert.True(t, reqs[0].Done)
			assert.False(t, reqs[0].Completed)
			require.Error(t, <-done)
		})
	}
}

func TestWaitEnds(t *testing.T) {
	s, err := Start(Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.WaitRequests(ctx, 1)
	assert.ErrorIs(t, err, context.Canceled)
	require.NoError(t, s.Close())
	_, err = s.WaitCanceled(context.Background(), 1)
	assert.ErrorIs(t, err, ErrClosed)
	require.NoError(t, s.Close(), "Close is idempotent")
}

// TestCloseEndsRequestsInFlight: Close returns while a request waits an
// hour; its client gets an error and the request is seen canceled.
func TestCloseEndsRequestsInFlight(t *testing.T) {
	s, err := Start(Options{})
	require.NoError(t, err)
	client := testClient(t)
	done := make(chan error, 1)
	go func() {
		_, _, err := post(context.Background(), client, s.URL(), chatBody("test-model+latency=1h", true), nil)
		done <- err
	}()
	_, err = s.WaitRequests(waitCtx(t), 1)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.Error(t, <-done)
	reqs := s.Requests()
	require.Len(t, reqs, 1)
	assert.True(t, reqs[0].Canceled)
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "[::]:0", "example.com:0", "nonsense"} {
		_, err := Start(Options{Addr: addr})
		assert.Error(t, err, addr)
	}
	for _, addr := range []string{"localhost:0", "127.0.0.2:0"} {
		s, err := Start(Options{Addr: addr})
		if addr == "127.0.0.2:0" && err != nil {
			continue // not every system routes all of 127/8
		}
		require.NoError(t, err, addr)
		assert.Regexp(t, `^http://127\.0\.0\.\d:\d+/v1$`, s.URL())
		require.NoError(t, s.Close())
	}
}

func TestControlEndpoints(t *testing.T) {
	s := New(t, Options{})
	client := testClient(t)
	base := strings.TrimSuffix(s.URL(), "/v1")
	_, _ = mustPost(t, client, s.URL(), chatBody("test-model", false))
	_, _ = mustPost(t, client, s.URL(), chatBody("test-model+status=500", false))

	for _, url := range []string{base + "/_test/requests", s.URL() + "/_test/requests"} {
		resp, err := client.Get(url)
		require.NoError(t, err)
		var reqs []map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&reqs))
		_ = resp.Body.Close()
		require.Len(t, reqs, 2)
		assert.Equal(t, "test-model", reqs[0]["model"])
		assert.Equal(t, float64(500), reqs[1]["status"])
		assert.Equal(t, "chat", reqs[0]["format"])
		for _, key := range []string{"seq", "time", "path", "temperature", "max_tokens", "stream", "messages", "authorization", "headers", "body", "fields", "completed", "canceled", "done", "fault"} {
			assert.Contains(t, reqs[0], key)
		}
	}

	resp, err := client.Get(base + "/_test/wait?requests=2&done=2&timeout=5s")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = client.Get(base + "/_test/wait?canceled=1&timeout=10ms")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
	resp, err = client.Get(base + "/_test/wait?canceled=x")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	resp, err = client.Post(base+"/_test/reset", "application/json", nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, s.Requests())
	resp, err = client.Get(base + "/_test/requests")
	require.NoError(t, err)
	data, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	assert.JSONEq(t, "[]", string(data))
}

// TestControlWaitSeesCancellation: a Python-style test waits for the
// cancellation through /_test/wait.
func TestControlWaitSeesCancellation(t *testing.T) {
	s := New(t, Options{})
	client := testClient(t)
	ctx, cancel := context.WithCancel(waitCtx(t))
	done := make(chan error, 1)
	go func() {
		_, _, err := post(ctx, client, s.URL(), chatBody("test-model+latency=1h", false), nil)
		done <- err
	}()
	resp, err := client.Get(strings.TrimSuffix(s.URL(), "/v1") + "/_test/wait?requests=1")
	require.NoError(t, err)
	_ = resp.Body.Close()
	cancel()
	require.Error(t, <-done)
	resp, err = client.Get(strings.TrimSuffix(s.URL(), "/v1") + "/_test/wait?canceled=1")
	require.NoError(t, err)
	var reqs []Request
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&reqs))
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, reqs[0].Canceled)
}

func TestParseModel(t *testing.T) {
	base, f, err := ParseModel("test-model+latency=2s,chunk_delay=50ms,status=429,retry_after=1,fail_first=3,malformed,garbage,drop,drop_mid_stream")
	require.NoError(t, err)
	assert.Equal(t, "test-model", base)
	assert.Equal(t, Fault{
		Latency: 2 * time.Second, ChunkDelay: 50 * time.Millisecond, Status: 429, RetryAfter: time.Second,
		FailFirst: 3, Malformed: true, Garbage: true, Drop: true, DropMidStream: true,
	}, f)
	base, f, err = ParseModel("openai/plain")
	require.NoError(t, err)
	assert.Equal(t, "openai/plain", base)
	assert.Equal(t, Fault{}, f)
	_, f, err = ParseModel("m+max_context=500")
	require.NoError(t, err)
	assert.Equal(t, Fault{MaxContext: 500}, f)
	for _, bad := range []string{"m+x", "m+status=99", "m+status=", "m+fail_first=-1", "m+latency=abc", "m+latency", "m+garbage=yes", "m+max_context=0"} {
		_, _, err := ParseModel(bad)
		assert.Error(t, err, bad)
	}
}

// TestScriptedReplies: POST /_test/script queues reply contents, taken by
// the chat requests in arrival order, streamed or not; then replies are
// computed again, and Reset empties the queue.
func TestScriptedReplies(t *testing.T) {
	s := New(t, Options{})
	client := testClient(t)
	base := strings.TrimSuffix(s.URL(), "/v1")
	content := func(stream bool) string {
		_, data := mustPost(t, client, s.URL(), chatBody("test-model", stream))
		if stream {
			var text strings.Builder
			for _, line := range strings.Split(string(data), "\n") {
				var chunk struct {
					Choices []struct {
						Delta Message `json:"delta"`
					} `json:"choices"`
				}
				if payload, ok := strings.CutPrefix(line, "data: "); ok && payload != "[DONE]" {
					require.NoError(t, json.Unmarshal([]byte(payload), &chunk))
					for _, c := range chunk.Choices {
						text.WriteString(c.Delta.Content)
					}
				}
			}
			return text.String()
		}
		var reply completionReply
		require.NoError(t, json.Unmarshal(data, &reply))
		return reply.Choices[0].Message.Content
	}

	resp, err := client.Post(base+"/_test/script", "application/json", strings.NewReader(`{"replies": ["first"]}`))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s.Script("second", "third")
	assert.Equal(t, "first", content(false))
	assert.Equal(t, "second", content(true))
	reqs := s.Requests()
	assert.Equal(t, FormatChat, reqs[0].Format, "the format is still the prompt's")
	assert.Equal(t, "first", reqs[0].Content)
	s.Reset()
	assert.Equal(t, answerContent(t), content(false), "Reset empties the queue")
	s.Script("fourth")
	assert.Equal(t, "fourth", content(false))
	assert.Equal(t, answerContent(t), content(false), "computed again once the queue is empty")

	resp, err = client.Post(base+"/_test/script", "application/json", strings.NewReader(`{"replies": 1}`))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

// TestMaxContext: a prompt over max_context tokens is answered 400 with
// OpenAI's context_length_exceeded error, taking no scripted reply; a
// shorter one is answered.
func TestMaxContext(t *testing.T) {
	s := New(t, Options{})
	client := testClient(t)
	tokens := promptTokens()
	s.Script("scripted")
	resp, data := mustPost(t, client, s.URL(), chatBody(fmt.Sprintf("test-model+max_context=%d", tokens-1), false))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	var failure struct {
		Error struct{ Message, Type, Code string }
	}
	require.NoError(t, json.Unmarshal(data, &failure), string(data))
	assert.Equal(t, "context_length_exceeded", failure.Error.Code)
	assert.Equal(t, fmt.Sprintf("This model's maximum context length is %d tokens. However, your messages resulted in %d tokens.", tokens-1, tokens), failure.Error.Message)
	resp, data = mustPost(t, client, s.URL(), chatBody(fmt.Sprintf("test-model+max_context=%d", tokens), false))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var reply completionReply
	require.NoError(t, json.Unmarshal(data, &reply))
	assert.Equal(t, "scripted", reply.Choices[0].Message.Content, "the failure took no scripted reply")
}
