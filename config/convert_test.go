package config_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/config"
)

// A value converts to its key's type only when it means exactly one value
// of that type: a fraction, a boolean, an empty variable, null, a number
// out of range or a negative number for an unsigned key is refused, never
// truncated, wrapped or read as zero or one.
func TestValuesConvertStrictly(t *testing.T) {
	for _, c := range []struct {
		file, variable string
		want           string // the problem; "" means it loads
	}{
		{file: "pool:\n  size: 2.7\n", want: "pool.size = 2.7 (set by file:"},
		{file: "pool:\n  max_queue: true\n", want: "pool.max_queue = true (set by file:"},
		{file: "lm:\n  max_tokens: 1e30\n", want: "lm.max_tokens = 1e+30 (set by file:"},
		{file: "pool:\n  recycle:\n    max_calls: -1\n", want: "pool.recycle.max_calls = -1 (set by file:"},
		{file: "mock:\n  seed: -1\n", want: "mock.seed = -1 (set by file:"},
		{file: "lm:\n  temperature:\n", want: "lm.temperature = null (set by file:"},
		{file: "lm:\n  cache: 1\n", want: "lm.cache = 1 (set by file:"},
		{file: "adapter: true\n", want: "adapter = true (set by file:"},
		{file: "python:\n  pass_env: [PATH, [HOME]]\n", want: "python.pass_env = [PATH [HOME]] (set by file:"},
		{file: "stop_timeout: 30\n", want: "stop_timeout = 30 (set by file:"},
		{variable: "DSPGO_LM__TEMPERATURE=", want: "lm.temperature =  (set by env:DSPGO_LM__TEMPERATURE): expected a number"},
		{variable: "DSPGO_POOL__SIZE=", want: "pool.size =  (set by env:DSPGO_POOL__SIZE): expected an integer"},
		{variable: "DSPGO_LM__CACHE=", want: "lm.cache =  (set by env:DSPGO_LM__CACHE): expected true or false"},
		{variable: "DSPGO_POOL__MAX_OVERFLOW=0x10", want: "pool.max_overflow = 0x10"},
		{variable: "DSPGO_POOL__RECYCLE__MAX_RSS_BYTES=-5", want: "pool.recycle.max_rss_bytes = -5"},
		// What does convert, exactly.
		{file: "pool:\n  size: 3.0\n  max_queue: 1e3\n"},
		{file: "remote:\n  host_id: 123\n"},
		{file: "mock:\n  seed: 18446744073709551615\n"},
		{variable: "DSPGO_POOL__SIZE= 4 "},
		{variable: "DSPGO_PYTHON__PASS_ENV="},
		{variable: "DSPGO_LM__CACHE=1"},
	} {
		opts := config.LoadOptions{Environ: env(c.variable)}
		if c.file != "" {
			opts.Files = []string{write(t, "dspgo.yaml", c.file)}
		}
		_, err := load(t, opts)
		if c.want == "" {
			assert.NoError(t, err, "%q %q", c.file, c.variable)
			continue
		}
		require.ErrorIs(t, err, config.ErrInvalid, "%q %q", c.file, c.variable)
		assert.Contains(t, err.Error(), c.want)
		assert.NotContains(t, err.Error(), "must", "one problem: the value, not what a guess made of it")
	}

	cfg, err := load(t, config.LoadOptions{Environ: env("DSPGO_POOL__SIZE=010")})
	require.NoError(t, err)
	assert.Equal(t, 10, cfg.Pool.Size, "integers are decimal: a leading zero is no octal")

	cfg, err = load(t, config.LoadOptions{Files: []string{write(t, "dspgo.yaml", "pool:\n  size: 3.0\n  max_queue: 1e3\nremote:\n  host_id: 123\n")},
		Environ: env("DSPGO_PYTHON__PASS_ENV=", "DSPGO_MOCK__SEED=18446744073709551615")})
	require.NoError(t, err)
	assert.Equal(t, 3, cfg.Pool.Size)
	assert.Equal(t, 1000, cfg.Pool.MaxQueue)
	assert.Equal(t, "123", cfg.Remote.HostID)
	assert.Equal(t, []string{}, cfg.Python.PassEnv, "an empty variable passes no variable")
	assert.Equal(t, uint64(math.MaxUint64), cfg.Mock.Seed)

	// Go values, from LoadOptions.Set: any integer type, a duration as
	// time.Duration or its text, a list as []string or []any.
	cfg, err = load(t, config.LoadOptions{Set: map[string]any{"pool.size": uint8(3), "pool.max_queue": int64(9), "stop_timeout": 5 * time.Second,
		"port.call_timeout": "1m", "python.handlers": []any{"a", "b"}, "lm.temperature": 1}})
	require.NoError(t, err)
	assert.Equal(t, 3, cfg.Pool.Size)
	assert.Equal(t, 9, cfg.Pool.MaxQueue)
	assert.Equal(t, 5*time.Second, cfg.StopTimeout)
	assert.Equal(t, time.Minute, cfg.Port.CallTimeout)
	assert.Equal(t, []string{"a", "b"}, cfg.Python.Handlers)
	assert.Equal(t, 1.0, cfg.LM.Temperature)
	_, err = load(t, config.LoadOptions{Set: map[string]any{"pool.size": 5 * time.Second}})
	assert.ErrorContains(t, err, "pool.size = 5s (set by option): expected an integer")
}

