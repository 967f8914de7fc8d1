package registry_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/registry"
)

const baseFile = `
adapter: port
pool:
  size: 4
environments:
  dev:
    adapter: mock
  test:
    adapter: memory
  integration:
    adapter: pool
    pool:
      lazy: false
  prod:
    adapter: pool
    pool:
      size: 8
`

type resolveCase struct {
	name    string
	file    string   // YAML; "" means no file
	env     []string // DSPGO_* variables
	flags   []string // command line
	set     map[string]any
	want    string // adapter name
	source  string // the layer that set it
	envName string
	warn    string // a deprecation warning, if any
	err     string // an error, if any
}

var resolveCases = []resolveCase{
	{name: "defaults", want: "pool", source: "default"},
	{name: "file", file: baseFile, want: "port", source: "file:"},
	{name: "env var over default", env: []string{"DSPGO_ADAPTER=mock"}, want: "mock", source: "env:DSPGO_ADAPTER"},
	{name: "env var over file", file: baseFile, env: []string{"DSPGO_ADAPTER=pool"}, want: "pool", source: "env:DSPGO_ADAPTER"},
	{name: "flag over env var", file: baseFile, env: []string{"DSPGO_ADAPTER=pool"}, flags: []string{"--adapter=mock"}, want: "mock", source: "flag:--adapter"},
	{name: "explicit option over flag", flags: []string{"--adapter=pool"}, set: map[string]any{"adapter": "memory"}, want: "memory", source: "option"},
	{name: "unset flag hides nothing", file: baseFile, flags: []string{"--pool-size=3"}, want: "port", source: "file:"},
	{name: "environment block from DSPGO_ENV", file: baseFile, env: []string{"DSPGO_ENV=dev"}, want: "mock", source: "environment:dev", envName: "dev"},
	{name: "environment block from a flag", file: baseFile, flags: []string{"--env=test"}, want: "memory", source: "environment:test", envName: "test"},
	{name: "environment block from the file", file: baseFile + "env: prod\n", want: "pool", source: "environment:prod", envName: "prod"},
	{name: "flag env beats DSPGO_ENV", file: baseFile, env: []string{"DSPGO_ENV=dev"}, flags: []string{"--env=prod"}, want: "pool", source: "environment:prod", envName: "prod"},
	{name: "env var beats the environment block", file: baseFile, env: []string{"DSPGO_ENV=dev", "DSPGO_ADAPTER=port"}, want: "port", source: "env:DSPGO_ADAPTER", envName: "dev"},
	{name: "flag beats the environment block", file: baseFile, env: []string{"DSPGO_ENV=prod"}, flags: []string{"--adapter=mock"}, want: "mock", source: "flag:--adapter", envName: "prod"},
	// The seed's case: an integration environment with pooling on gives
	// the pool…
	{name: "seed: integration with pooling gives the pool", file: baseFile, env: []string{"DSPGO_ENV=integration"}, want: "pool", source: "environment:integration", envName: "integration"},
	// …and a test that expects the port says so through config.
	{name: "seed: a port test says so through config", file: baseFile, env: []string{"DSPGO_ENV=integration"}, set: map[string]any{"adapter": "port"}, want: "port", source: "option", envName: "integration"},
	{name: "alias python_port", set: map[string]any{"adapter": "python_port"}, want: "port", source: "option", warn: `"python_port" is deprecated`},
	{name: "alias python_pool", env: []string{"DSPGO_ADAPTER=python_pool"}, want: "pool", source: "env:DSPGO_ADAPTER", warn: `"python_pool" is deprecated`},
	{name: "alias mock_adapter", set: map[string]any{"adapter": "mock_adapter"}, want: "mock", source: "option", warn: "deprecated"},
	{name: "alias bridge_mock", set: map[string]any{"adapter": "bridge_mock"}, want: "memory", source: "option", warn: `the in-memory port worker, adapter "memory", replaces it`},
	{name: "unknown name lists the known ones", set: map[string]any{"adapter": "python"}, err: `adapter "python" (set by option) is not registered; known adapters: memory, mock, pool, port`},
	{name: "unknown name from a file says which file", file: "adapter: poool\n", err: `adapter "poool" (set by file:`},
	{name: "a misspelt name is suggested", set: map[string]any{"adapter": "mok"}, err: `adapter "mok" (set by option) is not registered; known adapters: memory, mock, pool, port (did you mean "mock"?)`},
	{name: "unknown environment", file: baseFile, env: []string{"DSPGO_ENV=staging"}, err: `unknown environment "staging": no config file has an environments.staging block (defined: dev, integration, prod, test)`},
	{name: "empty name", set: map[string]any{"adapter": ""}, err: "adapter: must name a backend"},
}

