package bench

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"time"
)

// FakeLM is an OpenAI-compatible /chat/completions endpoint on loopback
// that answers every request after a fixed delay, with a reply in the
// native engine's format for a program whose only output is "answer".
type FakeLM struct {
	// URL is the base URL to configure (lm.base_url).
	URL string
	srv *http.Server
	ln  net.Listener
}

// StartFakeLM serves on 127.0.0.1 until Close.
func StartFakeLM(delay time.Duration) (*FakeLM, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	reply, _ := json.Marshal(map[string]any{
		"id": "bench", "object": "chat.completion", "model": "fake",
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": "[[ ## answer ## ]]\nA language.\n\n[[ ## completed ## ]]"}}},
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /chat/completions", func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(delay) // the simulated model's latency
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(reply)
	})
	f := &FakeLM{URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go func() { _ = f.srv.Serve(ln) }()
	return f, nil
}

// Close stops the server.
func (f *FakeLM) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return f.srv.Shutdown(ctx)
}
