package config_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/config"
)

func write(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func env(vars ...string) func() []string { return func() []string { return vars } }

func load(t *testing.T, opts config.LoadOptions) (*config.Config, error) {
	t.Helper()
	if opts.Environ == nil {
		opts.Environ = env()
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	return config.Load(opts)
}

func TestDefaults(t *testing.T) {
	cfg, err := load(t, config.LoadOptions{})
	require.NoError(t, err)
	assert.Equal(t, "pool", cfg.Adapter)
	assert.Equal(t, "dummy", cfg.LM.Provider)
	assert.Equal(t, 30*time.Second, cfg.Pool.CheckoutTimeout)
	assert.False(t, cfg.Pool.Lazy, "lazy is false unless configured")
	assert.Equal(t, []string{"default"}, cfg.Layers())
}

func TestLayersAndTypes(t *testing.T) {
	yamlFile := write(t, "a.yaml", "pool:\n  size: 3\n  lazy: true\n  checkout_timeout: 2s\npython:\n  pass_env: [PATH, OPENAI_API_KEY]\n")
	tomlFile := write(t, "b.toml", "[pool]\nmax_queue = 7\n[lm]\ntemperature = 0.5\n")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	config.BindFlags(fs)
	require.NoError(t, fs.Parse([]string{"--pool-worker-concurrency=9", "--call-timeout=5m"}))
	cfg, err := load(t, config.LoadOptions{
		Files:   []string{yamlFile, tomlFile},
		Environ: env("DSPGO_POOL__SIZE=5", "DSPGO_PORT__RESTART__WINDOW=90s", "DSPGO_PYTHON__HANDLERS=a.b,c", "HOME=/x"),
		Flags:   fs,
	})
	require.NoError(t, err)
	assert.Equal(t, 5, cfg.Pool.Size, "the variable beats the file")
	assert.True(t, cfg.Pool.Lazy, "lazy from the file is honoured")
	assert.Equal(t, 2*time.Second, cfg.Pool.CheckoutTimeout)
	assert.Equal(t, 7, cfg.Pool.MaxQueue, "TOML")
	assert.Equal(t, 0.5, cfg.LM.Temperature)
	assert.Equal(t, []string{"PATH", "OPENAI_API_KEY"}, cfg.Python.PassEnv)
	assert.Equal(t, []string{"a.b", "c"}, cfg.Python.Handlers, "comma-separated lists in variables")
	assert.Equal(t, 90*time.Second, cfg.Port.Restart.Window)
	assert.Equal(t, 9, cfg.Pool.WorkerConcurrency)
	assert.Equal(t, 5*time.Minute, cfg.Port.CallTimeout)

	assert.Equal(t, "env:DSPGO_POOL__SIZE", cfg.Source("pool.size"))
	assert.Equal(t, "file:"+yamlFile, cfg.Source("pool.lazy"))
	assert.Equal(t, "file:"+tomlFile, cfg.Source("pool.max_queue"))
	assert.Equal(t, "flag:--pool-worker-concurrency", cfg.Source("pool.worker_concurrency"))
	assert.Equal(t, "default", cfg.Source("pool.affinity"))
}

func TestUnknownKeysNameTheirSource(t *testing.T) {
	path := write(t, "dspgo.yaml", "pool:\n  sise: 3\nenvironments:\n  ci:\n    pool:\n      lazzy: true\n")
	_, err := load(t, config.LoadOptions{Files: []string{path}, Environ: env("DSPGO_POOL__SIZ=2", "DSPGO_NOPE=1")})
	require.ErrorIs(t, err, config.ErrUnknownKey)
	for _, want := range []string{
		`"pool.sise" set by file:` + path,
		`"pool.lazzy" in the environments.ci block of file:` + path,
		`"pool.siz" set by env:DSPGO_POOL__SIZ`,
		`"nope" set by env:DSPGO_NOPE`,
	} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestInvalidValuesAreReportedTogether(t *testing.T) {
	path := write(t, "dspgo.yaml", strings.Join([]string{
		"pool:",
		"  size: -1",
		"  checkout_timeout: 0s",
		"  affinity: sticky",
		"  max_queue: 0",
		"log:",
		"  level: loud",
		"lm:",
		"  provider: openai",
		"  temperature: 3",
		"  base_url: user:secret@llm.example:8000",
		"port:",
		"  restart:",
		"    min: 2s",
		"    max: 1s",
	}, "\n"))
	_, err := load(t, config.LoadOptions{Files: []string{path}})
	require.ErrorIs(t, err, config.ErrInvalid)
	for _, want := range []string{
		"pool.size: must not be negative, got -1 (set by file:",
		"pool.checkout_timeout: must be positive, got 0s",
		`pool.affinity: "sticky" is not one of none, prefer, strict`,
		"pool.max_queue: must be at least 1",
		`log.level: "loud" is not one of debug, info, warn, error`,
		"lm.model: is required with the openai provider",
		"lm.temperature: must be at most 2",
		"lm.base_url: is not an http or https URL (write it whole, such as http://localhost:8000/v1)",
		"port.restart.max: must be at least port.restart.min",
	} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), "secret", "a URL is never quoted: it may hold credentials")
}

func TestValuesThatDoNotConvert(t *testing.T) {
	_, err := load(t, config.LoadOptions{Environ: env("DSPGO_POOL__SIZE=eight", "DSPGO_POOL__CHECKOUT_TIMEOUT=30", "DSPGO_POOL__LAZY=perhaps")})
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Contains(t, err.Error(), "pool.size = eight (set by env:DSPGO_POOL__SIZE): expected an integer")
	assert.Contains(t, err.Error(), "pool.checkout_timeout = 30 (set by env:DSPGO_POOL__CHECKOUT_TIMEOUT): expected a duration like 30s")
	assert.Contains(t, err.Error(), "pool.lazy = perhaps (set by env:DSPGO_POOL__LAZY): expected true or false")
}

func TestFiles(t *testing.T) {
	_, err := load(t, config.LoadOptions{Files: []string{filepath.Join(t.TempDir(), "missing.yaml")}})
	assert.ErrorContains(t, err, "missing.yaml", "a file named explicitly must exist")
	_, err = load(t, config.LoadOptions{Files: []string{write(t, "c.json", "{}")}})
	assert.ErrorContains(t, err, "unknown format")

	dir := t.TempDir()
	cfg, err := load(t, config.LoadOptions{Dir: dir})
	require.NoError(t, err, "the default file is optional")
	assert.Equal(t, "default", cfg.Source("adapter"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, config.DefaultFile), []byte("adapter: mock\n"), 0o600))
	cfg, err = load(t, config.LoadOptions{Dir: dir})
	require.NoError(t, err)
	assert.Equal(t, "mock", cfg.Adapter)
	assert.Equal(t, "file:"+filepath.Join(dir, config.DefaultFile), cfg.Source("adapter"))
}

