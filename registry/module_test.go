package registry_test

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
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func supply(t *testing.T, set map[string]any) fx.Option {
	if set == nil {
		set = map[string]any{}
	}
	set["python.interpreter"] = testutil.Python(t)
	set["python.worker_dir"] = testutil.PythonDir()
	set["pool.size"] = 2
	set["log.level"] = "error"
	return fx.Supply(config.LoadOptions{Environ: noEnv, Dir: t.TempDir(), Set: set})
}

func TestModuleWithEachBuiltinAdapter(t *testing.T) {
	for _, name := range []string{"mock", "memory", "port", "pool"} {
		t.Run(name, func(t *testing.T) {
			testutil.VerifyNoChildren(t)
			var (
				client *dspgo.Client
				a      adapter.Adapter
				res    registry.Resolution
			)
			app := fxtest.New(t, supply(t, map[string]any{"adapter": name}), config.Module, registry.Module,
				fx.NopLogger, fx.Populate(&client, &a, &res))
			app.RequireStart()
			assert.Equal(t, name, res.Name)
			assert.Equal(t, "option", res.Source)
			p, err := client.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
			require.NoError(t, err)
			out, err := client.Execute(t.Context(), p.ID, map[string]any{"question": "What is Go?"})
			require.NoError(t, err)
			assert.Contains(t, out["answer"], "answer ")
			app.RequireStop()
			_, err = a.Call(context.Background(), adapter.Request{Command: "ping"})
			assert.ErrorIs(t, err, adapter.ErrClosed, "OnStop closed the adapter")
		})
	}
}

func TestValidateApp(t *testing.T) {
	require.NoError(t, fx.ValidateApp(supply(t, nil), config.Module, registry.Module, fx.NopLogger,
		fx.Invoke(func(*dspgo.Client, adapter.Adapter, registry.Resolution, *registry.Registry) {})))
}

// A third party contributes a factory to the value group and selects it by
// name through config.
func TestAsFactory(t *testing.T) {
	var made *mock.Adapter
	custom := func() registry.Factory {
		return registry.Factory{Name: "custom", Description: "a test adapter",
			Open: func(context.Context, *config.Config) (adapter.Adapter, error) {
				made = mock.New(mock.Options{Name: "custom"})
				return made, nil
			}}
	}
	var (
		r *registry.Registry
		a adapter.Adapter
	)
	app := fxtest.New(t, supply(t, map[string]any{"adapter": "custom"}), config.Module, registry.Module,
		registry.AsFactory(custom), fx.NopLogger, fx.Populate(&r, &a))
	app.RequireStart()
	assert.Equal(t, []string{"custom", "memory", "mock", "pool", "port", "remote"}, r.Names())
	assert.Same(t, made, a)
	app.RequireStop()
}

func TestModuleFailsClearlyOnAnUnknownAdapter(t *testing.T) {
	app := fx.New(supply(t, map[string]any{"adapter": "python"}), config.Module, registry.Module, fx.NopLogger,
		fx.Invoke(func(adapter.Adapter) {}))
	err := app.Err()
	require.Error(t, err)
	assert.ErrorContains(t, err, "known adapters: memory, mock, pool, port")
}

// Module's adapter is opened with the configured LM (by Registry.Open):
// the worker runs it from the start.
func TestModuleAppliesTheConfiguredLM(t *testing.T) {
	testutil.VerifyNoChildren(t)
	var (
		a   adapter.Adapter
		res registry.Resolution
	)
	app := fxtest.New(t, supply(t, map[string]any{"adapter": "port", "lm.model": "from-config"}),
		config.Module, registry.Module, fx.NopLogger, fx.Populate(&a, &res))
	app.RequireStart()
	resp, err := a.Call(t.Context(), adapter.Request{Command: "get_stats"})
	require.NoError(t, err)
	var stats struct {
		LM struct{ Provider, Model string }
	}
	require.NoError(t, json.Unmarshal(resp.Result, &stats))
	assert.Equal(t, "from-config", stats.LM.Model)
	assert.Equal(t, "dummy", res.LM)
	assert.Equal(t, "default", res.LMSource, "the layer of lm.provider")
	app.RequireStop()
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
	app := fxtest.New(t, supply(t, map[string]any{"adapter": "remote", "remote.embedded.enabled": true, "remote.embedded.listen": addr,
		"remote.embedded.store_dir": t.TempDir(), "remote.heartbeat": "100ms"}),
		config.Module, registry.Module, fx.NopLogger, fx.Populate(&client, &a))
	app.RequireStart()

	nc, err := remote.Dial(t.Context(), remote.DialOptions{URL: "nats://" + addr})
	require.NoError(t, err)
	defer nc.Close()
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
