package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/secret"
)

// DialOptions say how to connect to a NATS server or cluster, and as
// whom. At most one way to authenticate may be set: CredsFile,
// NKeySeedFile, User (with Password) or Token; none means an anonymous
// connection, which a server that authenticates refuses. TLS (CAFile,
// CertFile, KeyFile) goes with any of them. Secrets are given as values
// or files; Dial never puts one in an error.
type DialOptions struct {
	// URL is one or more server URLs, comma-separated, such as
	// "nats://n1:4222,nats://n2:4222". Required.
	URL string
	// Name names the connection in the server's monitoring.
	Name string
	// CredsFile is a NATS credentials file (JWT and seed). Empty means
	// none.
	CredsFile string
	// NKeySeedFile is a file holding an NKEY user seed ("SU…"): the
	// server knows the user by its public key. Empty means none.
	NKeySeedFile string
	// User and Password authenticate with a user name and password.
	// Empty means none.
	User, Password string
	// Token authenticates with a token. A server with one token gives
	// every client the same rights, so it cannot keep callers from doing
	// what hosts do (see Permissions). Empty means none.
	Token string
	// CAFile verifies the server's certificate. Empty means the system's
	// roots.
	CAFile string
	// CertFile and KeyFile are the client certificate for mutual TLS.
	// Empty means none.
	CertFile, KeyFile string
	// InboxPrefix is the subject prefix of the connection's inboxes,
	// where replies come: a server with the roles' permissions (see
	// Permissions) lets each user read only InboxPrefix(its name). It
	// must start with "_INBOX.". Empty means InboxPrefix(User) with a
	// user, InboxPrefix(the public key) with an NKEY seed or a
	// credentials file, and "_INBOX" otherwise.
	InboxPrefix string
	// ConnectTimeout bounds the first connection. Zero means 5 s.
	ConnectTimeout time.Duration
	// Logger receives, at WARN, the errors the server reports on the
	// connection after it is made (a permissions violation, a slow
	// consumer). Nil discards them (nats.go's own default prints them to
	// stderr).
	Logger *slog.Logger
	// AllowNoAuth accepts a server that requires no authentication. Any
	// process that reaches such a server can take the calls a caller
	// sends, answer them, or send a host calls of its own, and on a
	// loopback port another OS user may start one where this user's
	// embedded server usually runs; so false (the default) refuses it.
	// Set it only where nothing untrusted reaches the server (tests).
	AllowNoAuth bool
}

// ErrNoAuth is the error of Dial connecting to a server that requires no
// authentication, without DialOptions.AllowNoAuth.
var ErrNoAuth = errors.New("the NATS server requires no authentication")

// Dial connects to NATS. The connection reconnects by itself, forever,
// after a server is lost; calls made while it is away fail with
// CodeUnavailable. A server refusing the credentials, or one that
// requires no authentication (unless AllowNoAuth), is
// CodeFailedPrecondition; options that do not fit together, or a seed
// or credentials file that does not read, CodeInvalidArgument.
func Dial(ctx context.Context, opts DialOptions) (*nats.Conn, error) {
	if opts.URL == "" {
		return nil, errorf(adapter.CodeInvalidArgument, Name, "dial", "a NATS URL is required")
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < opts.ConnectTimeout {
		opts.ConnectTimeout = time.Until(d)
	}
	o := []nats.Option{nats.Name(opts.Name), nats.Timeout(opts.ConnectTimeout), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.ErrorHandler(asyncErrors(opts.Logger))}
	auth, err := authOptions(&opts)
	if err != nil {
		return nil, err
	}
	o = append(o, auth...)
	if opts.CAFile != "" {
		o = append(o, nats.RootCAs(opts.CAFile))
	}
	if opts.CertFile != "" || opts.KeyFile != "" {
		o = append(o, nats.ClientCert(opts.CertFile, opts.KeyFile))
	}
	if err := ctx.Err(); err != nil {
		return nil, adapter.Wrap(err, Name, "dial")
	}
	nc, err := nats.Connect(opts.URL, o...)
	if err != nil {
		code := adapter.CodeUnavailable
		var unparsed *url.Error
		switch {
		case errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked):
			code = adapter.CodeFailedPrecondition
			err = fmt.Errorf("%w: the server refused these credentials", err)
		case errors.As(err, &unparsed):
			// The parser's error quotes the URL, and may quote a piece of
			// its password (as a port): none of it is kept.
			code = adapter.CodeInvalidArgument
			err = errors.New("the URL does not parse (a password holding '/', '?', '#' or '@' needs them %-escaped: %2F, %3F, %23, %40)")
		}
		return nil, &adapter.Error{Code: code, Op: "dial", Adapter: Name, Err: fmt.Errorf("connecting to NATS at %s: %w", secret.URLs(opts.URL), err)}
	}
	if !nc.AuthRequired() && !opts.AllowNoAuth {
		url := nc.ConnectedUrlRedacted()
		nc.Close()
		return nil, &adapter.Error{Code: adapter.CodeFailedPrecondition, Op: "dial", Adapter: Name, Err: fmt.Errorf("%w (%s): "+
			"any process that reaches it could take this connection's calls or answer them; give the server users "+
			"(dspgo workers --embedded-nats does), or accept it where nothing untrusted reaches it (remote.allow_no_auth, DialOptions.AllowNoAuth)",
			ErrNoAuth, secret.URL(url))}
	}
	return nc, nil
}

