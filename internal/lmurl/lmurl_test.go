package lmurl_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/internal/lmurl"
	"github.com/dspgo/dspgo/internal/testutil"
)

// baseURLCase is one case of protocol/testdata/base_urls.json, which the
// Python worker's tests check too.
type baseURLCase struct {
	URL     string `json:"url"`
	Problem string `json:"problem"`
	Note    string `json:"note"`
}

// TestBaseURLVectors: every base URL of protocol/testdata/base_urls.json
// has its problem, or none: the same as in the Python worker.
func TestBaseURLVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "protocol", "testdata", "base_urls.json"))
	require.NoError(t, err)
	var v struct {
		Cases []baseURLCase `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(data, &v))
	require.NotEmpty(t, v.Cases)
	fine := 0
	for _, c := range v.Cases {
		assert.Equal(t, c.Problem, lmurl.Problem(c.URL), "%q (%s)", c.URL, c.Note)
		if c.Problem == "" {
			fine++
		}
	}
	assert.Positive(t, fine, "some cases are fine")
	assert.Less(t, fine, len(v.Cases), "some cases are not")
}

// TestProblemNeverQuotesTheURL: no part of a bad URL's credentials, host
// or port is in its problem.
func TestProblemNeverQuotesTheURL(t *testing.T) {
	for _, raw := range []string{
		"http://user:S3CR3T@h:9x/v1", "http://user:S3/CR3T@h/v1", "http://S3CR3T/v1 x",
		"http://user:S3CR3T@[::1/v1", "http://user:S3CR3T@/v1", "S3CR3T@h",
	} {
		problem := lmurl.Problem(raw)
		require.NotEmpty(t, problem, raw)
		assert.False(t, strings.Contains(problem, "S3") || strings.Contains(problem, "CR3T"), "%q: %s", raw, problem)
	}
}
