package config

import (
	"io"
	"time"
)

// Config is dspgo's merged configuration. Load fills it from the layers;
// every field has a default (see Defaults), so the zero layers give a
// working offline setup: the pool of Python workers with the dummy LM.
type Config struct {
	// Adapter names the backend: "mock", "port", "pool", "memory",
	// "remote", or a registered third-party name. Default "pool".
	Adapter string `koanf:"adapter"`
	// Env names the environments.<name> block to apply. Default "" (none).
	Env string `koanf:"env"`
	// StopTimeout bounds closing the adapter at shutdown. Default 30s.
	StopTimeout time.Duration `koanf:"stop_timeout"`

	Log    Log    `koanf:"log"`
	Python Python `koanf:"python"`
	LM     LM     `koanf:"lm"`
	Mock   Mock   `koanf:"mock"`
	Port   Port   `koanf:"port"`
	Pool   Pool   `koanf:"pool"`
	Remote Remote `koanf:"remote"`

	layers  []string          // layer names, lowest first
	sources map[string]string // key → the layer that set it
	environ func() []string   // LoadOptions.Environ; nil: os.Environ
	logOut  io.Writer         // LoadOptions.LogOutput; nil: os.Stderr
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default warn.
	Level string `koanf:"level"`
	// Format is text, json, or otel (JSON in the OpenTelemetry log data
	// model's shape). Default text.
	Format string `koanf:"format"`
}

// Python configures the worker processes of the port and pool adapters.
type Python struct {
	// Interpreter is the Python executable, resolved once. Default python3.
	Interpreter string `koanf:"interpreter"`
	// WorkerDir holds the dspgo_worker package. Default "" (the files
	// embedded in the binary).
	WorkerDir string `koanf:"worker_dir"`
	// PassEnv names host variables passed to workers (such as the LM key's
	// variable). Default PATH, HOME, LANG, LC_ALL, TZ, TMPDIR.
	PassEnv []string `koanf:"pass_env"`
	// Handlers are Python modules the workers import at start: their user
	// commands (@command) and custom DSPy modules (dspy_module, run as
	// KindModule programs) register. Default none.
	Handlers []string `koanf:"handlers"`
}

// LM configures the language model (sent with configure_lm).
type LM struct {
	// Provider is dummy or openai. Default dummy.
	Provider string `koanf:"provider"`
	// Model is the model name; required for openai. Default "".
	Model string `koanf:"model"`
	// BaseURL is the OpenAI-compatible endpoint, checked as configure_lm
	// checks base_url (an http or https URL with a host). Default "" (the
	// provider's own).
	BaseURL string `koanf:"base_url"`
	// APIKeyEnv names the workers' variable holding the API key; add it to
	// python.pass_env. Default "" (the provider's own, OPENAI_API_KEY).
	APIKeyEnv string `koanf:"api_key_env"`
	// Temperature is the sampling temperature; negative means the
	// provider's default. Default -1.
	Temperature float64 `koanf:"temperature"`
	// MaxTokens caps a completion; 0 means the provider's default.
	MaxTokens int `koanf:"max_tokens"`
	// Timeout bounds one LM request; 0 means the provider's default.
	Timeout time.Duration `koanf:"timeout"`
	// Engine is auto, native or dspy. Default auto.
	Engine string `koanf:"engine"`
	// DSPyAdapter is the DSPy adapter that formats prompts: one of
	// DSPyAdapters (xml and baml: the dspy engine only). Default chat.
	DSPyAdapter string `koanf:"dspy_adapter"`
	// Cache makes each worker process keep an in-memory cache of LM
	// replies keyed by the full request (never on disk): identical
	// requests are then answered without an LM call, and a reply served
	// from the cache reports no usage. Default false: every execution
	// calls the LM.
	Cache bool `koanf:"cache"`
	// ImageURLs lets a dspy.Image input or demo give its image by an
	// http, https or gs URL, which the model's server then fetches,
	// wherever it points. Default false: data: URIs only.
	ImageURLs bool `koanf:"image_urls"`
}

// Mock configures the mock adapter.
type Mock struct {
	// MaxFrameBytes is the frame limit the mock enforces. Default 16 MiB.
	MaxFrameBytes int `koanf:"max_frame_bytes"`
	// Seed seeds injected random failures. Default 0.
	Seed uint64 `koanf:"seed"`
}

