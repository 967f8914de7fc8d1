package remoteconfig_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/adapters/remote/remoteconfig"
	"github.com/dspgo/dspgo/config"
)

// freePort is a port on 127.0.0.1 nobody listens on now.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// A host that runs the embedded server with a users file, and a caller,
// authenticate from configuration: the host's password from a variable,
// the caller's from a file. Each gets its own inbox; a wrong password or
// an unset variable fails naming the keys, never showing a secret.
func TestConnectAuthenticatesFromConfiguration(t *testing.T) {
	dir := t.TempDir()
	const hostPass, callerPass = "host-S3CR3T", "caller-S3CR3T"
	users := filepath.Join(dir, "users")
	require.NoError(t, os.WriteFile(users, []byte("# role name password\nhost host-a "+hostPass+"\ncaller alice "+callerPass+"\n"), 0o600))
	passFile := filepath.Join(dir, "alice.password")
	require.NoError(t, os.WriteFile(passFile, []byte(callerPass+"\n"), 0o600))
	addr := "127.0.0.1:" + freePort(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	hostCfg, err := config.Load(config.LoadOptions{Dir: dir, Environ: func() []string { return []string{"NATS_HOST_PASSWORD=" + hostPass} },
		Set: map[string]any{"remote.embedded.enabled": true, "remote.embedded.listen": addr, "remote.embedded.users_file": users,
			"remote.user": "host-a", "remote.password_env": "NATS_HOST_PASSWORD"}})
	require.NoError(t, err)
	hostConn, release, err := remoteconfig.Connect(ctx, hostCfg, remote.RoleHost)
	require.NoError(t, err)
	defer release()
	assert.True(t, strings.HasPrefix(hostConn.NewInbox(), "_INBOX.host-a."), hostConn.NewInbox())

	caller := func(set map[string]any) (*config.Config, error) {
		set["remote.url"], set["remote.user"] = "nats://"+addr, "alice"
		return config.Load(config.LoadOptions{Dir: dir, Environ: noEnv, Set: set})
	}
	cfg, err := caller(map[string]any{"remote.password_file": passFile})
	require.NoError(t, err)
	nc, releaseCaller, err := remoteconfig.Connect(ctx, cfg, remote.RoleCaller)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(nc.NewInbox(), "_INBOX.alice."), nc.NewInbox())
	releaseCaller()

	wrong := filepath.Join(dir, "wrong")
	require.NoError(t, os.WriteFile(wrong, []byte("not-"+callerPass), 0o600))
	for _, c := range []struct {
		set  map[string]any
		code adapter.Code
		want string
	}{
		{map[string]any{"remote.password_file": wrong}, adapter.CodeFailedPrecondition, "Authorization Violation: the server refused these credentials"},
		{map[string]any{"remote.password_env": "UNSET_PASSWORD"}, adapter.CodeFailedPrecondition, "remote.password_env names the variable UNSET_PASSWORD, which is unset or empty"},
		{map[string]any{"remote.password_file": filepath.Join(dir, "missing")}, adapter.CodeFailedPrecondition, "remote.password_file: open " + filepath.Join(dir, "missing")},
	} {
		cfg, err := caller(c.set)
		require.NoError(t, err)
		_, _, err = remoteconfig.Connect(ctx, cfg, remote.RoleCaller)
		require.Error(t, err, "%v", c.set)
		assert.Equal(t, c.code, adapter.CodeOf(err), "%v", err)
		assert.Contains(t, err.Error(), c.want)
		assert.NotContains(t, err.Error(), "3CR3T")
	}
}

// A bad users file stops the embedded server from starting, naming the
// key and the line, never the password.
func TestEmbeddedUsersFileErrors(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	require.NoError(t, os.WriteFile(users, []byte("host host-a S3CR3T\nadmin root S3CR3T\n"), 0o600))
	cfg, err := config.Load(config.LoadOptions{Dir: dir, Environ: noEnv, Set: map[string]any{"remote.embedded.enabled": true,
		"remote.embedded.listen": "127.0.0.1:" + freePort(t), "remote.embedded.users_file": users}})
	require.NoError(t, err)
	_, _, err = remoteconfig.Connect(t.Context(), cfg, remote.RoleHost)
	require.Error(t, err)
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.Contains(t, err.Error(), fmt.Sprintf(`remote.embedded.users_file: users file %s: line 2: its first field is not a role (host or caller)`, users))
	assert.NotContains(t, err.Error(), "3CR3T")
}

// A host's LM allowlist: its own lm.base_url, and remote.lm_base_urls or
// else the provider's default; the key's variable is its own.
func TestHostOptionsLMAllowlist(t *testing.T) {
	for _, c := range []struct {
		set  map[string]any
		urls []string
		env  string
	}{
		{map[string]any{}, []string{remote.DefaultLMBaseURL, remote.DefaultLMBaseURL}, ""},
		{map[string]any{"lm.base_url": "http://lm.internal:8000/v1", "lm.api_key_env": "LM_KEY"},
			[]string{"http://lm.internal:8000/v1", remote.DefaultLMBaseURL}, "LM_KEY"},
		{map[string]any{"lm.base_url": "http://lm.internal:8000/v1", "remote.lm_base_urls": []string{"http://backup.internal/v1"}},
			[]string{"http://lm.internal:8000/v1", "http://backup.internal/v1"}, ""},
	} {
		cfg, err := config.Load(config.LoadOptions{Dir: t.TempDir(), Environ: noEnv, Set: c.set})
		require.NoError(t, err)
		h := remoteconfig.HostOptions(cfg)
		assert.Equal(t, c.urls, h.LMBaseURLs, "%v", c.set)
		assert.Equal(t, c.env, h.LMAPIKeyEnv)
	}
}
