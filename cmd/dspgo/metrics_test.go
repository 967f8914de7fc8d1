package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/internal/testutil"
)

// TestMetricsEndpoint scrapes /metrics while a batch runs.
func TestMetricsEndpoint(t *testing.T) {
	testutil.VerifyNoChildren(t)
	stdin, feed := io.Pipe()
	var out, errOut testutil.SyncBuffer
	no := false
	done := make(chan int)
	go func() {
		done <- run(context.Background(), []string{"run", "--signature", "question -> answer", "--metrics-addr", "127.0.0.1:0"},
			env{stdin: stdin, stdout: &out, stderr: &errOut, stdinIsTerminal: &no, stderrIsTerminal: &no, environ: func() []string {
				return testEnviron(t)
			}})
	}()
	addr := regexp.MustCompile(`serving metrics on (http://\S+/metrics)`)
	var url string
	require.Eventually(t, func() bool {
		if m := addr.FindStringSubmatch(errOut.String()); m != nil {
			url = m[1]
			return true
		}
		return false
	}, 30*time.Second, 5*time.Millisecond, "the server announces its address: %s", errOut.String())

	get := func() string {
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(body)
	}
	var text string
	require.Eventually(t, func() bool {
		text = get()
		return strings.Contains(text, `dspgo_calls_total{adapter="pool",code="ok",command="create_program"} 1`)
	}, 30*time.Second, 5*time.Millisecond, "the program is created before the rows are read")
	assert.Contains(t, text, `dspgo_pool_workers{adapter="pool",state="ready"}`)
	assert.Contains(t, text, `dspgo_worker_up{adapter="pool",worker="pool-1"} 1`)
	assert.Contains(t, text, `go_goroutines`)
	assert.Contains(t, text, `dspgo_pool_broadcasts_total{adapter="pool"} 1`, "the LM, configured while the backend opened")

	_, err := io.WriteString(feed, `{"question":"a"}`+"\n"+`{"question":"b"}`+"\n")
	require.NoError(t, err)
	require.NoError(t, feed.Close())
	assert.Equal(t, 0, <-done, errOut.String())
	assert.Equal(t, 2, strings.Count(out.String(), `"answer"`))
	_, err = http.Get(url)
	assert.Error(t, err, "the server stops with the run")
}