func TestExplain(t *testing.T) {
	path := write(t, "dspgo.yaml", "adapter: port\nenvironments:\n  ci:\n    pool:\n      size: 2\n")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	config.BindFlags(fs)
	require.NoError(t, fs.Parse([]string{"--lm-model=m1"}))
	cfg, err := load(t, config.LoadOptions{Files: []string{path}, Environ: env("DSPGO_ENV=ci", "DSPGO_LOG__LEVEL=debug"), Flags: fs})
	require.NoError(t, err)
	settings := map[string]config.Setting{}
	for _, s := range cfg.Explain() {
		settings[s.Key] = s
	}
	assert.Equal(t, config.Setting{Key: "adapter", Value: "port", Source: "file:" + path}, settings["adapter"])
	assert.Equal(t, config.Setting{Key: "pool.size", Value: "2", Source: "environment:ci"}, settings["pool.size"])
	assert.Equal(t, config.Setting{Key: "log.level", Value: "debug", Source: "env:DSPGO_LOG__LEVEL"}, settings["log.level"])
	assert.Equal(t, config.Setting{Key: "lm.model", Value: "m1", Source: "flag:--lm-model"}, settings["lm.model"])
	assert.Equal(t, config.Setting{Key: "env", Value: "ci", Source: "env:DSPGO_ENV"}, settings["env"])
	assert.Equal(t, "default", settings["pool.affinity"].Source)
	assert.Len(t, settings, len(cfg.Explain()), "every key once")
	assert.Contains(t, settings, "pool.recycle.max_rss_bytes", "every key is listed, set or not")

	text := cfg.ExplainText()
	assert.Regexp(t, `(?m)^pool\.size\s+2\s+environment:ci$`, text)
	assert.Equal(t, []string{"default", "file:" + path, "environment:ci", "env", "flag"}, cfg.Layers())
}

func TestLoggerFollowsConfig(t *testing.T) {
	cfg, err := load(t, config.LoadOptions{Set: map[string]any{"log.format": "json", "log.level": "warn"}})
	require.NoError(t, err)
	var b strings.Builder
	log := cfg.Logger(&b)
	log.Info("hidden")
	log.Warn("shown")
	assert.NotContains(t, b.String(), "hidden")
	assert.Contains(t, b.String(), `"msg":"shown"`)
}

