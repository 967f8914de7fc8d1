package registry_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
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
	assert.Equal(t, []string{"custom", "memory", "mock", "pool", "port"}, r.Names(), "remote only when its package is linked")
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