// An empty mapping or a null where a section or an environment block goes
// sets nothing; an empty block still defines its environment. An empty
// section that no key has is still unknown.
func TestEmptySectionsAndBlocks(t *testing.T) {
	for _, file := range []string{
		"adapter: mock\nenvironments:\n  ci: {}\n",
		"adapter: mock\nenvironments:\n  ci:\n",
		"adapter: mock\nenvironments:\n  ci:\n    pool: {}\n    lm:\n",
		"adapter: mock\npool: {}\nlm:\nremote:\n  embedded: {}\nenvironments:\n  ci: {}\n  prod:\n",
	} {
		cfg, err := load(t, config.LoadOptions{Files: []string{write(t, "dspgo.yaml", file)}, Env: "ci"})
		if assert.NoError(t, err, file) {
			assert.Equal(t, "mock", cfg.Adapter)
			assert.Equal(t, 1024, cfg.Pool.MaxQueue, "an empty section keeps the defaults")
			assert.Equal(t, "default", cfg.Source("pool.max_queue"))
		}
	}
	_, err := load(t, config.LoadOptions{Files: []string{write(t, "dspgo.yaml", "adapter: mock\nenvironments: {}\n")}})
	assert.NoError(t, err)
	_, err = load(t, config.LoadOptions{Files: []string{write(t, "dspgo.yaml", "adapter: mock\nenvironments: {}\n")}, Env: "ci"})
	assert.ErrorIs(t, err, config.ErrUnknownEnvironment)

	_, err = load(t, config.LoadOptions{Files: []string{write(t, "dspgo.yaml", "pol: {}\nenvironments:\n  ci:\n    pol:\n")}, Env: "ci"})
	require.Error(t, err)
	assert.Equal(t, `config: 2 problems: unknown key "pol" in the environments.ci block of file:`+"", err.Error()[:len(`config: 2 problems: unknown key "pol" in the environments.ci block of file:`)])
	assert.NotErrorIs(t, err, config.ErrUnknownEnvironment, "a block with an unknown key is still a block")
}