// Port configures the port adapter, and each worker of a pool.
type Port struct {
	// StartTimeout bounds a worker's start. Default 30s.
	StartTimeout time.Duration `koanf:"start_timeout"`
	// CallTimeout bounds a call without a deadline; negative means none.
	// Default 2m.
	CallTimeout time.Duration `koanf:"call_timeout"`
	// WriteTimeout bounds one frame write. Default 30s.
	WriteTimeout time.Duration `koanf:"write_timeout"`
	// StopGrace is the wait before SIGTERM, and again before SIGKILL.
	// Default 2s.
	StopGrace time.Duration `koanf:"stop_grace"`
	// MaxFrameBytes is the frame limit. Default 16 MiB.
	MaxFrameBytes int `koanf:"max_frame_bytes"`
	// MaxConcurrency is the calls in flight on the port's worker. Default 4.
	MaxConcurrency int `koanf:"max_concurrency"`
	// StreamWindow is the chunks a worker may stream ahead of the
	// consumer (its credit). Default 16.
	StreamWindow int `koanf:"stream_window"`
	// Restart is the restart backoff.
	Restart Restart `koanf:"restart"`
}

// Restart is a restart backoff policy.
type Restart struct {
	// Min is the first delay. Default 100ms.
	Min time.Duration `koanf:"min"`
	// Max caps the delay. Default 10s.
	Max time.Duration `koanf:"max"`
	// Jitter randomises delays by this fraction. Default 0.2.
	Jitter float64 `koanf:"jitter"`
	// MaxRestarts is how many restarts Window allows. Default 10.
	MaxRestarts int `koanf:"max_restarts"`
	// Window is the period of MaxRestarts. Default 1m.
	Window time.Duration `koanf:"window"`
}

// Pool configures the pool adapter (see pool.Options for each field).
type Pool struct {
	// Size is the number of workers; 0 means one per core (GOMAXPROCS).
	// Default 0.
	Size int `koanf:"size"`
	// MaxOverflow is the extra workers under load. Default 0.
	MaxOverflow int `koanf:"max_overflow"`
	// OverflowIdle reaps idle overflow workers. Default 30s.
	OverflowIdle time.Duration `koanf:"overflow_idle"`
	// Lazy starts workers on demand. Default false.
	Lazy bool `koanf:"lazy"`
	// StartConcurrency is the workers starting at once. Default 8.
	StartConcurrency int `koanf:"start_concurrency"`
	// MinReady is the workers ready before New returns; 0 means Size.
	MinReady int `koanf:"min_ready"`
	// CheckoutTimeout bounds the wait for a worker; must be positive.
	// Default 30s.
	CheckoutTimeout time.Duration `koanf:"checkout_timeout"`
	// MaxQueue bounds the waiting callers. Default 1024.
	MaxQueue int `koanf:"max_queue"`
	// WorkerConcurrency is the calls in flight per worker. Default 4.
	WorkerConcurrency int `koanf:"worker_concurrency"`
	// Affinity is none, prefer or strict. Default prefer.
	Affinity string `koanf:"affinity"`
	// Recycle retires workers.
	Recycle Recycle `koanf:"recycle"`
	// HealthInterval is the health-check period; negative disables.
	// Default 10s.
	HealthInterval time.Duration `koanf:"health_interval"`
	// HealthTimeout bounds a health ping. Default 5s.
	HealthTimeout time.Duration `koanf:"health_timeout"`
}

// Recycle lists the reasons to retire a pool worker; zero is off.
type Recycle struct {
	MaxCalls     uint64        `koanf:"max_calls"`
	MaxAge       time.Duration `koanf:"max_age"`
	MaxAgeJitter time.Duration `koanf:"max_age_jitter"`
	MaxIdle      time.Duration `koanf:"max_idle"`
	MaxRSSBytes  uint64        `koanf:"max_rss_bytes"`
}

