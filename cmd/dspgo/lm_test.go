package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/internal/testutil"
	pyworker "github.com/dspgo/dspgo/python"
)

// dummyLine is what dspgo run says when the default dummy LM answered on
// the mock chosen by --adapter.
const dummyLine = `dspgo: answered by adapter "mock" (set by flag:--adapter) with the offline dummy LM (lm.provider set by default); set lm.provider to use a real model`

// testKey is the API key the tests give the workers; it must never show.
const testKey = "sk-test-do-not-print"

// lmServer is an OpenAI-compatible endpoint on 127.0.0.1: it answers
// each chat completion with status, and with answer in the ChatAdapter
// format when status is 200. authorizations returns the Authorization
// header of each request.
func lmServer(t *testing.T, status int, answer string) (baseURL string, authorizations func() []string) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Model string `json:"model"`
		}
		if r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&body) != nil || body.Model != "test-model" {
			http.Error(w, `{"error":{"message":"not a chat completion for test-model"}}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if status != http.StatusOK {
			w.WriteHeader(status)
			// A careless server echoes the key; the worker scrubs it.
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": "invalid key " + testKey}})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "chat.completion", "model": body.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": "[[ ## answer ## ]]\n" + answer + "\n\n[[ ## completed ## ]]"}}}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1", func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// realLM is the environment configuring the test server's model, its key
// in TEST_LM_KEY, passed to the workers by python.pass_env.
func realLM(baseURL string) []string {
	return []string{"DSPGO_LM__PROVIDER=openai", "DSPGO_LM__MODEL=test-model", "DSPGO_LM__BASE_URL=" + baseURL,
		"DSPGO_LM__API_KEY_ENV=TEST_LM_KEY", "DSPGO_LM__ENGINE=native", "DSPGO_PYTHON__PASS_ENV=PATH,TEST_LM_KEY",
		"TEST_LM_KEY=" + testKey, "PATH=" + os.Getenv("PATH")}
}

func TestRunSaysWhenTheDummyAnswered(t *testing.T) {
	r := cli(t, "", nil, "run", "--adapter", "mock", "--signature", "question -> answer", "--input", "question=Why?")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Equal(t, dummyLine+"\n", r.stderr, "one line")
	var out map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), "stdout stays clean JSON")

	r = cli(t, "", []string{"DSPGO_LM__MODEL=m", "DSPGO_ADAPTER=python_port"}, "run", "--lm-provider", "dummy", "--signature", "q -> a", "--input", "q=x")
	require.Equal(t, 0, r.status, r.stderr)
	assert.Equal(t, `dspgo: warning: "python_port" is deprecated; use "port"`+"\n"+
		`dspgo: answered by adapter "port" (set by env:DSPGO_ADAPTER, as "python_port") with the offline dummy LM (lm.provider set by flag:--lm-provider); set lm.provider to use a real model`+"\n", r.stderr)

	r = cli(t, "not json\n", nil, "run", "--adapter", "mock", "--signature", "q -> a")
	assert.Equal(t, 1, r.status)
	assert.Equal(t, "dspgo: 1 of 1 rows failed\n", r.stderr, "no row answered, so nothing about the dummy")
}

// With a real model configured, the request reaches it with the key, and
// run says which model answered.
func TestRunOnARealLM(t *testing.T) {
	baseURL, auth := lmServer(t, http.StatusOK, "Go is a programming language.")
	r := cli(t, "", realLM(baseURL), "run", "--adapter", "port", "--signature", "question -> answer", "--input", "question=What is Go?")
	require.Equal(t, 0, r.status, r.stderr)
	assert.JSONEq(t, `{"row":1,"outputs":{"answer":"Go is a programming language."}}`, r.stdout)
	assert.Equal(t, `dspgo: answered by adapter "port" (set by flag:--adapter) with LM openai model "test-model" (lm.provider set by env:DSPGO_LM__PROVIDER)`+"\n", r.stderr)
	assert.NotContains(t, r.stderr, baseURL, "no address: it may hold credentials")
	assert.Equal(t, []string{"Bearer " + testKey}, auth())
}

// A remote caller that sets no lm.* leaves the hosts' LM; run asks a
// worker which one answered.
func TestRunSaysWhenTheHostsRunTheDummy(t *testing.T) {
	testutil.VerifyNoChildren(t)
	addr := freeAddr(t)
	h := startWorkers(t, "--adapter", "mock", "--embedded-nats", "--embedded-listen", addr, "--host-id", "h")
	r := cli(t, "", nil, "run", "--adapter", "remote", "--remote-url", "nats://"+addr, "--signature", "q -> a", "--input", "q=x")
	assert.Equal(t, 0, r.status, r.stderr)
	assert.Equal(t, `dspgo: answered by adapter "remote" (set by flag:--adapter) with the offline dummy LM (the workers' own; no lm.* key is set here); set lm.provider to use a real model`+"\n", r.stderr)
	assert.Equal(t, 0, h.stop(), h.out.String())

	r = cli(t, "", nil, "run", "--adapter", "remote", "--remote-url", "nats://"+freeAddr(t), "--signature", "q -> a", "--input", "q=x")
	assert.Equal(t, 1, r.status, "no host there")
	assert.Contains(t, r.stderr, "(unavailable); start a worker host with: dspgo workers --embedded-nats (or set remote.url)")
}

// An LM the mock does not run fails the CLI the same way as the library:
// bad usage, one line naming the setting and its source.
func TestARealLMOnTheMockIsRefused(t *testing.T) {
	want := `adapter "mock" runs only the dummy LM; lm.provider "openai" (set by flag:--lm-provider) needs adapter pool, port or remote`
	r := cli(t, "", nil, "run", "--adapter", "mock", "--lm-provider", "openai", "--lm-model", "m", "--signature", "q -> a", "--input", "q=x")
	assert.Equal(t, 2, r.status)
	assert.Contains(t, r.stderr, want)
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
	assert.Empty(t, r.stdout)

	r = cli(t, "", nil, "workers", "--adapter", "mock", "--lm-provider", "openai", "--lm-model", "m", "--embedded-nats", "--embedded-listen", freeAddr(t))
	assert.Equal(t, 2, r.status, "a worker host's backend gets the LM too")
	assert.Contains(t, r.stderr, want)
}

func TestDoctor(t *testing.T) {
	r := cli(t, "", nil, "doctor")
	require.Equal(t, 0, r.status, r.stdout+r.stderr)
	assert.Regexp(t, `(?m)^ok\s+python\s+/`, r.stdout)
	assert.Regexp(t, `(?m)^ok\s+worker\s+started and answered its init ping`, r.stdout)
	// The test interpreter has no dspy.
	assert.Regexp(t, `(?m)^ok\s+dspy\s+not installed: optional; the native engine runs programs \(tested with dspy `+
		regexp.QuoteMeta(pyworker.TestedDSPyVersion())+`\)$`, r.stdout)
	assert.Regexp(t, `(?m)^ok\s+lm\s+dummy provider \(lm.provider set by default\)`, r.stdout)

	r = cli(t, "", []string{"DSPGO_LM__ENGINE=dspy"}, "doctor")
	assert.Equal(t, 1, r.status, "the dspy engine needs dspy")
	assert.Regexp(t, `(?m)^FAIL\s+dspy\s+not installed, but lm.engine is dspy \(set by env:DSPGO_LM__ENGINE\)`, r.stdout)
	assert.Contains(t, r.stdout, "-m pip install dspy=="+pyworker.TestedDSPyVersion())

	// An adapter that is not registered is bad usage, not a passing check.
	r = cli(t, "", nil, "doctor", "--adapter", "nosuch")
	assert.Equal(t, 2, r.status, r.stdout+r.stderr)
	assert.Contains(t, r.stderr, `adapter "nosuch" (set by flag:--adapter) is not registered`)
	assert.Empty(t, r.stdout, "no check runs")

	// An adapter that runs no Python worker here needs none: the backend
	// is opened and pinged instead.
	r = cli(t, "", nil, "doctor", "--adapter", "mock", "--python", "no-such-python")
	require.Equal(t, 0, r.status, r.stdout+r.stderr)
	assert.Regexp(t, `(?m)^ok\s+python\s+not needed: adapter "mock" runs no Python worker here$`, r.stdout)
	assert.Regexp(t, `(?m)^ok\s+backend\s+adapter "mock" opened and answered a ping`, r.stdout)
	assert.NotRegexp(t, `(?m)^\S+\s+(worker|dspy)\s`, r.stdout)
	r = cli(t, "", []string{"DSPGO_REMOTE__URL=nats://" + freeAddr(t)}, "doctor", "--adapter", "remote")
	assert.Equal(t, 1, r.status, "no worker host to reach")
	assert.Regexp(t, `(?m)^FAIL\s+backend\s+`, r.stdout)
	assert.Contains(t, r.stdout, "fix:    start a worker host (dspgo workers)")

	r = cli(t, "", nil, "doctor", "--python", "no-such-python")
	assert.Equal(t, 1, r.status)
	assert.Regexp(t, `(?m)^FAIL\s+python`, r.stdout)
	assert.Contains(t, r.stdout, "fix:")

	// An absolute path is run, not trusted: a missing file and an
	// interpreter too old fail the python check, and the checks that
	// need an interpreter are not run.
	dir := t.TempDir()
	old := filepath.Join(dir, "python3.8")
	require.NoError(t, os.WriteFile(old, []byte("#!/bin/sh\necho \"$0\"\necho 3.8.10\nexit 3\n"), 0o700))
	for path, want := range map[string]string{
		filepath.Join(dir, "missing"): `running .*missing: .*no such file or directory`,
		old:                           `.*python3\.8 is Python 3\.8\.10, older than 3\.9`,
	} {
		r = cli(t, "", nil, "doctor", "--python", path)
		assert.Equal(t, 1, r.status)
		assert.Regexp(t, `(?m)^FAIL\s+python\s+`+want, r.stdout)
		assert.NotRegexp(t, `(?m)^\S+\s+(worker|dspy)\s`, r.stdout)
	}
}

// doctor opens the configured backend (a pool, started lazily: one worker)
// and one worker verifies the LM; the key never shows.
func TestDoctorChecksTheConfiguredLM(t *testing.T) {
	baseURL, auth := lmServer(t, http.StatusOK, "OK")
	r := cli(t, "", append(realLM(baseURL), "DSPGO_POOL__SIZE=4"), "doctor")
	require.Equal(t, 0, r.status, r.stdout+r.stderr)
	assert.Regexp(t, `(?m)^ok\s+lm\s+openai model "test-model" answered through adapter "pool" \(lm.provider set by env:DSPGO_LM__PROVIDER\)$`, r.stdout)
	assert.Equal(t, []string{"Bearer " + testKey}, auth(), "one request, from one worker")
	assert.NotContains(t, r.stdout+r.stderr, testKey)

	baseURL, _ = lmServer(t, http.StatusUnauthorized, "")
	r = cli(t, "", realLM(baseURL), "doctor", "--adapter", "port")
	assert.Equal(t, 1, r.status)
	assert.Regexp(t, `(?m)^FAIL\s+lm\s+.*\(failed_precondition\)$`, r.stdout)
	assert.Contains(t, r.stdout, "fix:    check lm.base_url and lm.model")
	assert.NotContains(t, r.stdout+r.stderr, testKey, "the key the server echoed is scrubbed")

	r = cli(t, "", realLM(baseURL), "doctor", "--adapter", "mock")
	assert.Equal(t, 1, r.status)
	assert.Regexp(t, `(?m)^FAIL\s+lm\s+open: adapter "mock" runs only the dummy LM; lm.provider "openai" \(set by env:DSPGO_LM__PROVIDER\) needs adapter pool, port or remote`, r.stdout)
}

// fakePython writes an executable script standing in for the interpreter.
func fakePython(t *testing.T, script string) string {
	path := filepath.Join(t.TempDir(), "python")
	require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755))
	return path
}

