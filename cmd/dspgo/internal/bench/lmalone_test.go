package bench

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/internal/lmtest"
)

// TestLMAloneReplaysTheRecordedRequest: the baseline posts the body the
// server recorded first, to the same path, and reads the answers.
func TestLMAloneReplaysTheRecordedRequest(t *testing.T) {
	lm, err := lmtest.Start(lmtest.Options{Logger: quiet})
	require.NoError(t, err)
	defer lm.Close()
	_, err = newLMAlone(lm, 4)
	assert.ErrorContains(t, err, "no request to replay")

	body := `{"model":"test-model","messages":[{"role":"user","content":"What is Go?"}]}`
	client := &http.Client{}
	defer client.CloseIdleConnections()
	resp, err := client.Post(lm.URL()+"/chat/completions", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)

	alone, err := newLMAlone(lm, 4)
	require.NoError(t, err)
	defer alone.close()
	lm.Reset()
	for range 3 {
		require.NoError(t, alone.call(context.Background()))
	}
	reqs := lm.Requests()
	require.Len(t, reqs, 3)
	for _, r := range reqs {
		assert.Equal(t, body, r.Body)
		assert.Equal(t, "/v1/chat/completions", r.Path)
	}

	alone.url += "-nowhere"
	assert.ErrorContains(t, alone.call(context.Background()), "404")
}