func TestOTelLogFormat(t *testing.T) {
	cfg, err := load(t, config.LoadOptions{Set: map[string]any{"log.format": "otel", "log.level": "info"}})
	require.NoError(t, err)
	var b strings.Builder
	cfg.Logger(&b).Warn("worker died", "worker", "pool-1", "restarts", 2)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(b.String()), &rec))
	assert.Equal(t, "WARN", rec["severity_text"])
	assert.EqualValues(t, 13, rec["severity_number"])
	assert.Equal(t, "worker died", rec["body"])
	assert.Equal(t, map[string]any{"worker": "pool-1", "restarts": float64(2)}, rec["attributes"])
	ts, ok := rec["timestamp"].(string)
	require.True(t, ok)
	_, err = time.Parse(time.RFC3339Nano, ts)
	assert.NoError(t, err)
}

// Every key is documented in docs/configuration.md.
func TestEveryKeyIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	require.NoError(t, err)
	cfg, err := config.Load(config.LoadOptions{Environ: func() []string { return nil }, Dir: t.TempDir()})
	require.NoError(t, err)
	for _, s := range cfg.Explain() {
		assert.Contains(t, string(doc), "| `"+s.Key+"` |", "docs/configuration.md lacks %s", s.Key)
	}
}

// Every default in docs/configuration.md's table of keys is the code's.
func TestDocumentedDefaults(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\| `([^`]*)` \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = m[2]
	}
	cfg, err := load(t, config.LoadOptions{})
	require.NoError(t, err)
	for _, s := range cfg.Explain() {
		want := s.Value
		if want == `""` {
			want = "" // shown as `""` or as an empty cell
		}
		got, ok := documented[s.Key]
		if !assert.True(t, ok, "docs/configuration.md has no default for %s", s.Key) {
			continue
		}
		if got == `""` {
			got = ""
		}
		assert.Equal(t, want, got, "the documented default of %s", s.Key)
	}
}

// lm.cache is off unless configured, and every layer can turn it on.
func TestLMCache(t *testing.T) {
	cfg, err := load(t, config.LoadOptions{})
	require.NoError(t, err)
	assert.False(t, cfg.LM.Cache, "off by default")
	assert.Equal(t, "default", cfg.Source("lm.cache"))

	cfg, err = load(t, config.LoadOptions{Environ: env("DSPGO_LM__CACHE=true")})
	require.NoError(t, err)
	assert.True(t, cfg.LM.Cache)
	assert.Equal(t, "env:DSPGO_LM__CACHE", cfg.Source("lm.cache"))

	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	config.BindFlags(fs)
	require.NoError(t, fs.Parse([]string{"--lm-cache=false"}))
	cfg, err = load(t, config.LoadOptions{Environ: env("DSPGO_LM__CACHE=true"), Flags: fs})
	require.NoError(t, err)
	assert.False(t, cfg.LM.Cache, "the flag beats the variable")
	assert.Equal(t, "flag:--lm-cache", cfg.Source("lm.cache"))

	fs = pflag.NewFlagSet("t", pflag.ContinueOnError)
	config.BindFlags(fs)
	require.NoError(t, fs.Parse([]string{"--lm-cache"}))
	cfg, err = load(t, config.LoadOptions{Flags: fs})
	require.NoError(t, err)
	assert.True(t, cfg.LM.Cache, "a bare --lm-cache turns it on")

	_, err = load(t, config.LoadOptions{Environ: env("DSPGO_LM__CACHE=sometimes")})
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Contains(t, err.Error(), "lm.cache = sometimes (set by env:DSPGO_LM__CACHE): expected true or false")
}

// lm.base_url is checked as configure_lm checks base_url (internal/lmurl),
// and no message shows its credentials.
func TestLMBaseURL(t *testing.T) {
	for url, want := range map[string]string{
		"http://u:S3CR3T@[::1]:8000/v1":    "",
		"http://u:S3CR3T@[::1/v1":          "lm.base_url: has an IPv6 address without its closing ']' (write one as http://[::1]:8000/v1) (set by",
		"http://u:S3CR3T@127.0.0.1:abc/v1": "lm.base_url: has a port that is not a number from 1 to 65535 (set by",
		"http://127.0.0.1:65536/v1":        "lm.base_url: has a port that is not a number from 1 to 65535 (set by",
	} {
		_, err := load(t, config.LoadOptions{Set: map[string]any{"lm.base_url": url}})
		if want == "" {
			assert.NoError(t, err, url)
			continue
		}
		require.ErrorIs(t, err, config.ErrInvalid, url)
		assert.Contains(t, err.Error(), want)
		assert.NotContains(t, err.Error(), "3CR3")
	}
}