// The dspy probe's own logic, with interpreters that answer as a given
// dspy would.
func TestDoctorDSPyProbe(t *testing.T) {
	testutil.VerifyNoChildren(t)
	tested := pyworker.TestedDSPyVersion()
	require.NotEmpty(t, tested)
	cases := []struct {
		name, script, engine string
		status, detail       string
	}{
		{"tested", "echo " + tested, "auto", statusOK, "dspy " + tested + ", the tested version (the dspy engine is available)"},
		{"other", "echo 2.5.0", "auto", statusWarn, "dspy 2.5.0 is not the tested version " + tested + ": the dspy engine may behave differently"},
		{"missing", "exit 3", "auto", statusOK, "not installed: optional; the native engine runs programs (tested with dspy " + tested + ")"},
		{"missing but needed", "exit 3", "dspy", statusFail, "not installed, but lm.engine is dspy (set by option); tested with dspy " + tested},
		{"broken", "echo 'Traceback (most recent call last):' >&2; echo 'ImportError: cannot import name x' >&2; exit 1", "auto",
			statusWarn, "failed: ImportError: cannot import name x (failed_precondition)"},
		{"broken and needed", "echo 'ImportError: y' >&2; exit 1", "dspy", statusFail, "failed: ImportError: y (failed_precondition)"},
		{"no version", "echo", "auto", statusWarn, "printed no version"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load(config.LoadOptions{Dir: t.TempDir(), Environ: func() []string { return nil }, Set: map[string]any{"lm.engine": tc.engine}})
			require.NoError(t, err)
			c := checkDSPy(t.Context(), cfg, fakePython(t, tc.script), 30*time.Second)
			assert.Equal(t, tc.status, c.status)
			assert.Contains(t, c.detail, tc.detail)
			if tc.status != statusOK {
				assert.Contains(t, c.fix, "pip install dspy=="+tested)
			}
		})
	}

	t.Run("bounded", func(t *testing.T) {
		_, err := dspyVersion(t.Context(), fakePython(t, "exec sleep 60"), nil, 100*time.Millisecond)
		assert.Equal(t, adapter.CodeDeadlineExceeded, adapter.CodeOf(err))
		assert.ErrorContains(t, err, "did not finish within 100ms")
	})

	t.Run("the worker's environment", func(t *testing.T) {
		cfg, err := config.Load(config.LoadOptions{Dir: t.TempDir(), Set: map[string]any{"python.pass_env": []string{"DSPY_PROBE_SEEN"}},
			Environ: func() []string { return []string{"DSPY_PROBE_SEEN=3.0.0", "NOT_PASSED=1"} }})
		require.NoError(t, err)
		v, err := dspyVersion(t.Context(), fakePython(t, `echo "$DSPY_PROBE_SEEN${NOT_PASSED:+ leaked}"`), workerEnv(cfg), 30*time.Second)
		require.NoError(t, err)
		assert.Equal(t, "3.0.0", v, "python.pass_env's variables, and only those")
	})

	t.Run("the real interpreter has no dspy", func(t *testing.T) {
		cfg, err := config.Load(config.LoadOptions{Dir: t.TempDir(), Environ: func() []string { return []string{"PATH=" + os.Getenv("PATH")} }})
		require.NoError(t, err)
		_, err = dspyVersion(context.Background(), testutil.Python(t), workerEnv(cfg), dspyProbeTimeout)
		assert.ErrorIs(t, err, errNoDSPy)
	})
}