// authOptions returns the connection options of opts' credentials, and
// sets opts.InboxPrefix when it was empty.
func authOptions(opts *DialOptions) ([]nats.Option, error) {
	bad := func(format string, args ...any) error {
		return errorf(adapter.CodeInvalidArgument, Name, "dial", format, args...)
	}
	var ways []string
	for _, w := range []struct {
		set  bool
		name string
	}{
		{opts.CredsFile != "", "a credentials file"}, {opts.NKeySeedFile != "", "an NKEY seed"},
		{opts.User != "", "a user"}, {opts.Token != "", "a token"},
	} {
		if w.set {
			ways = append(ways, w.name)
		}
	}
	if len(ways) > 1 {
		return nil, bad("give one way to authenticate, not %s", strings.Join(ways, " and "))
	}
	if opts.Password != "" && opts.User == "" {
		return nil, bad("a password needs a user")
	}
	var o []nats.Option
	user := ""
	switch {
	case opts.CredsFile != "":
		pub, err := publicKey(opts.CredsFile)
		if err != nil {
			return nil, bad("the credentials file %s: %v", opts.CredsFile, err)
		}
		o, user = append(o, nats.UserCredentials(opts.CredsFile)), pub
	case opts.NKeySeedFile != "":
		pub, err := publicKey(opts.NKeySeedFile)
		if err != nil {
			return nil, bad("the NKEY seed file %s: %v", opts.NKeySeedFile, err)
		}
		opt, err := nats.NkeyOptionFromSeed(opts.NKeySeedFile)
		if err != nil {
			return nil, bad("the NKEY seed file %s: it holds no valid user seed", opts.NKeySeedFile)
		}
		o, user = append(o, opt), pub
	case opts.User != "":
		if !tokenRE.MatchString(opts.User) {
			return nil, bad("user %q may hold only letters, digits, '_' and '-': it names the connection's inbox", opts.User)
		}
		o, user = append(o, nats.UserInfo(opts.User, opts.Password)), opts.User
	case opts.Token != "":
		o = append(o, nats.Token(opts.Token))
	}
	if opts.InboxPrefix == "" && user != "" {
		opts.InboxPrefix = InboxPrefix(user)
	}
	if opts.InboxPrefix != "" {
		if !isInbox(opts.InboxPrefix+".x") || !prefixRE.MatchString(opts.InboxPrefix) {
			return nil, bad("inbox prefix %q must be %s.<token>…: hosts answer only inboxes", opts.InboxPrefix, InboxRoot)
		}
		o = append(o, nats.CustomInboxPrefix(opts.InboxPrefix))
	}
	return o, nil
}

// publicKey returns the public key of the user seed in a seed or
// credentials file; its errors never quote the file.
func publicKey(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", errors.Unwrap(err) // the path is in the caller's message
	}
	defer clear(data)
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return "", errors.New("it holds no valid NKEY seed")
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return "", errors.New("its seed is not a user's (SU…)")
	}
	return pub, nil
}

// asyncErrors is a connection's error handler that logs to log at WARN,
// or discards when log is nil.
func asyncErrors(log *slog.Logger) nats.ErrHandler {
	if log == nil {
		return func(*nats.Conn, *nats.Subscription, error) {}
	}
	return func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if sub != nil {
			log.Warn("NATS connection error", "err", err, "subscription", sub.Subject)
			return
		}
		log.Warn("NATS connection error", "err", err)
	}
}
