package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/registry"
)

// lmRequest is what the test LM server saw of one chat completion.
type lmRequest struct {
	Model, Authorization string
}

// chatServer is an OpenAI-compatible endpoint on 127.0.0.1 (base URL
// url+"/v1") answering every chat completion with answer in the
// ChatAdapter format; requests returns what it received.
func chatServer(t *testing.T, answer string) (url string, requests func() []lmRequest) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []lmRequest
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Model string `json:"model"`
		}
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, `{"error":{"message":"not a chat completion"}}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, lmRequest{Model: body.Model, Authorization: r.Header.Get("Authorization")})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "model": body.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": "[[ ## answer ## ]]\n" + answer + "\n\n[[ ## completed ## ]]"}}},
		})
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []lmRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]lmRequest(nil), got...)
	}
}

// The README's "backend from configuration" code, with a real model
// configured in dspgo.yaml: the request reaches that model, with the key
// from the variable lm.api_key_env names, passed by python.pass_env.
func TestBackendFromConfigurationCallsTheConfiguredLM(t *testing.T) {
	testutil.VerifyNoChildren(t)
	url, requests := chatServer(t, "Go is a programming language.")
	dir := t.TempDir()
	file := fmt.Sprintf(`adapter: port
log: {level: error}
lm:
  provider: openai
  model: test-model
  base_url: %q
  api_key_env: TEST_LM_KEY
  engine: native
python:
  interpreter: %q
  worker_dir: %q
  pass_env: [PATH, TEST_LM_KEY]