// port.max_frame_bytes is at most what a frame's 4-byte header can say,
// which is what the worker accepts: a larger limit loaded, and then every
// worker refused to start.
func TestPortFrameLimitFitsTheHeader(t *testing.T) {
	cfg, err := load(t, config.LoadOptions{Environ: env("DSPGO_PORT__MAX_FRAME_BYTES=4294967295")})
	require.NoError(t, err)
	assert.Equal(t, math.MaxUint32, cfg.Port.MaxFrameBytes)
	_, err = load(t, config.LoadOptions{Environ: env("DSPGO_PORT__MAX_FRAME_BYTES=4294967296")})
	assert.ErrorContains(t, err, "port.max_frame_bytes: must be from 1024 to 4294967295 (a frame's length is 4 bytes), got 4294967296 (set by env:DSPGO_PORT__MAX_FRAME_BYTES)")
	_, err = load(t, config.LoadOptions{Environ: env("DSPGO_PORT__MAX_FRAME_BYTES=1023")})
	assert.ErrorContains(t, err, "port.max_frame_bytes: must be from 1024 to 4294967295")
}

// The environment is the highest layer's env, as every key's value is:
// an explicitly empty one applies no block, and of two files the later
// wins. The block applied and the env shown with its source agree.
func TestEnvironmentOfTheHighestLayer(t *testing.T) {
	blocks := write(t, "a.yaml", "env: dev\nenvironments:\n  dev:\n    pool:\n      size: 2\n  prod:\n    pool:\n      size: 5\n")
	later := write(t, "b.yaml", "env: prod\n")

	cfg, err := load(t, config.LoadOptions{Files: []string{blocks, later}})
	require.NoError(t, err)
	assert.Equal(t, "prod", cfg.Env)
	assert.Equal(t, 5, cfg.Pool.Size, "the later file's environment")
	assert.Equal(t, "file:"+later, cfg.Source("env"))

	cfg, err = load(t, config.LoadOptions{Files: []string{blocks}, Environ: env("DSPGO_ENV=")})
	require.NoError(t, err)
	assert.Equal(t, "", cfg.Env, "an empty variable over the file's env")
	assert.Equal(t, 0, cfg.Pool.Size, "no block")
	assert.Equal(t, "env:DSPGO_ENV", cfg.Source("env"))

	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	config.BindFlags(fs)
	require.NoError(t, fs.Parse([]string{"--env="}))
	cfg, err = load(t, config.LoadOptions{Files: []string{blocks}, Environ: env("DSPGO_ENV=prod"), Flags: fs})
	require.NoError(t, err)
	assert.Equal(t, "", cfg.Env, "--env '' over DSPGO_ENV")
	assert.Equal(t, 0, cfg.Pool.Size)
	assert.Equal(t, "flag:--env", cfg.Source("env"))
}

// A value of the wrong type is not quoted when its key may hold a secret:
// a list of NATS URLs with their passwords, or a key written where its
// variable's name belongs.
func TestWrongTypesQuoteNoSecret(t *testing.T) {
	for key, file := range map[string]string{
		"remote.url":          "remote:\n  url: [nats://alice:S3CR3T@a:4222, nats://alice:S3CR3T@b:4222]\n",
		"lm.base_url":         "lm:\n  base_url: [https://u:S3CR3T@lm.example/v1]\n",
		"remote.lm_base_urls": "remote:\n  lm_base_urls: true\n",
		"lm.api_key_env":      "lm:\n  api_key_env: [sk-S3CR3T]\n",
		"remote.password_env": "remote:\n  user: alice\n  password_env: [S3CR3T]\n",
	} {
		_, err := load(t, config.LoadOptions{Files: []string{write(t, "dspgo.yaml", file)}})
		require.ErrorIs(t, err, config.ErrInvalid, key)
		assert.Contains(t, err.Error(), key+" (set by file:", key)
		assert.Contains(t, err.Error(), "the value is not shown", key)
		assert.NotContains(t, err.Error(), "3CR3", key)
	}
	_, err := load(t, config.LoadOptions{Files: []string{write(t, "dspgo.yaml", "adapter: [mock]\n")}})
	assert.ErrorContains(t, err, "adapter = [mock] (set by file:", "other values are quoted")
}

