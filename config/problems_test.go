package config_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/config"
)

// problemsOf returns the problems of a Load error.
func problemsOf(t *testing.T, err error) []config.Problem {
	t.Helper()
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	return cerr.Problems
}

// Every problem of every kind is reported in one pass, each once, with its
// key and source; a check that relates two keys is skipped when one of
// them is invalid on its own, and a default is never blamed for another
// key's value.
func TestProblemsInOnePass(t *testing.T) {
	cases := []struct {
		name  string
		file  string   // YAML
		env   []string // DSPGO_* variables
		set   map[string]any
		kinds []error
		want  []string // one substring per problem, in order
	}{
		{
			name: "unknown keys, type errors and range errors together",
			file: "pool:\n  sise: 3\n  size: eight\n  affinity: sticky\n  checkout_timeout: 30\nlog:\n  level: loud\nmistake: 1\n" +
				"environments:\n  ci:\n    pool:\n      lazzy: true\n",
			env:   []string{"DSPGO_POOL_MAX_QUEUE=5", "DSPGO_LM__TEMPERATURE=hot", "DSPGO_PORT__MAX_CONCURRENCY=0"},
			kinds: []error{config.ErrUnknownKey, config.ErrInvalid},
			want: []string{
				`unknown key "mistake" set by file:`,
				`unknown key "pool.lazzy" in the environments.ci block of file:`,
				`unknown key "pool.sise" set by file:`,
				`unknown key "pool_max_queue" set by env:DSPGO_POOL_MAX_QUEUE (did you mean DSPGO_POOL__MAX_QUEUE?)`,
				"lm.temperature = hot (set by env:DSPGO_LM__TEMPERATURE): expected a number",
				"pool.size = eight (set by file:",
				"pool.checkout_timeout = 30 (set by file:",
				`log.level: "loud" is not one of debug, info, warn, error (set by file:`,
				"port.max_concurrency: must be at least 1, got 0 (set by env:DSPGO_PORT__MAX_CONCURRENCY)",
				`pool.affinity: "sticky" is not one of none, prefer, strict (set by file:`,
			},
		},
		{
			name:  "a negative pool.size does not make pool.min_ready wrong",
			file:  "pool:\n  size: -4\n",
			kinds: []error{config.ErrInvalid},
			want:  []string{"pool.size: must not be negative, got -4 (set by file:"},
		},
		{
			name:  "a negative pool.size is not compared with a pool.min_ready a user set",
			file:  "pool:\n  size: -4\n",
			env:   []string{"DSPGO_POOL__MIN_READY=2"},
			kinds: []error{config.ErrInvalid},
			want:  []string{"pool.size: must not be negative, got -4 (set by file:"},
		},
		{
			name:  "a pool.size that does not convert does not make pool.min_ready wrong",
			env:   []string{"DSPGO_POOL__SIZE=four", "DSPGO_POOL__MIN_READY=2"},
			kinds: []error{config.ErrInvalid},
			want:  []string{"pool.size = four (set by env:DSPGO_POOL__SIZE): expected an integer"},
		},
		{
			name:  "a value that does not convert is not also out of range",
			env:   []string{"DSPGO_POOL__CHECKOUT_TIMEOUT=30", "DSPGO_PORT__MAX_CONCURRENCY=lots"},
			kinds: []error{config.ErrInvalid},
			want: []string{
				"port.max_concurrency = lots (set by env:DSPGO_PORT__MAX_CONCURRENCY): expected an integer",
				"pool.checkout_timeout = 30 (set by env:DSPGO_POOL__CHECKOUT_TIMEOUT): expected a duration",
			},
		},
		{
			name:  "pool.min_ready above a valid pool.size names both sources",
			file:  "pool:\n  size: 2\n",
			env:   []string{"DSPGO_POOL__MIN_READY=3"},
			kinds: []error{config.ErrInvalid},
			want:  []string{"pool.min_ready: must not exceed pool.size (2, set by file:"},
		},
		{
			name:  "port.restart.min above the default max blames min",
			file:  "port:\n  restart:\n    min: 20s\n",
			kinds: []error{config.ErrInvalid},
			want:  []string{"port.restart.min: must not exceed port.restart.max (10s, set by default), got 20s (set by file:"},
		},
		{
			name:  "an invalid port.restart.min is not compared with max",
			file:  "port:\n  restart:\n    min: -1s\n    max: 0s\n",
			kinds: []error{config.ErrInvalid},
			want:  []string{"port.restart.min: must be positive, got -1s", "port.restart.max: must be positive, got 0s"},
		},
		{
			name:  "an invalid lm.provider does not require lm.model",
			set:   map[string]any{"lm.provider": "opnai"},
			kinds: []error{config.ErrInvalid},
			want:  []string{`lm.provider: "opnai" is not one of dummy, openai (set by option)`},
		},
		{
			name:  "openai requires lm.model, blaming the layer that chose openai",
			file:  "lm:\n  provider: openai\n",
			kinds: []error{config.ErrInvalid},
			want:  []string{"lm.model: is required with the openai provider (lm.provider set by file:"},
		},
		{
			name:  "a certificate without its key blames the certificate's layer",
			env:   []string{"DSPGO_REMOTE__TLS__CERT_FILE=c.pem"},
			kinds: []error{config.ErrInvalid},
			want:  []string{"remote.tls.key_file: is required with remote.tls.cert_file (remote.tls.cert_file set by env:DSPGO_REMOTE__TLS__CERT_FILE)"},
		},
		{
			name:  "an unknown environment with the other problems",
			file:  "environments:\n  ci:\n    adapter: port\n",
			env:   []string{"DSPGO_ENV=staging", "DSPGO_POOL__SIZE=-1"},
			kinds: []error{config.ErrUnknownEnvironment, config.ErrInvalid},
			want: []string{
				`unknown environment "staging": no config file has an environments.staging block (defined: ci) (env set by env:DSPGO_ENV)`,
				"pool.size: must not be negative, got -1 (set by env:DSPGO_POOL__SIZE)",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := config.LoadOptions{Environ: env(tc.env...), Set: tc.set}
			if tc.file != "" {
				opts.Files = []string{write(t, "dspgo.yaml", tc.file)}
			}
			_, err := load(t, opts)
			require.Error(t, err)
			for _, kind := range tc.kinds {
				assert.ErrorIs(t, err, kind)
			}
			probs := problemsOf(t, err)
			msgs := make([]string, len(probs))
			for i, p := range probs {
				msgs[i] = p.Message
				assert.NotEqual(t, "default", p.Source, "a default is blamed: %s", p.Message)
				assert.NotContains(t, p.Message, "(set by default)", "a default is blamed")
				assert.True(t, strings.Contains(p.Message, p.Key), "%q names its key %q", p.Message, p.Key)
			}
			require.Len(t, msgs, len(tc.want), "one problem each, no cascade:\n%s", strings.Join(msgs, "\n"))
			for i, want := range tc.want {
				assert.Contains(t, msgs[i], want)
			}
		})
	}
}

