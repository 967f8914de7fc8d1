package remoteconfig_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/adapters/remote/embedded"
	"github.com/dspgo/dspgo/adapters/remote/remoteconfig"
	"github.com/dspgo/dspgo/config"
)

// localConfig is the configuration of a process of this OS user: with
// the embedded server on addr when embed is set, else a client of it.
func localConfig(t *testing.T, dir, addr string, embed bool, set map[string]any) *config.Config {
	t.Helper()
	if set == nil {
		set = map[string]any{}
	}
	set["remote.local_credentials_dir"] = dir
	if embed {
		set["remote.embedded.enabled"], set["remote.embedded.listen"] = true, addr
	} else {
		set["remote.url"] = "nats://" + addr
	}
	cfg, err := config.Load(config.LoadOptions{Dir: t.TempDir(), Environ: noEnv, Set: set})
	require.NoError(t, err)
	return cfg
}

// The embedded server started with no users file authenticates every
// client all the same: it makes a host user and a caller user with
// random passwords, which only this OS user can read (0600 in a 0700
// directory). Processes of this user configured with no credentials
// find their role's user there; a client without them, or with a wrong
// password, is refused; the caller's user has the caller's rights only.
// The file goes with the server.
func TestEmbeddedWithoutUsersAuthenticatesLocally(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	port := freePort(t)
	addr := "127.0.0.1:" + port
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	hostConn, release, err := remoteconfig.Connect(ctx, localConfig(t, dir, addr, true, nil), remote.RoleHost)
	require.NoError(t, err)
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	assert.True(t, strings.HasPrefix(hostConn.NewInbox(), "_INBOX.local-host."), hostConn.NewInbox())

	n, _ := strconv.Atoi(port)
	path := embedded.LocalPath(dir, n)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	local, _, err := embedded.ReadLocal(dir, n)
	require.NoError(t, err)
	assert.Equal(t, "nats://"+addr, local.URL)
	assert.Equal(t, os.Getpid(), local.PID)
	assert.Len(t, local.Caller.Password, 43, "256 random bits")
	assert.NotEqual(t, local.Host.Password, local.Caller.Password)

	// A stranger: no credentials, a guessed password, the caller's name
	// with the host's password.
	for _, o := range []remote.DialOptions{
		{URL: "nats://" + addr},
		{URL: "nats://" + addr, User: "local-caller", Password: "guess"},
		{URL: "nats://" + addr, User: "local-caller", Password: local.Host.Password},
	} {
		nc, err := remote.Dial(ctx, o)
		if err == nil {
			nc.Close()
		}
		require.Error(t, err, "user %q", o.User)
		assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
		assert.Contains(t, err.Error(), "Authorization Violation")
	}

	callerConn, releaseCaller, err := remoteconfig.Connect(ctx, localConfig(t, dir, addr, false, nil), remote.RoleCaller)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(callerConn.NewInbox(), "_INBOX.local-caller."), callerConn.NewInbox())
	// The caller may not take calls: the server refuses the subscription.
	refused := make(chan error, 1)
	callerConn.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case refused <- err:
		default:
		}
	})
	_, err = callerConn.QueueSubscribeSync(remote.DefaultPrefix+".call", remote.DefaultQueueGroup)
	require.NoError(t, err)
	require.NoError(t, callerConn.Flush())
	select {
	case err := <-refused:
		assert.Contains(t, err.Error(), "Permissions Violation")
	case <-ctx.Done():
		t.Fatal("the caller's subscription to the calls was not refused")
	}
	releaseCaller()

	release()
	released = true
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "the file goes with the server")
}

// A client that finds local credentials the server does not know (a
// file left by a server that was killed, another server now on the
// port) is refused with what to check; a file or a directory others may
// read or write is not trusted; a later server's file is not removed by
// an earlier one.
func TestLocalCredentialsThatDoNotFit(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	addr := "127.0.0.1:" + port
	n, _ := strconv.Atoi(port)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, release, err := remoteconfig.Connect(ctx, localConfig(t, dir, addr, true, nil), remote.RoleHost)
	require.NoError(t, err)
	defer release()
	mine, _, err := embedded.ReadLocal(dir, n)
	require.NoError(t, err)

	stale, err := embedded.NewLocal()
	require.NoError(t, err)
	stale.URL, stale.PID = "nats://"+addr, 1
	_, err = embedded.WriteLocal(dir, n, stale)
	require.NoError(t, err)
	_, _, err = remoteconfig.Connect(ctx, localConfig(t, dir, addr, false, nil), remote.RoleCaller)
	require.Error(t, err)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err))
	assert.Contains(t, err.Error(), "the local credentials in "+embedded.LocalPath(dir, n)+" are not this server's (process 1 wrote them")
	assert.NotContains(t, err.Error(), stale.Caller.Password)

	path := embedded.LocalPath(dir, n)
	require.NoError(t, os.Chmod(path, 0o644))
	_, _, err = remoteconfig.Connect(ctx, localConfig(t, dir, addr, false, nil), remote.RoleCaller)
	require.Error(t, err)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err))
	assert.Contains(t, err.Error(), "others may read "+path+" (mode -rw-r--r--): it should be 0600")

	open := t.TempDir()
	require.NoError(t, os.Chmod(open, 0o777))
	_, _, err = remoteconfig.Connect(ctx, localConfig(t, open, "127.0.0.1:"+freePort(t), true, nil), remote.RoleHost)
	require.Error(t, err)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err))
	assert.Contains(t, err.Error(), "remote.local_credentials_dir: embedded NATS: local credentials: others may write to the directory "+open)

	// The server this test started goes, and leaves the stale file that
	// replaced its own.
	require.NoError(t, os.Chmod(path, 0o600))
	release()
	got, _, err := embedded.ReadLocal(dir, n)
	require.NoError(t, err)
	assert.Equal(t, stale, got)
	assert.NotEqual(t, mine, got)
}

