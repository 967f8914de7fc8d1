package secret_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/dspgo/dspgo/internal/secret"
)

// passwords hold the characters that differ across encodings; each
// carries the marker S3CR3T.
var passwords = []string{
	"S3CR3T",
	"pa/ss+w=rd-S3CR3T",
	`q"uo\te-S3CR3T`,
	"é-ключ-🎉-S3CR3T",
	"h#sh?q@at-S3CR3T",
	"per%cent%zz-S3CR3T",
	"sp ace-S3CR3T",
}

// forms are the ways a credential is written into a URL: raw, escaped as
// a password, escaped as a query value, and percent-encoded whole.
func forms(p string) map[string]string {
	return map[string]string{
		"raw":        p,
		"userinfo":   url.UserPassword("u", p).String()[2:],
		"query":      url.QueryEscape(p),
		"path":       url.PathEscape(p),
		"all":        strings.ToUpper(fmt.Sprintf("%x", p)),
		"lower-hex":  strings.ToLower(url.QueryEscape(p)),
		"upper-hex":  strings.ToUpper(url.PathEscape(p)),
		"plus space": strings.ReplaceAll(url.PathEscape(p), "%20", "+"),
	}
}

func TestURLHidesEveryEncoding(t *testing.T) {
	tried := 0
	for _, p := range passwords {
		for name, enc := range forms(p) {
			for _, u := range []string{
				"nats://user:" + enc + "@nats.example:4222",
				"nats://" + enc + "@nats.example:4222", // a NATS token
				"tls://user:" + enc + "@[::1]:4222/",
				"user:" + enc + "@nats.example:4222", // no scheme
				"https://user:" + enc + "@llm.example/v1",
			} {
				tried++
				got := secret.URL(u)
				assert.NotContains(t, got, "S3CR3T", "%s form of %q in %s", name, p, u)
				assert.NotContains(t, got, "S3CR3T"[1:], "%s form of %q in %s", name, p, u)
				assert.NotContains(t, got, "user", "%s in %s: the user name goes too", name, u)
				assert.True(t, strings.HasSuffix(got, u[strings.LastIndex(u, "@"):]), "the host stays: %s", got)
				assert.Contains(t, got, secret.Mask)
			}
		}
	}
	t.Logf("%d URLs", tried)
}

func TestURLs(t *testing.T) {
	assert.Equal(t, "nats://***@a:4222,nats://b:4222, tls://***@c:4222",
		secret.URLs("nats://u:S3CR3T@a:4222,nats://b:4222, tls://t%2FS3CR3T@c:4222"))
	for _, s := range []string{"", "nats://a:4222", "https://api.openai.com/v1", "not a url"} {
		assert.Equal(t, s, secret.URLs(s), "no credentials: unchanged")
	}
	assert.Equal(t, "https://***@host/v1", secret.URL("https://user:p@ss@host/v1"), "a raw '@' in the password")
	assert.Equal(t, "***@host:4222", secret.URL("user:pa://S3CR3T@host:4222"), "no scheme, '://' in the password")
}
