package config

import (
	"fmt"
	"math"
	"net"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/dspgo/dspgo/internal/lmurl"
	"github.com/dspgo/dspgo/internal/secret"
)

// Validate checks the configuration and reports every invalid field at
// once, as an *Error, each with the layer that set it. A check relating
// two keys runs only when both are valid on their own, and blames the key
// a user set rather than a default. It does not check the adapter name
// against the registry, which does that itself.
func (c *Config) Validate() error {
	var p problems
	c.validate(&p)
	return p.err()
}

// validate adds the invalid values to p, skipping keys p already holds as
// invalid (values that did not convert).
func (c *Config) validate(p *problems) {
	add := func(key, source, msg string) {
		if p.valid(key) {
			p.addInvalid(key, source, msg)
		}
	}
	check := func(ok bool, key, format string, args ...any) {
		if !ok {
			add(key, c.Source(key), fmt.Sprintf("%s: %s (set by %s)", key, fmt.Sprintf(format, args...), c.Source(key)))
		}
	}
	oneOf := func(key, value string, allowed ...string) {
		for _, a := range allowed {
			if value == a {
				return
			}
		}
		check(false, key, "%q is not one of %s", value, strings.Join(allowed, ", "))
	}
	positive := func(key string, d time.Duration) { check(d > 0, key, "must be positive, got %v", d) }
	notNegative := func(key string, n int) { check(n >= 0, key, "must not be negative, got %d", n) }
	// related checks a rule between two keys that are valid on their own.
	// It blames key, unless key holds its default and other does not:
	// then other, the one a user set.
	related := func(ok bool, key, keyMsg, other, otherMsg string) {
		if ok || !p.valid(key, other) {
			return
		}
		if c.Source(key) == "default" && c.Source(other) != "default" {
			add(other, c.Source(other), fmt.Sprintf("%s: %s (set by %s)", other, otherMsg, c.Source(other)))
			return
		}
		add(key, c.Source(key), fmt.Sprintf("%s: %s (set by %s)", key, keyMsg, c.Source(key)))
	}
	// required reports key, empty, as required by other's value, blaming
	// the layer that set other.
	required := func(ok bool, key, msg, other string) {
		if !ok && p.valid(key, other) {
			add(key, c.Source(other), fmt.Sprintf("%s: %s (%s set by %s)", key, msg, other, c.Source(other)))
		}
	}

	// Each key on its own.
	check(c.Adapter != "", "adapter", "must name a backend")
	positive("stop_timeout", c.StopTimeout)
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "text", "json", "otel")
	check(c.Python.Interpreter != "", "python.interpreter", "must not be empty")
	oneOf("lm.provider", c.LM.Provider, "dummy", "openai")
	check(c.LM.Temperature <= 2, "lm.temperature", "must be at most 2, got %v", c.LM.Temperature)
	notNegative("lm.max_tokens", c.LM.MaxTokens)
	check(c.LM.Timeout >= 0, "lm.timeout", "must not be negative")
	variableName(check, "lm.api_key_env", c.LM.APIKeyEnv)
	oneOf("lm.engine", c.LM.Engine, "auto", "native", "dspy")
	oneOf("lm.dspy_adapter", c.LM.DSPyAdapter, DSPyAdapters...)
	check(slices.Contains(NativeDSPyAdapters, c.LM.DSPyAdapter) || c.LM.Engine != "native", "lm.dspy_adapter", "%s needs the dspy engine (lm.engine is native)", c.LM.DSPyAdapter)
	// The value is not quoted: it may hold credentials.
	if c.LM.BaseURL != "" { // empty: the provider's own
		problem := lmurl.Problem(c.LM.BaseURL)
		check(problem == "", "lm.base_url", "%s", problem)
	}
	check(c.Mock.MaxFrameBytes >= 1024, "mock.max_frame_bytes", "must be at least 1024, got %d", c.Mock.MaxFrameBytes)

	pt := c.Port
	positive("port.start_timeout", pt.StartTimeout)
	check(pt.CallTimeout != 0, "port.call_timeout", "must not be zero (negative means no bound)")
	positive("port.write_timeout", pt.WriteTimeout)
	positive("port.stop_grace", pt.StopGrace)
	// A frame's header holds its length in 4 bytes: the worker refuses a
	// larger limit when it starts.
	check(pt.MaxFrameBytes >= 1024 && int64(pt.MaxFrameBytes) <= math.MaxUint32, "port.max_frame_bytes",
		"must be from 1024 to 4294967295 (a frame's length is 4 bytes), got %d", pt.MaxFrameBytes)
	check(pt.MaxConcurrency >= 1, "port.max_concurrency", "must be at least 1, got %d", pt.MaxConcurrency)
	check(pt.StreamWindow >= 1 && pt.StreamWindow <= 4096, "port.stream_window", "must be from 1 to 4096, got %d", pt.StreamWindow)
	positive("port.restart.min", pt.Restart.Min)
	positive("port.restart.max", pt.Restart.Max)
	check(pt.Restart.Jitter >= 0 && pt.Restart.Jitter < 1, "port.restart.jitter", "must be in [0, 1), got %v", pt.Restart.Jitter)
	check(pt.Restart.MaxRestarts >= 1, "port.restart.max_restarts", "must be at least 1, got %d", pt.Restart.MaxRestarts)
	positive("port.restart.window", pt.Restart.Window)

	q := c.Pool
	notNegative("pool.size", q.Size)
	notNegative("pool.max_overflow", q.MaxOverflow)
	positive("pool.overflow_idle", q.OverflowIdle)
	check(q.StartConcurrency >= 1, "pool.start_concurrency", "must be at least 1, got %d", q.StartConcurrency)
	notNegative("pool.min_ready", q.MinReady)
	positive("pool.checkout_timeout", q.CheckoutTimeout)
	check(q.MaxQueue >= 1, "pool.max_queue", "must be at least 1, got %d", q.MaxQueue)
	check(q.WorkerConcurrency >= 1, "pool.worker_concurrency", "must be at least 1, got %d", q.WorkerConcurrency)
	oneOf("pool.affinity", q.Affinity, "none", "prefer", "strict")
	check(q.Recycle.MaxAge >= 0, "pool.recycle.max_age", "must not be negative")
	check(q.Recycle.MaxAgeJitter >= 0, "pool.recycle.max_age_jitter", "must not be negative")
	check(q.Recycle.MaxIdle >= 0, "pool.recycle.max_idle", "must not be negative")
	check(q.HealthInterval != 0, "pool.health_interval", "must not be zero (negative disables health checks)")
	positive("pool.health_timeout", q.HealthTimeout)

	r := c.Remote
	positive("remote.connect_timeout", r.ConnectTimeout)
	check(prefixRE.MatchString(r.Prefix), "remote.prefix", "%q must be dot-separated tokens of letters, digits, '_' and '-'", r.Prefix)
	check(tokenRE.MatchString(r.QueueGroup), "remote.queue_group", "%q may hold only letters, digits, '_' and '-'", r.QueueGroup)
	positive("remote.heartbeat", r.Heartbeat)
	oneOf("remote.affinity", r.Affinity, "none", "prefer", "strict")
	check(r.Replicas >= 1 && r.Replicas <= 5, "remote.replicas", "must be from 1 to 5, got %d", r.Replicas)
	// Zero is no bound of its own: the host would take it for its default.
	check(r.MaxInFlightBytes != 0, "remote.max_in_flight_bytes", "must not be zero (negative means no bound)")
	check(r.HostID == "" || tokenRE.MatchString(r.HostID), "remote.host_id", "%q may hold only letters, digits, '_' and '-'", r.HostID)
	if _, port, err := net.SplitHostPort(r.Embedded.Listen); err != nil {
		check(false, "remote.embedded.listen", "must be host:port: %v", err)
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || port != strconv.FormatUint(n, 10) {
		check(false, "remote.embedded.listen", "port %q must be a number from 0 (any free port) to 65535", port)
	}

	// Keys against each other, once each is valid on its own.
	required(c.LM.Provider != "openai" || c.LM.Model != "", "lm.model", "is required with the openai provider", "lm.provider")
	related(pt.Restart.Max >= pt.Restart.Min,
		"port.restart.max", fmt.Sprintf("must be at least port.restart.min (%v, set by %s), got %v", pt.Restart.Min, c.Source("port.restart.min"), pt.Restart.Max),
		"port.restart.min", fmt.Sprintf("must not exceed port.restart.max (%v, set by %s), got %v", pt.Restart.Max, c.Source("port.restart.max"), pt.Restart.Min))
	related(q.Size == 0 || q.MinReady <= q.Size,
		"pool.min_ready", fmt.Sprintf("must not exceed pool.size (%d, set by %s), got %d", q.Size, c.Source("pool.size"), q.MinReady),
		"pool.size", fmt.Sprintf("must be 0 or at least pool.min_ready (%d, set by %s), got %d", q.MinReady, c.Source("pool.min_ready"), q.Size))
	if r.URL == "" && p.valid("remote.embedded.enabled") {
		check(r.Embedded.Enabled, "remote.url", "must name a NATS server (or set remote.embedded.enabled)")
	}
	required(r.TLS.CertFile == "" || r.TLS.KeyFile != "", "remote.tls.key_file", "is required with remote.tls.cert_file", "remote.tls.cert_file")
	required(r.TLS.KeyFile == "" || r.TLS.CertFile != "", "remote.tls.cert_file", "is required with remote.tls.key_file", "remote.tls.key_file")
	c.validateRemoteAuth(p, check, required)
}