// Remote configures the remote adapter and the worker hosts of
// "dspgo workers", which must agree on the prefix and the heartbeat.
type Remote struct {
	// URL is the NATS server or cluster, URLs comma-separated. Default
	// nats://127.0.0.1:4222.
	URL string `koanf:"url"`
	// CredsFile is a NATS credentials file (JWT and NKEY seed). Default ""
	// (none). At most one of creds_file, nkey_seed_file, user and a token
	// (token_env, token_file) may be set.
	CredsFile string `koanf:"creds_file"`
	// NKeySeedFile is a file holding an NKEY user seed ("SU…"); the
	// server knows the user by its public key. Default "" (none).
	NKeySeedFile string `koanf:"nkey_seed_file"`
	// User is the NATS user name, a subject token: with a server that
	// gives dspgo's roles (docs/scale-out.md) it names the only inbox the
	// connection may read. Its password comes from PasswordEnv or
	// PasswordFile. Default "" (none).
	User string `koanf:"user"`
	// PasswordEnv names the environment variable holding User's password.
	// Default "".
	PasswordEnv string `koanf:"password_env"`
	// PasswordFile is a file holding User's password (one line). Default
	// "".
	PasswordFile string `koanf:"password_file"`
	// TokenEnv names the environment variable holding a NATS token. A
	// token gives every client the same rights: it cannot keep callers
	// from what hosts do. Default "".
	TokenEnv string `koanf:"token_env"`
	// TokenFile is a file holding a NATS token (one line). Default "".
	TokenFile string `koanf:"token_file"`
	// AllowNoAuth accepts a server that requires no authentication, which
	// lets any process that reaches it take calls, answer them, or send a
	// host calls of its own (remote.DialOptions.AllowNoAuth). Default
	// false: such a server is refused.
	AllowNoAuth bool `koanf:"allow_no_auth"`
	// InboxPrefix is the prefix of the connection's inboxes, under
	// "_INBOX.". Default "": "_INBOX.<user>" with remote.user,
	// "_INBOX.<public key>" with an NKEY seed or a credentials file, and
	// NATS's own "_INBOX" otherwise.
	InboxPrefix string `koanf:"inbox_prefix"`
	// LocalCredentialsDir holds the local credentials of the embedded
	// servers this OS user runs on loopback without a users file: such a
	// server makes a host user and a caller user with random passwords
	// and writes them to <dir>/nats-<port>.json (0600); a client of a
	// loopback URL with no credentials configured reads its role's user
	// there. Default "": $XDG_RUNTIME_DIR/dspgo, else
	// $XDG_CONFIG_HOME/dspgo, else $HOME/.config/dspgo, from the
	// environment the configuration was loaded with.
	LocalCredentialsDir string `koanf:"local_credentials_dir"`
	// TLS configures TLS to the servers.
	TLS RemoteTLS `koanf:"tls"`
	// ConnectTimeout bounds connecting. Default 5s.
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
	// Prefix is the subject prefix of the deployment. Default dspgo.
	Prefix string `koanf:"prefix"`
	// QueueGroup is the hosts' queue group. Default dspgo-workers.
	QueueGroup string `koanf:"queue_group"`
	// Heartbeat is the hosts' heartbeat period; a call whose host is
	// silent for three periods fails with CodeUnavailable. Default 1s.
	Heartbeat time.Duration `koanf:"heartbeat"`
	// Affinity is none, prefer or strict (sessions to hosts). Default
	// prefer.
	Affinity string `koanf:"affinity"`
	// Replicas is the copies of the shared state, when a host creates
	// its bucket: 1 on one server, 3 on a cluster. Default 1.
	Replicas int `koanf:"replicas"`
	// HostID names this worker host. Default "" (hostname-pid).
	HostID string `koanf:"host_id"`
	// MaxInFlightBytes bounds, on a worker host, the bytes of the
	// requests it holds while they run or wait for a worker (each call
	// counts its request and 8 KiB); past it a request is refused
	// resource_exhausted. Default 268435456 (256 MiB); negative: no
	// bound.
	MaxInFlightBytes int64 `koanf:"max_in_flight_bytes"`
	// LMBaseURLs are, on a worker host, the LM endpoints a caller's
	// configure_lm may name: the host's workers send their API key to
	// no other (and only from the variable lm.api_key_env names). The
	// host's own lm.base_url is always allowed. Default [] (none listed):
	// lm.base_url and the provider's default, https://api.openai.com/v1.
	LMBaseURLs []string `koanf:"lm_base_urls"`
	// Embedded runs a NATS server in this process.
	Embedded Embedded `koanf:"embedded"`
}