// Validate, on a configuration made in code, reports the same way.
func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := config.Defaults()
	cfg.Pool.Size = -4
	cfg.Log.Level = "loud"
	err := cfg.Validate()
	require.ErrorIs(t, err, config.ErrInvalid)
	probs := problemsOf(t, err)
	require.Len(t, probs, 2, "%v", err)
	assert.Equal(t, "log.level", probs[0].Key)
	assert.Equal(t, "pool.size", probs[1].Key)
	assert.Regexp(t, `^config: 2 problems: log\.level: .*; pool\.size: `, err.Error())
	defaults := config.Defaults()
	assert.NoError(t, defaults.Validate(), "the defaults are valid")
}

// A config file larger than MaxFileBytes is refused by its size, before
// it is read, and the error says the limit.
func TestConfigFileSizeLimit(t *testing.T) {
	cases := []struct {
		name string
		size int64 // the file's size: valid YAML padded with a comment, or a sparse file of zeros
		ok   bool
	}{
		{"at the limit", config.MaxFileBytes, true},
		{"one byte over", config.MaxFileBytes + 1, false},
		{"50 MB", 50 << 20, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dspgo.yaml")
			f, err := os.Create(path)
			require.NoError(t, err)
			if tc.size <= config.MaxFileBytes+1 {
				head := "adapter: mock\n#"
				_, err = f.WriteString(head + strings.Repeat("x", int(tc.size)-len(head)-1) + "\n")
			} else {
				// A sparse file: all zeros, which would not parse, so only the
				// size check can give ErrFileTooLarge.
				err = f.Truncate(tc.size)
			}
			require.NoError(t, err)
			require.NoError(t, f.Close())

			cfg, err := load(t, config.LoadOptions{Files: []string{path}})
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, "mock", cfg.Adapter)
				return
			}
			require.ErrorIs(t, err, config.ErrFileTooLarge)
			assert.Contains(t, err.Error(), path)
			assert.Regexp(t, regexp.MustCompile(`is \d+ bytes; the limit is 1048576 bytes \(1 MiB, config\.MaxFileBytes\)`), err.Error())
			assert.Contains(t, err.Error(), " is "+strconv.FormatInt(tc.size, 10)+" bytes", "refused by the size stat gives, not by reading")
		})
	}
}