// remote.max_in_flight_bytes 0 is refused: the host took it for its
// default, 256 MiB, while config explain showed 0.
func TestMaxInFlightBytesIsNotZero(t *testing.T) {
	_, err := load(t, config.LoadOptions{Environ: env("DSPGO_REMOTE__MAX_IN_FLIGHT_BYTES=0")})
	assert.ErrorContains(t, err, "remote.max_in_flight_bytes: must not be zero (negative means no bound) (set by env:DSPGO_REMOTE__MAX_IN_FLIGHT_BYTES)")
	cfg, err := load(t, config.LoadOptions{Environ: env("DSPGO_REMOTE__MAX_IN_FLIGHT_BYTES=-1")})
	require.NoError(t, err)
	assert.Equal(t, int64(-1), cfg.Remote.MaxInFlightBytes)
}

// env in an environment block is refused with why, not with the
// suggestion of the key it is.
func TestEnvInABlock(t *testing.T) {
	_, err := load(t, config.LoadOptions{Files: []string{write(t, "dspgo.yaml", "environments:\n  ci:\n    env: prod\n")}, Env: "ci"})
	require.ErrorIs(t, err, config.ErrUnknownKey)
	assert.Contains(t, err.Error(), `unknown key "env" in the environments.ci block of file:`)
	assert.Contains(t, err.Error(), "(env chooses the block: set it at the top of a file, or with --env or DSPGO_ENV)")
	assert.NotContains(t, err.Error(), `did you mean "env"`)
}

// An env given as a number names the block as its text, as the value
// shown does.
func TestEnvAsANumber(t *testing.T) {
	blocks := write(t, "a.yaml", "environments:\n  \"2024\":\n    pool:\n      size: 2\n")
	cfg, err := load(t, config.LoadOptions{Files: []string{blocks}, Set: map[string]any{"env": 2024}})
	require.NoError(t, err)
	assert.Equal(t, "2024", cfg.Env)
	assert.Equal(t, 2, cfg.Pool.Size)
	_, err = load(t, config.LoadOptions{Files: []string{blocks}, Set: map[string]any{"env": 7}})
	assert.ErrorIs(t, err, config.ErrUnknownEnvironment)
}

// A file key holding what its file holds (a password and its line break,
// a PEM key, an NKEY seed) is refused without quoting it: every error
// about the file quoted it as the file's name, and config explain showed
// it.
func TestFileKeysHoldPathsNotSecrets(t *testing.T) {
	pem := "-----BEGIN PRIVATE KEY-----\nMIIS3CR3T\n-----END PRIVATE KEY-----\n"
	seed := "SUAS3CR3T" + strings.Repeat("A", 49)
	for key, value := range map[string]string{
		"remote.tls.key_file":          pem,
		"remote.embedded.tls.key_file": pem,
		"remote.nkey_seed_file":        seed,
		"remote.token_file":            "S3CR3T-token\n",
		"remote.creds_file":            "-----BEGIN NATS USER JWT-----S3CR3T",
	} {
		set := map[string]any{key: value}
		if strings.HasPrefix(key, "remote.embedded.tls.") {
			set["remote.embedded.tls.cert_file"] = "/etc/dspgo/cert.pem"
		}
		if key == "remote.tls.key_file" {
			set["remote.tls.cert_file"] = "/etc/dspgo/cert.pem"
		}
		_, err := load(t, config.LoadOptions{Set: set})
		require.ErrorIs(t, err, config.ErrInvalid, key)
		assert.Contains(t, err.Error(), key+": holds what looks like a secret or a file's contents", key)
		assert.NotContains(t, err.Error(), "3CR3", key)
	}
	_, err := load(t, config.LoadOptions{Set: map[string]any{"remote.nkey_seed_file": "/run/secrets/SUAS3CR3T.seed",
		"remote.embedded.users_file": "/etc/dspgo/nats users", "remote.embedded.enabled": true}})
	assert.NoError(t, err, "paths, even with spaces")
}