// With no directory configured, the embedded server's local credentials
// go to the user's runtime directory, else the configuration directory;
// with neither it does not start, naming the key to set.
func TestLocalCredentialsDirectory(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	_, err := embedded.DefaultLocalDir(getenv)
	assert.EqualError(t, err, "embedded NATS: local credentials: neither XDG_RUNTIME_DIR, XDG_CONFIG_HOME nor HOME is set to an absolute path")
	env["HOME"] = "/home/ada"
	d, err := embedded.DefaultLocalDir(getenv)
	require.NoError(t, err)
	assert.Equal(t, "/home/ada/.config/dspgo", d)
	env["XDG_CONFIG_HOME"] = "/home/ada/.cfg"
	d, _ = embedded.DefaultLocalDir(getenv)
	assert.Equal(t, "/home/ada/.cfg/dspgo", d)
	env["XDG_RUNTIME_DIR"] = "relative"
	d, _ = embedded.DefaultLocalDir(getenv)
	assert.Equal(t, "/home/ada/.cfg/dspgo", d, "a relative directory is not taken")
	env["XDG_RUNTIME_DIR"] = "/run/user/1000"
	d, _ = embedded.DefaultLocalDir(getenv)
	assert.Equal(t, "/run/user/1000/dspgo", d)

	cfg, err := config.Load(config.LoadOptions{Dir: t.TempDir(), Environ: noEnv, Set: map[string]any{
		"remote.embedded.enabled": true, "remote.embedded.listen": "127.0.0.1:" + freePort(t)}})
	require.NoError(t, err)
	_, _, err = remoteconfig.Connect(t.Context(), cfg, remote.RoleHost)
	require.Error(t, err)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err))
	assert.Contains(t, err.Error(), "is set to an absolute path: set remote.local_credentials_dir")

	runtime := t.TempDir()
	cfg, err = config.Load(config.LoadOptions{Dir: t.TempDir(), Environ: func() []string { return []string{"XDG_RUNTIME_DIR=" + runtime} },
		Set: map[string]any{"remote.embedded.enabled": true, "remote.embedded.listen": "127.0.0.1:" + freePort(t)}})
	require.NoError(t, err)
	_, release, err := remoteconfig.Connect(t.Context(), cfg, remote.RoleHost)
	require.NoError(t, err)
	defer release()
	files, err := filepath.Glob(filepath.Join(runtime, "dspgo", "nats-*.json"))
	require.NoError(t, err)
	assert.Len(t, files, 1)
}

// An embedded server told to listen on port 0 listens on a free port, as
// net.Listen takes ":0" (the NATS server's own zero would be 4222), and
// its local credentials name that port.
func TestEmbeddedOnPortZeroTakesAFreePort(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	nc, release, err := remoteconfig.Connect(t.Context(), localConfig(t, dir, "127.0.0.1:0", true, nil), remote.RoleHost)
	require.NoError(t, err)
	defer release()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(nc.ConnectedUrl(), "nats://"))
	require.NoError(t, err)
	assert.NotEqual(t, "0", port)
	assert.NotEqual(t, "4222", port)
	files, err := filepath.Glob(filepath.Join(dir, "nats-"+port+".json"))
	require.NoError(t, err)
	assert.Len(t, files, 1, "the local credentials of the port it took")
}

// A client that takes its credentials from the local file of an embedded
// server checks that the server it reached is that one: another process
// on the same loopback port (here a server that takes the same
// credentials) is refused, and a server that lets anyone in is refused
// before any credentials matter.
func TestLocalCredentialsAreForTheirOwnServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	local, err := embedded.NewLocal()
	require.NoError(t, err)
	other, err := embedded.Start(ctx, embedded.Options{Port: -1, StoreDir: t.TempDir(), Users: local.Users()})
	require.NoError(t, err)
	defer other.Shutdown()
	addr := strings.TrimPrefix(other.ClientURL(), "nats://")
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)

	local.URL, local.ServerID = other.ClientURL(), "NOT-THE-SERVER-THAT-WROTE-IT"
	_, err = embedded.WriteLocal(dir, port, local)
	require.NoError(t, err)
	_, _, err = remoteconfig.Connect(ctx, localConfig(t, dir, addr, false, nil), remote.RoleCaller)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, "is not the embedded server whose local credentials are in")

	local.ServerID = other.ID()
	_, err = embedded.WriteLocal(dir, port, local)
	require.NoError(t, err)
	nc, release, err := remoteconfig.Connect(ctx, localConfig(t, dir, addr, false, nil), remote.RoleCaller)
	require.NoError(t, err, "the server that wrote them")
	assert.Equal(t, other.ID(), nc.ConnectedServerId())
	release()

	open, err := embedded.Start(ctx, embedded.Options{Port: -1, StoreDir: t.TempDir(), NoAuth: true})
	require.NoError(t, err)
	defer open.Shutdown()
	_, _, err = remoteconfig.Connect(ctx, localConfig(t, t.TempDir(), strings.TrimPrefix(open.ClientURL(), "nats://"), false, nil), remote.RoleHost)
	assert.ErrorIs(t, err, remote.ErrNoAuth)
}
