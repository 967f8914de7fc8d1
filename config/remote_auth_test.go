package config_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/config"
)

// The embedded server may listen beyond loopback only with users: one
// line names the setting to set.
func TestEmbeddedBeyondLoopbackNeedsUsers(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:4222", "[::]:4222", "10.1.2.3:4222", ":4222", "nats.example:4222"} {
		_, err := load(t, config.LoadOptions{Set: map[string]any{"remote.embedded.enabled": true, "remote.embedded.listen": listen}})
		require.Error(t, err, listen)
		assert.ErrorIs(t, err, config.ErrInvalid)
		assert.Contains(t, err.Error(), "remote.embedded.users_file: is required to listen beyond loopback on "+listen, listen)
		assert.NotContains(t, err.Error(), "\n")
	}
	for _, listen := range []string{"127.0.0.1:4222", "[::1]:4222", "localhost:4222"} {
		_, err := load(t, config.LoadOptions{Set: map[string]any{"remote.embedded.enabled": true, "remote.embedded.listen": listen}})
		assert.NoError(t, err, listen)
	}
	_, err := load(t, config.LoadOptions{Set: map[string]any{"remote.embedded.enabled": true, "remote.embedded.listen": "0.0.0.0:4222",
		"remote.embedded.users_file": "/etc/dspgo/nats-users"}})
	assert.NoError(t, err)
	_, err = load(t, config.LoadOptions{Set: map[string]any{"remote.embedded.listen": "0.0.0.0:4222"}})
	assert.NoError(t, err, "no embedded server, nothing listens")
}

// The embedded server's port is a number from 0 (any free port) to
// 65535, refused when the configuration loads rather than when the
// server starts.
func TestEmbeddedListenPort(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "127.0.0.1:65535", "[::1]:4222"} {
		_, err := load(t, config.LoadOptions{Set: map[string]any{"remote.embedded.listen": listen}})
		assert.NoError(t, err, listen)
	}
	for _, listen := range []string{"127.0.0.1:abc", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:04222", "127.0.0.1:"} {
		_, err := load(t, config.LoadOptions{Set: map[string]any{"remote.embedded.listen": listen}})
		require.Error(t, err, listen)
		assert.Contains(t, err.Error(), "remote.embedded.listen: port", listen)
		assert.Contains(t, err.Error(), "must be a number from 0 (any free port) to 65535", listen)
	}
}

// One way to authenticate, each with what it needs; no message shows a
// secret.
func TestRemoteAuthKeys(t *testing.T) {
	for _, c := range []struct {
		set  map[string]any
		want string // "" means valid
	}{
		{map[string]any{"remote.user": "alice", "remote.password_env": "NATS_PASSWORD"}, ""},
		{map[string]any{"remote.user": "alice", "remote.password_file": "/run/secrets/nats"}, ""},
		{map[string]any{"remote.nkey_seed_file": "/run/secrets/seed"}, ""},
		{map[string]any{"remote.token_file": "/run/secrets/token"}, ""},
		{map[string]any{"remote.creds_file": "/etc/host.creds", "remote.inbox_prefix": "_INBOX.host-a"}, ""},
		{map[string]any{"remote.user": "alice"}, "remote.password_env: (or remote.password_file) is required with remote.user"},
		{map[string]any{"remote.password_env": "NATS_PASSWORD"}, "remote.user: is required with remote.password_env"},
		{map[string]any{"remote.user": "alice", "remote.password_env": "P", "remote.password_file": "/p"}, "remote.password_file: give remote.password_env or remote.password_file, not both"},
		{map[string]any{"remote.user": "al.ice", "remote.password_env": "P"}, `remote.user: "al.ice" may hold only`},
		{map[string]any{"remote.creds_file": "/c", "remote.user": "alice", "remote.password_env": "P"}, "give one way to authenticate to NATS, not remote.creds_file and remote.user"},
		{map[string]any{"remote.token_env": "T", "remote.token_file": "/t"}, "give one way to authenticate to NATS, not remote.token_env and remote.token_file"},
		{map[string]any{"remote.token_env": "NOT-A-NAME"}, `remote.token_env: is not an environment variable name`},
		// A secret written where its variable's name belongs is not shown.
		{map[string]any{"remote.token_env": "S3CR3T-token"}, `remote.token_env: is not an environment variable name`},
		{map[string]any{"remote.user": "alice", "remote.password_env": "hunter2-S3CR3T!"}, `remote.password_env: is not an environment variable name`},
		{map[string]any{"lm.api_key_env": "sk-proj-S3CR3T"}, `lm.api_key_env: is not an environment variable name`},
		{map[string]any{"lm.api_key_env": "MY_OPENAI_KEY"}, ""},
		{map[string]any{"remote.inbox_prefix": "_I.alice"}, `remote.inbox_prefix: "_I.alice" must be _INBOX.<token>`},
		{map[string]any{"remote.lm_base_urls": []string{"ftp://x"}}, "remote.lm_base_urls: entry 1 is not an http or https URL"},
		{map[string]any{"remote.lm_base_urls": []string{"https://api.openai.com/v1", "https://u:S3CR3T@lm.example/v1"}}, "remote.lm_base_urls: entry 2 holds credentials"},
		{map[string]any{"remote.lm_base_urls": []string{"https://lm.example:99999/v1"}}, "remote.lm_base_urls: entry 1 has a port that is not a number from 1 to 65535"},
		{map[string]any{"remote.lm_base_urls": []string{"https://u:S3CR3T@lm.example:x/v1"}}, "remote.lm_base_urls: entry 1 has a port that is not a number from 1 to 65535"},
		{map[string]any{"remote.embedded.tls.ca_file": "/ca.pem"}, "remote.embedded.tls.cert_file: is required with remote.embedded.tls.ca_file"},
		{map[string]any{"remote.embedded.tls.cert_file": "/c.pem"}, "remote.embedded.tls.key_file: is required with remote.embedded.tls.cert_file"},
	} {
		_, err := load(t, config.LoadOptions{Set: c.set})
		if c.want == "" {
			assert.NoError(t, err, "%v", c.set)
			continue
		}
		require.Error(t, err, "%v", c.set)
		assert.Contains(t, err.Error(), c.want)
		assert.NotContains(t, err.Error(), "3CR3")
	}
}

// config explain shows where the secrets are (a variable, a file), never
// a secret: none is read by Load.
func TestExplainShowsNoRemoteSecret(t *testing.T) {
	cfg, err := load(t, config.LoadOptions{Environ: env("NATS_PASSWORD=S3CR3T-password", "DSPGO_REMOTE__USER=alice",
		"DSPGO_REMOTE__PASSWORD_ENV=NATS_PASSWORD", "DSPGO_REMOTE__LM_BASE_URLS=https://lm.example/v1,https://api.openai.com/v1")})
	require.NoError(t, err)
	text := cfg.ExplainText()
	assert.NotContains(t, text, "3CR3")
	assert.Regexp(t, `(?m)^remote\.password_env\s+NATS_PASSWORD\s+env:DSPGO_REMOTE__PASSWORD_ENV$`, text)
	assert.Equal(t, []string{"https://lm.example/v1", "https://api.openai.com/v1"}, cfg.Remote.LMBaseURLs)
	assert.True(t, strings.Contains(text, "remote.lm_base_urls"))
}