// validateRemoteAuth checks the keys of NATS authentication and of the
// worker hosts' LM allowlist. No message shows a secret: the keys name
// variables and files.
func (c *Config) validateRemoteAuth(p *problems, check func(bool, string, string, ...any), required func(bool, string, string, string)) {
	r := c.Remote
	var ways []string
	for _, w := range []struct{ key, value string }{
		{"remote.creds_file", r.CredsFile}, {"remote.nkey_seed_file", r.NKeySeedFile}, {"remote.user", r.User},
		{"remote.token_env", r.TokenEnv}, {"remote.token_file", r.TokenFile},
	} {
		if w.value != "" {
			ways = append(ways, w.key)
		}
	}
	if len(ways) > 1 {
		check(false, ways[len(ways)-1], "give one way to authenticate to NATS, not %s", strings.Join(ways, " and "))
	}
	check(r.User == "" || tokenRE.MatchString(r.User), "remote.user", "%q may hold only letters, digits, '_' and '-' (it names the connection's inbox)", r.User)
	required(r.User == "" || r.PasswordEnv != "" || r.PasswordFile != "", "remote.password_env", "(or remote.password_file) is required with remote.user", "remote.user")
	required(r.PasswordEnv == "" || r.User != "", "remote.user", "is required with remote.password_env", "remote.password_env")
	required(r.PasswordFile == "" || r.User != "", "remote.user", "is required with remote.password_file", "remote.password_file")
	check(r.PasswordEnv == "" || r.PasswordFile == "", "remote.password_file", "give remote.password_env or remote.password_file, not both")
	variableName(check, "remote.password_env", r.PasswordEnv)
	variableName(check, "remote.token_env", r.TokenEnv)
	check(r.InboxPrefix == "" || (strings.HasPrefix(r.InboxPrefix, "_INBOX.") && prefixRE.MatchString(r.InboxPrefix)),
		"remote.inbox_prefix", "%q must be _INBOX.<token>… (hosts answer only inboxes)", r.InboxPrefix)
	for i, raw := range r.LMBaseURLs {
		// The value is not quoted: it may hold credentials.
		switch problem := lmurl.Problem(raw); {
		case problem != "":
			check(false, "remote.lm_base_urls", "entry %d %s", i+1, problem)
		case strings.Contains(raw, "@"):
			check(false, "remote.lm_base_urls", "entry %d holds credentials, which config explain would show; give a credentialed endpoint as lm.base_url", i+1)
		}
	}
	e := r.Embedded
	// A file key's value is a path: one holding the secret itself, pasted
	// where its file's path belongs, would be quoted by every error about
	// the file, and shown by config explain.
	for _, f := range []struct{ key, value string }{
		{"remote.creds_file", r.CredsFile}, {"remote.nkey_seed_file", r.NKeySeedFile}, {"remote.password_file", r.PasswordFile},
		{"remote.token_file", r.TokenFile}, {"remote.tls.ca_file", r.TLS.CAFile}, {"remote.tls.cert_file", r.TLS.CertFile},
		{"remote.tls.key_file", r.TLS.KeyFile}, {"remote.embedded.users_file", e.UsersFile}, {"remote.embedded.tls.ca_file", e.TLS.CAFile},
		{"remote.embedded.tls.cert_file", e.TLS.CertFile}, {"remote.embedded.tls.key_file", e.TLS.KeyFile},
	} {
		check(!secretNotPath(f.value), f.key, "holds what looks like a secret or a file's contents (a line break, a PEM block or an NKEY seed), "+
			"not a path; the value is not shown: give the path of the file that holds it")
	}
	if host, _, err := net.SplitHostPort(e.Listen); err == nil && e.Enabled {
		required(e.UsersFile != "" || isLoopback(host), "remote.embedded.users_file",
			fmt.Sprintf("is required to listen beyond loopback on %s: list the users and their roles, or listen on 127.0.0.1", e.Listen), "remote.embedded.listen")
	}
	required(e.TLS.CertFile == "" || e.TLS.KeyFile != "", "remote.embedded.tls.key_file", "is required with remote.embedded.tls.cert_file", "remote.embedded.tls.cert_file")
	required(e.TLS.KeyFile == "" || e.TLS.CertFile != "", "remote.embedded.tls.cert_file", "is required with remote.embedded.tls.key_file", "remote.embedded.tls.key_file")
	required(e.TLS.CAFile == "" || e.TLS.CertFile != "", "remote.embedded.tls.cert_file", "is required with remote.embedded.tls.ca_file", "remote.embedded.tls.ca_file")
}

