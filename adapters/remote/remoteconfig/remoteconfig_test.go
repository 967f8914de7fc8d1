package remoteconfig_test

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/adapters/remote/embedded"
	"github.com/dspgo/dspgo/adapters/remote/remoteconfig"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func noEnv() []string { return nil }

// supply loads the configuration with set, logging errors only.
func supply(t *testing.T, set map[string]any) fx.Option {
	set["log.level"] = "error"
	return fx.Supply(config.LoadOptions{Environ: noEnv, Dir: t.TempDir(), Set: set})
}

// Importing the package registers the remote adapter: Builtin lists it
// after dspgo's own, once.
func TestImportRegistersRemote(t *testing.T) {
	var names []string
	for _, f := range registry.Builtin() {
		names = append(names, f.Name)
	}
	assert.Equal(t, []string{"mock", "memory", "port", "pool", "remote"}, names)
	assert.PanicsWithError(t, `registry: invalid factory: the name "remote" is registered twice`, func() { registry.Register(remoteconfig.Factory()) })
}

// The factory's capabilities are those a remote adapter reports, asked of
// one on an embedded server with no host; the server is gone afterwards.
func TestFactoryCapabilities(t *testing.T) {
	caps, err := remoteconfig.Factory().Capabilities(t.Context())
	require.NoError(t, err)
	assert.Equal(t, adapter.Capabilities{Sessions: true, Broadcast: true, Restarts: true, Streaming: true, Tools: true,
		MaxFrameBytes: embedded.DefaultMaxPayload}, caps)
}

// A remote caller applies lm.* to the worker hosts only when some lm.* key
// is set; otherwise the hosts keep the LM they run.
func TestRemoteCallerAppliesTheLMOnlyWhenSet(t *testing.T) {
	srv, err := embedded.Start(context.Background(), embedded.Options{Port: -1, StoreDir: t.TempDir(), NoAuth: true})
	require.NoError(t, err)
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	nc, err := remote.Dial(ctx, remote.DialOptions{URL: srv.ClientURL(), AllowNoAuth: true})
	require.NoError(t, err)
	defer nc.Close()
	m := mock.New(mock.Options{})
	defer m.Close(context.Background())
	require.NoError(t, dspgo.NewClient(m).ConfigureLM(ctx, dspgo.LMConfig{Model: "the-host's"}))
	h, err := remote.Serve(ctx, nc, m, remote.HostOptions{ID: "h", Heartbeat: 100 * time.Millisecond})
	require.NoError(t, err)
	defer h.Close(context.Background())

	reg, err := registry.New(registry.Builtin()...)
	require.NoError(t, err)
	hostModel := func(set map[string]any) (model string, res registry.Resolution) {
		set["adapter"], set["remote.url"], set["remote.heartbeat"], set["remote.allow_no_auth"] = "remote", srv.ClientURL(), "100ms", true
		cfg, err := config.Load(config.LoadOptions{Dir: t.TempDir(), Environ: noEnv, Set: set})
		require.NoError(t, err)
		a, res, err := reg.Open(ctx, cfg)
		require.NoError(t, err)
		defer a.Close(context.Background())
		resp, err := a.Call(ctx, adapter.Request{Command: "get_stats"})
		require.NoError(t, err)
		var stats struct{ LM struct{ Model string } }
		require.NoError(t, json.Unmarshal(resp.Result, &stats))
		return stats.LM.Model, res
	}
	model, res := hostModel(map[string]any{})
	assert.Equal(t, "the-host's", model, "no lm.* key set: the host keeps its LM")
	assert.Empty(t, res.LM)
	assert.Empty(t, res.LMSource)

	model, res = hostModel(map[string]any{"lm.model": "the-caller's"})
	assert.Equal(t, "the-caller's", model, "lm.* set: the caller's LM reaches the host")
	assert.Equal(t, "dummy", res.LM)
	assert.Equal(t, "default", res.LMSource, "lm.provider itself kept its default")
}

// The remote adapter from config, with the embedded server: the client
// starts before any host (its LM configuration is recorded for them), a
// host joins, calls are served, and OnStop closes the adapter and stops
// the server.
func TestModuleWithRemote(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	var (
		client *dspgo.Client
		a      adapter.Adapter
	)
	creds := t.TempDir()
	app := fxtest.New(t, supply(t, map[string]any{"adapter": "remote", "remote.embedded.enabled": true, "remote.embedded.listen": addr,
		"remote.embedded.store_dir": t.TempDir(), "remote.heartbeat": "100ms", "remote.local_credentials_dir": creds}),
		config.Module, registry.Module, fx.NopLogger, fx.Populate(&client, &a))
	app.RequireStart()

	// The host, another process in a real deployment, finds the host
	// user the embedded server made in the local credentials directory.
	cfg, err := config.Load(config.LoadOptions{Dir: t.TempDir(), Environ: noEnv,
		Set: map[string]any{"remote.url": "nats://" + addr, "remote.local_credentials_dir": creds}})
	require.NoError(t, err)
	nc, release, err := remoteconfig.Connect(t.Context(), cfg, remote.RoleHost)
	require.NoError(t, err)
	defer release()
	m := mock.New(mock.Options{})
	defer m.Close(context.Background())
	h, err := remote.Serve(t.Context(), nc, m, remote.HostOptions{ID: "h", Heartbeat: 100 * time.Millisecond})
	require.NoError(t, err)

	p, err := client.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
	require.NoError(t, err)
	out, err := client.Execute(t.Context(), p.ID, map[string]any{"question": "What is Go?"})
	require.NoError(t, err)
	assert.Contains(t, out["answer"], "answer ")
	require.NoError(t, h.Close(context.Background()))
	app.RequireStop()
	_, err = a.Call(context.Background(), adapter.Request{Command: "ping"})
	assert.ErrorIs(t, err, adapter.ErrClosed)
}