`, url+"/v1", testutil.Python(t), testutil.PythonDir())
	require.NoError(t, os.WriteFile(filepath.Join(dir, config.DefaultFile), []byte(file), 0o600))
	environ := func() []string { return []string{"TEST_LM_KEY=sk-test-secret", "PATH=" + os.Getenv("PATH")} }
	ctx := t.Context()

	cfg, err := config.Load(config.LoadOptions{Dir: dir, Environ: environ})
	require.NoError(t, err)
	reg, err := registry.New(registry.Builtin()...)
	require.NoError(t, err)
	backend, why, err := reg.Open(ctx, cfg)
	require.NoError(t, err)
	defer backend.Close(context.Background())
	client := dspgo.NewClient(backend)
	prog, err := client.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
	require.NoError(t, err)
	out, err := client.Execute(ctx, prog.ID, map[string]any{"question": "What is Go?"})
	require.NoError(t, err)

	assert.Equal(t, "Go is a programming language.", out["answer"], "the configured model answered, not the dummy")
	assert.Equal(t, []lmRequest{{Model: "test-model", Authorization: "Bearer sk-test-secret"}}, requests())
	assert.Equal(t, "port", why.Name)
	assert.Equal(t, "openai", why.LM)
	assert.Equal(t, "file:"+filepath.Join(dir, config.DefaultFile), why.LMSource)
}

// The mock and the memory adapter run only the dummy LM: another provider
// fails to open, the same way on plain Go and under fx, naming the
// setting and the layer that set it.
func TestDummyOnlyAdaptersRefuseAnotherLM(t *testing.T) {
	reg, err := registry.New(registry.Builtin()...)
	require.NoError(t, err)
	dir := t.TempDir()
	path := filepath.Join(dir, config.DefaultFile)
	require.NoError(t, os.WriteFile(path, []byte("lm:\n  provider: openai\n  model: gpt-4o-mini\n"), 0o600))
	for _, name := range []string{"mock", "memory"} {
		t.Run(name, func(t *testing.T) {
			want := fmt.Sprintf(`adapter %q runs only the dummy LM; lm.provider "openai" (set by file:%s) needs adapter pool or port`, name, path)
			opts := config.LoadOptions{Dir: dir, Environ: noEnv, Set: map[string]any{"adapter": name}}
			cfg, err := config.Load(opts)
			require.NoError(t, err)
			a, _, err := reg.Open(t.Context(), cfg)
			assert.Nil(t, a)
			require.Error(t, err)
			assert.ErrorIs(t, err, registry.ErrLMNotSupported)
			assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err))
			assert.Contains(t, err.Error(), want)

			app := fx.New(fx.Supply(opts), config.Module, registry.Module, fx.NopLogger, fx.Invoke(func(*dspgo.Client) {}))
			require.Error(t, app.Err())
			assert.ErrorIs(t, app.Err(), registry.ErrLMNotSupported)
			assert.Contains(t, app.Err().Error(), want, "fx fails the same way")
		})
	}
}

// examples/dspgo.yaml keeps the rule: its mock and memory environments
// inherit the dummy LM, its production one pairs openai with a pool, and
// putting the mock under production's LM fails.
func TestExampleConfigOpensItsDummyEnvironments(t *testing.T) {
	reg, err := registry.New(registry.Builtin()...)
	require.NoError(t, err)
	path := filepath.Join(testutilRoot(), "examples", "dspgo.yaml")
	for _, env := range []string{"dev", "test", "protocol"} {
		cfg, err := config.Load(config.LoadOptions{Files: []string{path}, Env: env, Environ: noEnv})
		require.NoError(t, err)
		a, res, err := reg.Open(t.Context(), cfg)
		require.NoError(t, err, env)
		assert.Equal(t, "dummy", res.LM, env)
		assert.Equal(t, "file:"+path, res.LMSource, env)
		require.NoError(t, a.Close(context.Background()))
	}
	cfg, err := config.Load(config.LoadOptions{Files: []string{path}, Env: "prod", Environ: noEnv, Set: map[string]any{"adapter": "mock"}})
	require.NoError(t, err)
	_, _, err = reg.Open(t.Context(), cfg)
	assert.ErrorContains(t, err, `lm.provider "openai" (set by environment:prod) needs adapter pool or port`)
}

// An adapter that refuses the configured LM is closed, and the error
// keeps its code and names the lm.* settings with their sources.
func TestOpenClosesAnAdapterThatRefusesTheLM(t *testing.T) {
	var made *mock.Adapter
	reg, err := registry.New(registry.Factory{Name: "strict", Open: func(context.Context, *config.Config) (adapter.Adapter, error) {
		made = mock.New(mock.Options{Name: "strict"}) // the mock's handler refuses openai itself
		return made, nil
	}})
	require.NoError(t, err)
	cfg, err := config.Load(config.LoadOptions{Dir: t.TempDir(), Environ: func() []string { return []string{"DSPGO_LM__MODEL=m"} },
		Set: map[string]any{"adapter": "strict", "lm.provider": "openai"}})
	require.NoError(t, err)
	a, _, err := reg.Open(t.Context(), cfg)
	assert.Nil(t, a)
	require.Error(t, err)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "the adapter's own code")
	assert.Contains(t, err.Error(), `adapter "strict" set by option refused the configured LM (lm.model "m" (set by env:DSPGO_LM__MODEL), lm.provider "openai" (set by option))`)
	_, err = made.Call(context.Background(), adapter.Request{Command: "ping"})
	assert.ErrorIs(t, err, adapter.ErrClosed, "Open closed the adapter it could not configure")
}

// TestLMConfigCarriesTheDSPyAdapter: lm.dspy_adapter reaches the LM
// configuration Open applies; its default, chat, is left unset there.
func TestLMConfigCarriesTheDSPyAdapter(t *testing.T) {
	assert.Equal(t, command.DSPyAdapters, config.DSPyAdapters, "the configuration takes what the command set names")
	assert.Equal(t, command.NativeDSPyAdapters, config.NativeDSPyAdapters)
	for set, want := range map[string]string{"json": "json", "xml": "xml", "baml": "baml", "chat": ""} {
		cfg, err := config.Load(config.LoadOptions{Set: map[string]any{"lm.provider": "openai", "lm.model": "m", "lm.dspy_adapter": set}})
		require.NoError(t, err)
		assert.Equal(t, want, registry.LMConfig(cfg).DSPyAdapter, set)
	}
	_, err := config.Load(config.LoadOptions{Set: map[string]any{"lm.engine": "native", "lm.dspy_adapter": "json"}})
	assert.NoError(t, err, "the native engine runs JSONAdapter's prompts")
	_, err = config.Load(config.LoadOptions{Set: map[string]any{"lm.engine": "native", "lm.dspy_adapter": "xml"}})
	assert.ErrorContains(t, err, "lm.dspy_adapter: xml needs the dspy engine (lm.engine is native)")
	_, err = config.Load(config.LoadOptions{Set: map[string]any{"lm.dspy_adapter": "yaml"}})
	assert.ErrorContains(t, err, `lm.dspy_adapter: "yaml" is not one of chat, json, xml, baml`)
}
