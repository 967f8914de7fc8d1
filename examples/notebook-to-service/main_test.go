package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/internal/lmtest"
	"github.com/dspgo/dspgo/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	keyEnv = "NOTEBOOK_TEST_KEY"
	// model is the test LM server's model that answers each input with
	// the outputs of the demo most like it (internal/lmtest).
	model = "test-model+needs_demos"
)

// The walkthrough end to end: the notebook, run by the real DSPy against
// the test LM server, optimizes and saves the program; the service loads
// the file and serves it on a pool of Python workers, with either engine,
// and the saved demos and instructions reach the LM's prompt.
func TestNotebookToService(t *testing.T) {
	python := testutil.DSPyPython(t)
	lm := lmtest.New(t, lmtest.Options{})
	dir := t.TempDir()
	programFile := filepath.Join(dir, "program.json")

	notebook := exec.CommandContext(t.Context(), python, "notebook.py")
	notebook.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"LM_MODEL=openai/" + model, "OPENAI_BASE_URL=" + lm.URL(), "OPENAI_API_KEY=sk-notebook",
		"PROGRAM_PATH=" + programFile, "DSPY_CACHEDIR=" + filepath.Join(dir, "cache"),
		"LITELLM_LOCAL_MODEL_COST_MAP=True",
	}
	out, err := notebook.CombinedOutput()
	require.NoError(t, err, "%s", out)
	// The test model answers from the prompt's demos only: the
	// optimization is what makes the program right.
	assert.Contains(t, string(out), "score before: 33.33\n")
	assert.Contains(t, string(out), "score after: 100.0\n")
	assert.Contains(t, string(out), "saved "+programFile+" with 6 demos")

	var saved struct {
		Predict struct {
			Demos []map[string]any `json:"demos"`
		} `json:"predict"`
	}
	data, err := os.ReadFile(programFile)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &saved))
	require.Len(t, saved.Predict.Demos, 6)

	for _, engine := range []string{"native", "dspy"} {
		t.Run(engine, func(t *testing.T) {
			testutil.VerifyNoChildren(t)
			lm.Reset()
			ctx, cancel := context.WithCancel(t.Context())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			opts := config.LoadOptions{Dir: t.TempDir(), Environ: func() []string { return []string{keyEnv + "=sk-service"} },
				Set: map[string]any{
					"adapter": "pool", "pool.size": 1, "pool.lazy": false,
					"python.interpreter": python, "python.worker_dir": testutil.PythonDir(), "python.pass_env": []string{keyEnv},
					"lm.provider": "openai", "lm.engine": engine, "lm.model": model, "lm.base_url": lm.URL(), "lm.api_key_env": keyEnv,
				}}
			done := make(chan error, 1)
			go func() { done <- run(ctx, programFile, ln, opts) }()
			url := "http://" + ln.Addr().String() + "/triage"

			for ticket, team := range map[string]string{
				"Twice charged on this invoice: my March one.": "billing",
				"Export crashes the app again.":                "engineering",
				"Change my account email address.":             "accounts",
			} {
				resp := post(t, url, `{"ticket": "`+ticket+`"}`)
				require.Equal(t, http.StatusOK, resp.code, resp.body)
				var got struct {
					Team     string `json:"team"`
					Priority *int   `json:"priority"`
				}
				require.NoError(t, json.Unmarshal([]byte(resp.body), &got), resp.body)
				assert.Equal(t, team, got.Team, ticket)
				assert.NotNil(t, got.Priority, resp.body)
			}

			reqs := lm.Requests()
			require.NotEmpty(t, reqs)
			var prompt strings.Builder
			for _, m := range reqs[len(reqs)-1].Messages {
				prompt.WriteString(m.Content)
			}
			assert.Contains(t, prompt.String(), "Route a customer's support ticket to the team that can resolve it.")
			for _, demo := range saved.Predict.Demos {
				assert.Contains(t, prompt.String(), demo["ticket"], "each saved demo is in the prompt")
			}
			assert.Equal(t, "Bearer sk-service", reqs[len(reqs)-1].Authorization)

			bad := post(t, url, `{"question": "?"}`)
			assert.Equal(t, http.StatusBadRequest, bad.code, bad.body)

			cancel()
			require.NoError(t, <-done)
		})
	}
}

type reply struct {
	code int
	body string
}

func post(t *testing.T, url, body string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, err = io.Copy(&b, resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, b.String()}
}
