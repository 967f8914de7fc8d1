package port

import (
	"log/slog"
	"time"

	"github.com/dspgo/dspgo/protocol"
)

// Name is the port adapter's registered name.
const Name = "port"

// Options configure a port adapter. The zero value runs the embedded
// Python worker with "python3" from PATH.
type Options struct {
	// Name is the adapter's name in errors, logs and stats. Empty means
	// "port".
	Name string

	// WorkerID names the worker in its replies and logs. Empty means the
	// adapter's Name.
	WorkerID string

	// Python is the interpreter. A bare name is looked up on PATH and
	// resolved once, in New, to the real executable (so a pyenv-style shim
	// is not paid for at every restart); an absolute path is used as
	// given. Empty means "python3".
	Python string

	// WorkerDir is the directory holding the dspgo_worker package; it is
	// put on the worker's PYTHONPATH. Empty means the worker files embedded
	// in this binary, written once to a content-addressed directory under
	// CacheDir, so a program importing this package needs no checkout of
	// the dspgo repository.
	WorkerDir string

	// CacheDir is where the embedded worker files are written. Empty means
	// os.UserCacheDir()/dspgo. The directory is created 0700 and the files
	// are verified by content hash before use.
	CacheDir string

	// Args are extra worker arguments, after the ones the adapter passes.
	Args []string

	// Handlers are Python modules the worker imports at start so that
	// their @command handlers register (--handlers). Nil means none.
	Handlers []string

	// Diagnostics enables the worker's test-only commands (echo, sleep,
	// crash, hang…). False means off.
	Diagnostics bool

	// Env holds extra "NAME=value" variables for the worker.
	Env []string

	// PassEnv names host environment variables passed to the worker, such
	// as the variable that holds an LM API key. The worker otherwise gets
	// a minimal environment, so host secrets do not leak to it. Nil means
	// DefaultPassEnv.
	PassEnv []string

	// Environ returns the host environment PassEnv reads from. Nil means
	// os.Environ.
	Environ func() []string

	// Dir is the worker's working directory. Empty means the host's.
	Dir string

	// StartTimeout bounds the start of a worker, up to its answer to the
	// init ping. Zero means 30 s.
	StartTimeout time.Duration

	// CallTimeout bounds a call whose context has no deadline, rounded up
	// by at most CallTimeout/64 (100 ms at the most): the calls of one such
	// step share one time-out. Zero means 2 minutes; negative means no
	// bound.
	CallTimeout time.Duration

	// WriteTimeout bounds one frame write; a worker that stops reading its
	// stdin for longer is treated as broken and restarted. It bounds the
	// worker's frames the same way: a frame the worker began and did not
	// finish within it is a protocol violation, and the worker is
	// restarted. Zero means 30 s.
	WriteTimeout time.Duration

	// StopGrace is how long Close waits for the worker to exit after the
	// shutdown frame and the end of its stdin, and again after SIGTERM,
	// before SIGKILL. Zero means 2 s.
	StopGrace time.Duration

	// MaxFrameBytes is the largest frame body either side sends. Zero
	// means protocol.DefaultMaxFrameBytes (16 MiB).
	MaxFrameBytes int

	// MaxConcurrency is the number of calls in flight on the worker (and
	// the worker's thread count). ping and describe never wait for a slot.
	// Zero means 4.
	MaxConcurrency int

	// StreamWindow is the credit of a stream: the chunks the worker may
	// send ahead of the consumer (1 to protocol.MaxStreamCredit). Zero
	// means 16.
	StreamWindow int

	// NoWait makes calls fail at once, with CodeUnavailable wrapping
	// ErrNotSent, while the worker restarts, instead of waiting for it
	// within their context. The pool sets it to route them elsewhere.
	NoWait bool

	// OnReady, when not nil, is called after the worker becomes ready
	// again following a crash. It runs on the adapter's goroutine and must
	// not block.
	OnReady func()

	// OnCrash, when not nil, is called with the error when the worker
	// dies unexpectedly. It runs on the adapter's goroutine and must not
	// block.
	OnCrash func(error)

	// Restart is the policy for replacing a crashed worker.
	Restart RestartPolicy

	// StderrTail is how many bytes of the worker's stderr are kept for
	// error reports. Zero means 64 KiB.
	StderrTail int

	// Logger receives the worker's stderr lines (JSON lines at their own
	// level) and the adapter's events. Nil discards them (the adapter
	// logs only through the logger it is given), and the worker is then
	// started at the error level.
	Logger *slog.Logger

	// Handler, when not nil, replaces the Python process with an
	// in-memory worker: each worker the adapter starts (the first, and
	// each restart) serves a new handler from Handler, such as the mock's
	// command set, over an in-memory stream, through the same codec and
	// the same adapter code. A restarted in-memory worker starts empty, as
	// a process does. Python, WorkerDir, Args and the environment options
	// are then unused.
	Handler func() protocol.Handler
}

// RestartPolicy is the backoff for restarting a crashed worker. The zero
// value means the defaults of each field.
type RestartPolicy struct {
	// Min is the first delay before a restart. Zero means 100 ms.
	Min time.Duration
	// Max caps the delay, which doubles after each consecutive crash.
	// Zero means 10 s.
	Max time.Duration
	// Jitter randomises each delay by up to this fraction either way.
	// Zero means 0.2; negative means none.
	Jitter float64
	// MaxRestarts is how many restarts Window allows; past it calls fail
	// at once with CodeUnavailable until the window has room again, while
	// the adapter keeps trying at the Max delay. Zero means 10.
	MaxRestarts int
	// Window is the period MaxRestarts counts over. Zero means 1 minute.
	Window time.Duration
}

// DefaultPassEnv are the host variables a worker gets when
// Options.PassEnv is nil: enough to run Python, never a credential.
var DefaultPassEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}

func (o *Options) setDefaults() {
	if o.Name == "" {
		o.Name = Name
	}
	if o.WorkerID == "" {
		o.WorkerID = o.Name
	}
	if o.Python == "" {
		o.Python = "python3"
	}
	if o.PassEnv == nil {
		o.PassEnv = DefaultPassEnv
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = 2 * time.Minute
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 2 * time.Second
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = protocol.DefaultMaxFrameBytes
	}
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = 4
	}
	if o.StreamWindow <= 0 {
		o.StreamWindow = 16
	}
	o.StreamWindow = min(o.StreamWindow, protocol.MaxStreamCredit)
	if o.StderrTail <= 0 {
		o.StderrTail = 64 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &o.Restart
	if r.Min <= 0 {
		r.Min = 100 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 10 * time.Second
	}
	if r.Max < r.Min {
		r.Max = r.Min
	}
	if r.Jitter == 0 {
		r.Jitter = 0.2
	}
	if r.MaxRestarts <= 0 {
		r.MaxRestarts = 10
	}
	if r.Window <= 0 {
		r.Window = time.Minute
	}
}