// RemoteTLS configures TLS to the NATS servers; empty fields are unused.
type RemoteTLS struct {
	// CAFile verifies the servers. Default "" (system roots).
	CAFile string `koanf:"ca_file"`
	// CertFile is the client certificate. Default "" (none).
	CertFile string `koanf:"cert_file"`
	// KeyFile is the client certificate's key. Default "" (none).
	KeyFile string `koanf:"key_file"`
}

// Embedded configures a NATS server run inside the process, for one
// machine: the other processes connect to it at remote.url.
type Embedded struct {
	// Enabled runs the server; remote.url is then ignored by this
	// process, which connects to its own server. Default false.
	Enabled bool `koanf:"enabled"`
	// Listen is the client address, host:port. Default 127.0.0.1:4222.
	Listen string `koanf:"listen"`
	// StoreDir holds JetStream's data. Default "" (a temporary
	// directory, removed at exit).
	StoreDir string `koanf:"store_dir"`
	// UsersFile lists the server's users and their roles, one a line:
	// "<role> <name> <password or bcrypt hash>" or "<role> <public
	// NKEY>", role host or caller (docs/scale-out.md). Default "": a
	// host user and a caller user with random passwords, in the file of
	// remote.local_credentials_dir, which only this OS user can read;
	// allowed only when Listen is a loopback address.
	UsersFile string `koanf:"users_file"`
	// TLS makes the server speak TLS.
	TLS EmbeddedTLS `koanf:"tls"`
}

// EmbeddedTLS configures the embedded server's TLS; empty fields are
// unused.
type EmbeddedTLS struct {
	// CertFile is the server's certificate (PEM). Default "" (no TLS).
	CertFile string `koanf:"cert_file"`
	// KeyFile is the server certificate's key. Default "".
	KeyFile string `koanf:"key_file"`
	// CAFile, when set, makes the server require client certificates
	// signed by it (mutual TLS). Default "" (none asked for).
	CAFile string `koanf:"ca_file"`
}

// Defaults returns the built-in defaults, the lowest layer.
func Defaults() Config {
	return Config{
		Adapter: "pool", StopTimeout: 30 * time.Second,
		Log:    Log{Level: "warn", Format: "text"},
		Python: Python{Interpreter: "python3", PassEnv: []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}},
		LM:     LM{Provider: "dummy", Temperature: -1, Engine: "auto", DSPyAdapter: "chat"},
		Mock:   Mock{MaxFrameBytes: 16 << 20},
		Port: Port{StartTimeout: 30 * time.Second, CallTimeout: 2 * time.Minute, WriteTimeout: 30 * time.Second,
			StopGrace: 2 * time.Second, MaxFrameBytes: 16 << 20, MaxConcurrency: 4, StreamWindow: 16,
			Restart: Restart{Min: 100 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2, MaxRestarts: 10, Window: time.Minute}},
		Pool: Pool{OverflowIdle: 30 * time.Second, StartConcurrency: 8, CheckoutTimeout: 30 * time.Second,
			MaxQueue: 1024, WorkerConcurrency: 4, Affinity: "prefer", HealthInterval: 10 * time.Second, HealthTimeout: 5 * time.Second},
		Remote: Remote{URL: "nats://127.0.0.1:4222", ConnectTimeout: 5 * time.Second, Prefix: "dspgo", QueueGroup: "dspgo-workers",
			Heartbeat: time.Second, Affinity: "prefer", Replicas: 1, MaxInFlightBytes: 256 << 20, Embedded: Embedded{Listen: "127.0.0.1:4222"}},
	}
}

// DSPyAdapters are the values lm.dspy_adapter takes (command.DSPyAdapters:
// config imports no other package of the module, and a test keeps the two
// equal).
var DSPyAdapters = []string{"chat", "json", "xml", "baml"}

// NativeDSPyAdapters are those of DSPyAdapters the native engine runs too
// (command.NativeDSPyAdapters).
var NativeDSPyAdapters = []string{"chat", "json"}