// variableName checks that the value of key, a key naming the variable
// that holds a secret, is empty or a variable's name. The value is not
// quoted: a value that is no name is most likely the secret itself,
// written where its variable's name belongs.
func variableName(check func(bool, string, string, ...any), key, value string) {
	check(value == "" || envNameRE.MatchString(value), key,
		"is not an environment variable name (letters, digits and '_', not starting with a digit); the value is not shown, as it may be the secret itself: give the name of the variable that holds it")
}

// secretNotPath reports whether a file key's value is rather a file's
// contents than its path: it holds a control character (a line break), a
// PEM block's start, or is an NKEY seed ("S" then the key's type, 58
// characters of base32).
func secretNotPath(v string) bool {
	return strings.ContainsFunc(v, unicode.IsControl) || strings.Contains(v, "-----BEGIN") || nkeySeedRE.MatchString(strings.TrimSpace(v))
}

var nkeySeedRE = regexp.MustCompile(`^S[UAONCPX][A-Z2-7]{56}$`)

// envNameRE matches an environment variable's name.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// isLoopback reports whether host, an address to listen on, is
// "localhost" or a loopback IP address (as embedded.IsLoopback).
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

var (
	prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
	tokenRE  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// Setting is one key of Explain.
type Setting struct {
	// Key is the dotted key, such as "pool.size".
	Key string
	// Value is the value, formatted; secrets are shown as "***".
	Value string
	// Source is the layer that set it (see Config.Source).
	Source string
}

// Explain lists every key, sorted, with its value and the layer that set
// it.
func (c *Config) Explain() []Setting {
	var out []Setting
	v := reflect.ValueOf(c).Elem()
	walkFields(v.Type(), "", func(key string, index []int, _ reflect.Type) {
		out = append(out, Setting{Key: key, Value: format(key, v.FieldByIndex(index).Interface()), Source: c.Source(key)})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// ExplainText is Explain as aligned lines: key, value, source.
func (c *Config) ExplainText() string {
	settings := c.Explain()
	kw, vw := 0, 0
	for _, s := range settings {
		kw, vw = max(kw, len(s.Key)), max(vw, len(s.Value))
	}
	var b strings.Builder
	for _, s := range settings {
		fmt.Fprintf(&b, "%-*s  %-*s  %s\n", kw, s.Key, vw, s.Value, s.Source)
	}
	return b.String()
}

// secretWords mark keys whose values are never shown.
var secretWords = []string{"secret", "password", "token", "api_key"}

// isSecret reports whether key's value is a secret, never shown: its name
// ends with one of secretWords.
func isSecret(key string) bool {
	return slices.ContainsFunc(secretWords, func(w string) bool { return strings.HasSuffix(key, w) })
}

func format(key string, v any) string {
	if isSecret(key) {
		return "***"
	}
	switch x := v.(type) {
	case string:
		if strings.HasSuffix(key, "url") && strings.Contains(x, "@") {
			return redactURLs(x)
		}
	}
	switch x := v.(type) {
	case []string:
		return strings.Join(x, ",")
	case string:
		if x == "" {
			return `""`
		}
	}
	return fmt.Sprint(v)
}

// Layers lists the layers that contributed to the configuration, lowest
// first.
func (c *Config) Layers() []string { return append([]string(nil), c.layers...) }

// redactURLs hides the credentials in comma-separated URLs, however they
// are written (see secret.URL).
func redactURLs(s string) string { return secret.URLs(s) }