// Unknown DSPGO_* variables name the variable meant; dspgo's reserved
// variables are ignored.
func TestEnvironmentVariables(t *testing.T) {
	cases := []struct {
		name     string
		variable string
		want     string // "" means it loads
		notWant  string
	}{
		{name: "the run id a host sets for its workers", variable: "DSPGO_RUN_ID=0123abcd"},
		{name: "a single underscore for a level", variable: "DSPGO_POOL_SIZE=4", want: `unknown key "pool_size" set by env:DSPGO_POOL_SIZE (did you mean DSPGO_POOL__SIZE?)`},
		{name: "two levels with single underscores", variable: "DSPGO_PORT_RESTART_MAX_RESTARTS=3", want: "(did you mean DSPGO_PORT__RESTART__MAX_RESTARTS?)"},
		{name: "a typo", variable: "DSPGO_POOL__SIZ=4", want: "(did you mean DSPGO_POOL__SIZE?)"},
		{name: "a typo at the top level", variable: "DSPGO_ADAPTR=mock", want: "(did you mean DSPGO_ADAPTER?)"},
		{name: "lower case", variable: "DSPGO_log_level=debug", want: "(did you mean DSPGO_LOG__LEVEL?)"},
		{name: "nothing close", variable: "DSPGO_NOPE=1", want: `unknown key "nope" set by env:DSPGO_NOPE`, notWant: "did you mean"},
		{name: "the prefix alone", variable: "DSPGO_=x", want: `unknown key "" set by env:DSPGO_`, notWant: "did you mean"},
		{name: "a reserved name is exact", variable: "DSPGO_RUN_IDS=1", want: `unknown key "run_ids"`},
		{name: "a config file by variable", variable: "DSPGO_CONFIG=dspgo.yaml", want: `unknown key "config" set by env:DSPGO_CONFIG (config files are LoadOptions.Files: the CLI's --config FILE, repeatable)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := load(t, config.LoadOptions{Environ: env(tc.variable)})
			if tc.want == "" {
				require.NoError(t, err)
				assert.Equal(t, []string{"default"}, cfg.Layers())
				return
			}
			require.ErrorIs(t, err, config.ErrUnknownKey)
			require.Len(t, problemsOf(t, err), 1)
			assert.Contains(t, err.Error(), tc.want)
			if tc.notWant != "" {
				assert.NotContains(t, err.Error(), tc.notWant)
			}
		})
	}
}

// Keys in files and options get the same hint, spelled as keys.
func TestUnknownKeyHints(t *testing.T) {
	path := write(t, "dspgo.yaml", "pool:\n  sise: 3\nlm:\n  modle: m\n")
	_, err := load(t, config.LoadOptions{Files: []string{path}, Set: map[string]any{"pool.lazzy": true}})
	require.ErrorIs(t, err, config.ErrUnknownKey)
	assert.Contains(t, err.Error(), `unknown key "lm.modle" set by file:`+path+` (did you mean "lm.model"?)`)
	assert.Contains(t, err.Error(), `unknown key "pool.sise" set by file:`+path+` (did you mean "pool.size"?)`)
	assert.Contains(t, err.Error(), `unknown key "pool.lazzy" set by option (did you mean "pool.lazy"?)`)
}

// The reserved variables start with the prefix, set no key, and are
// documented.
func TestReservedVariables(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	require.NoError(t, err)
	reserved := config.ReservedEnv()
	require.Contains(t, reserved, "DSPGO_RUN_ID")
	cfg, err := load(t, config.LoadOptions{})
	require.NoError(t, err)
	keys := map[string]bool{}
	for _, s := range cfg.Explain() {
		keys["DSPGO_"+strings.ToUpper(strings.ReplaceAll(s.Key, ".", "__"))] = true
	}
	for _, name := range reserved {
		assert.True(t, strings.HasPrefix(name, config.EnvPrefix), name)
		assert.False(t, keys[name], "%s is a configuration variable", name)
		assert.True(t, strings.Contains(string(doc), "`"+name+"`"), "docs/configuration.md lacks %s", name)
	}
}
