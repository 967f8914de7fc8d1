package config_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/config"
)

// Explain shows no piece of a credential in a URL, however it is written:
// a password with characters that differ across encodings (raw or
// escaped), a NATS token in the user name, a URL that does not parse.
func TestExplainHidesURLCredentials(t *testing.T) {
	pass := `pa/ss+w=rd"\é-S3CR3T`
	for _, u := range []string{
		"nats://user:" + url.QueryEscape(pass) + "@nats.example:4222",
		"nats://user:" + url.PathEscape(pass) + "@nats.example:4222",
		"nats://user:" + pass + "@nats.example:4222",
		"nats://S3CR3T-token@nats.example:4222",
		"nats://user:bad%zzS3CR3T@nats.example:4222",
		"nats://a:4222,nats://user:S3CR3T@b:4222",
	} {
		cfg, err := load(t, config.LoadOptions{Environ: env("DSPGO_REMOTE__URL=" + u)})
		require.NoError(t, err, u)
		for _, s := range cfg.Explain() {
			if s.Key == "remote.url" {
				assert.NotContains(t, s.Value, "3CR3", u)
				assert.Contains(t, s.Value, "***@", u)
			}
		}
	}
}
