package program_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

func TestCheckLMName(t *testing.T) {
	for _, name := range []string{"", "fast", "A_z-09", strings.Repeat("x", command.MaxLMNameBytes)} {
		assert.NoError(t, program.CheckLMName("name", name), "%q", name)
	}
	for _, name := range []string{"a b", "a.b", "é", "a/b", "*", ">", strings.Repeat("x", command.MaxLMNameBytes+1)} {
		err := program.CheckLMName("lm", name)
		require.Error(t, err, "%q", name)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
		assert.Contains(t, err.Error(), "lm ")
		assert.Contains(t, err.Error(), "may hold only letters, digits, '_' and '-' (at most 64)")
	}
}

func TestValidateLMChecksTheName(t *testing.T) {
	require.NoError(t, program.ValidateLM(command.LMArgs{Provider: "dummy", Name: "fast"}))
	err := program.ValidateLM(command.LMArgs{Provider: "nope", Name: "a b"})
	require.Error(t, err)
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.Contains(t, err.Error(), `configure_lm: name "a b" may hold only letters, digits, '_' and '-' (at most 64); provider "nope" is unknown`,
		"every bad field at once, the name first, in the worker's words")
}

// TestValidateLMBaseURL: a base_url the worker could not send a request
// to is refused here, CodeInvalidArgument in the worker's words, without
// its credentials; protocol/testdata/base_urls.json has every rule (the
// lmurl package's tests).
func TestValidateLMBaseURL(t *testing.T) {
	for _, ok := range []string{"", "http://127.0.0.1:8000/v1", "https://user:S3CR3T@[::1]/v1"} {
		assert.NoError(t, program.ValidateLM(command.LMArgs{Provider: "openai", Model: "m", BaseURL: ok}), "%q", ok)
	}
	for raw, want := range map[string]string{
		"http://[::1":                    `configure_lm: base_url has an IPv6 address without its closing ']' (write one as http://[::1]:8000/v1)`,
		"http://127.0.0.1:abc/v1":        "configure_lm: base_url has a port that is not a number from 1 to 65535",
		"http://user:S3CR3T@h:65536/v1":  "configure_lm: base_url has a port that is not a number from 1 to 65535",
		"S3CR3T@lm.example/v1":           "configure_lm: base_url is not an http or https URL (write it whole, such as http://localhost:8000/v1)",
		"http://lm.example/S3CR3T v1":    "configure_lm: base_url holds a space or a control character (write a space in the path as %20; remove any other)",
		"http://user:S3/CR3T@lm.example": "configure_lm: base_url has a port that is not a number from 1 to 65535 (percent-encode any '/', '?', '#' or '@' in the URL's credentials)",
	} {
		err := program.ValidateLM(command.LMArgs{Provider: "dummy", BaseURL: raw})
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%q: %v", raw, err)
		assert.EqualError(t, err, want+" (invalid_argument)", "%q", raw)
	}
	err := program.ValidateLM(command.LMArgs{Provider: "openai", BaseURL: "http://h:0", APIKeyEnv: "1X"})
	assert.EqualError(t, err, `configure_lm: model is required for the openai provider; base_url has a port that is not a number from 1 to 65535; `+
		`api_key_env is not an environment variable name (its value is not shown: it may be the key itself) (invalid_argument)`, "in the worker's order")
	err = program.ValidateLM(command.LMArgs{Provider: "openai", Model: "m", APIKeyEnv: "sk-proj-S3CR3T"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "S3CR3T", "a key given where its variable's name belongs is not shown")
}

// TestValidateLMDSPyAdapter: chat and json, json only where the dspy
// engine may run, in the worker's words (python/tests/test_programs.py).
func TestValidateLMDSPyAdapter(t *testing.T) {
	for _, ok := range []command.LMArgs{{Provider: "openai", Model: "m", DSPyAdapter: "json"}, {Provider: "dummy", DSPyAdapter: "chat"},
		{Provider: "openai", Model: "m", Engine: "dspy", DSPyAdapter: "json"}, {Provider: "openai", Model: "m", Engine: "native", DSPyAdapter: "chat"},
		{Provider: "openai", Model: "m", Engine: "native", DSPyAdapter: "json"}} {
		assert.NoError(t, program.ValidateLM(ok), "%+v", ok)
	}
	for _, tc := range []struct {
		args command.LMArgs
		want string
	}{
		{command.LMArgs{Provider: "openai", Model: "m", DSPyAdapter: "yaml"}, `configure_lm: dspy_adapter "yaml" is unknown (known: chat, json, xml, baml)`},
		{command.LMArgs{Provider: "openai", Model: "m", Engine: "native", DSPyAdapter: "baml"}, `configure_lm: dspy_adapter "baml" needs the dspy engine (engine is native)`},
	} {
		err := program.ValidateLM(tc.args)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", err)
		assert.EqualError(t, err, tc.want+" (invalid_argument)")
	}
}

func TestLMName(t *testing.T) {
	for args, want := range map[string]string{
		``:                                    "",
		`{}`:                                  "",
		`{"provider":"dummy"}`:                "",
		`{"name":null}`:                       "",
		`{"name":""}`:                         "",
		`{"name":"fast"}`:                     "fast",
		`{"name":"a","name":"b"}`:             "b", // the last one, as the workers read it
		`{"provider":"dummy","name":"a b"}`:   "a b",
		`{"provider":"dummy","Name":"upper"}`: "", // keys are matched exactly
	} {
		name, ok := program.LMName(json.RawMessage(args))
		assert.True(t, ok, args)
		assert.Equal(t, want, name, args)
	}
	for _, args := range []string{`[]`, `"x"`, `{"name":3}`, `{"name":{}}`, `{`} {
		_, ok := program.LMName(json.RawMessage(args))
		assert.False(t, ok, args)
	}
}

func TestBroadcastKey(t *testing.T) {
	for _, c := range []struct{ command, args, want string }{
		{command.ConfigureLM, `{"provider":"dummy"}`, "configure_lm"},
		{command.ConfigureLM, `{"provider":"dummy","name":""}`, "configure_lm"},
		{command.ConfigureLM, `{"provider":"dummy","name":"fast"}`, "configure_lm.fast"},
		{command.ConfigureLM, `{"name":3}`, "configure_lm."}, // unreadable: a key no valid one has
		{command.ConfigureLM, `[1]`, "configure_lm."},
		{"reset", `{"name":"fast"}`, "reset"}, // only configure_lm has names
		{"custom", ``, "custom"},
	} {
		assert.Equal(t, c.want, program.BroadcastKey(c.command, json.RawMessage(c.args)), "%s %s", c.command, c.args)
	}
}

func TestLMNotFound(t *testing.T) {
	err := program.LMNotFound("fast")
	assert.Equal(t, adapter.CodeNotFound, adapter.CodeOf(err))
	assert.EqualError(t, err, `LM "fast" is not configured (configure_lm with "name": "fast" sets it) (not_found)`)
	var e *adapter.Error
	require.ErrorAs(t, err, &e)
	require.NotNil(t, e.Remote)
	assert.Equal(t, command.LMNotFoundType, e.Remote.Type, "the type the Python worker reports")
}