func TestResolve(t *testing.T) {
	r, err := registry.New(registry.Builtin()...)
	require.NoError(t, err)
	for _, tc := range resolveCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := config.LoadOptions{Environ: func() []string { return tc.env }, Set: tc.set, Dir: t.TempDir()}
			if tc.file != "" {
				path := filepath.Join(t.TempDir(), "dspgo.yaml")
				require.NoError(t, os.WriteFile(path, []byte(tc.file), 0o600))
				opts.Files = []string{path}
			}
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			config.BindFlags(fs)
			require.NoError(t, fs.Parse(tc.flags))
			opts.Flags = fs

			cfg, err := config.Load(opts)
			var res registry.Resolution
			if err == nil {
				_, res, err = r.Resolve(cfg)
			}
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, res.Name)
			assert.Contains(t, res.Source, tc.source)
			assert.Equal(t, tc.envName, res.Environment)
			if tc.warn != "" {
				require.Len(t, res.Warnings, 1)
				assert.Contains(t, res.Warnings[0], tc.warn)
			} else {
				assert.Empty(t, res.Warnings)
			}
			assert.Contains(t, res.String(), tc.want)
		})
	}
}

func TestUnknownAdapterIsInvalidArgument(t *testing.T) {
	r, err := registry.New(registry.Builtin()...)
	require.NoError(t, err)
	cfg, err := config.Load(config.LoadOptions{Environ: noEnv, Dir: t.TempDir(), Set: map[string]any{"adapter": "nope"}})
	require.NoError(t, err)
	_, _, err = r.Open(t.Context(), cfg)
	assert.ErrorIs(t, err, registry.ErrUnknownAdapter)
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
}

func noEnv() []string { return nil }

func TestNewRejectsBadFactories(t *testing.T) {
	open := func(context.Context, *config.Config) (adapter.Adapter, error) { return nil, nil }
	for name, fs := range map[string][]registry.Factory{
		"empty name":   {{Name: " ", Open: open}},
		"no Open":      {{Name: "x"}},
		"duplicate":    {{Name: "x", Open: open}, {Name: "x", Open: open}},
		"alias reused": {{Name: "bridge_mock", Open: open}},
	} {
		_, err := registry.New(fs...)
		assert.ErrorIs(t, err, registry.ErrBadFactory, name)
	}
	r, err := registry.New(append(registry.Builtin(), registry.Factory{Name: "custom", Open: open})...)
	require.NoError(t, err)
	assert.Equal(t, []string{"custom", "memory", "mock", "pool", "port"}, r.Names())
}

// The example configuration resolves as its comments say.
func TestExampleConfig(t *testing.T) {
	r, err := registry.New(registry.Builtin()...)
	require.NoError(t, err)
	path := filepath.Join(testutilRoot(), "examples", "dspgo.yaml")
	for env, want := range map[string]string{"": "pool", "dev": "mock", "test": "mock", "protocol": "memory", "ci": "pool", "prod": "pool"} {
		cfg, err := config.Load(config.LoadOptions{Files: []string{path}, Env: env, Environ: noEnv})
		require.NoError(t, err, env)
		_, res, err := r.Resolve(cfg)
		require.NoError(t, err)
		assert.Equal(t, want, res.Name, env)
		if env == "prod" {
			assert.Equal(t, "openai", cfg.LM.Provider)
			assert.Equal(t, 8, cfg.Pool.WorkerConcurrency)
			assert.Equal(t, "environment:prod", cfg.Source("pool.recycle.max_age"))
		}
	}
}

// TestResolveSuggestsOnlyOneName: a name as close to two adapters as to
// each other gets no suggestion, nor does one close to none.
func TestResolveSuggestsOnlyOneName(t *testing.T) {
	r, err := registry.New(registry.Builtin()...)
	require.NoError(t, err)
	for _, name := range []string{"poot", "python"} {
		cfg, err := config.Load(config.LoadOptions{Environ: noEnv, Dir: t.TempDir(), Set: map[string]any{"adapter": name}})
		require.NoError(t, err)
		_, _, err = r.Resolve(cfg)
		require.ErrorIs(t, err, registry.ErrUnknownAdapter)
		assert.NotContains(t, err.Error(), "did you mean", name)
	}
}
