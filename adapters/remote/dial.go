package remote

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dspgo/dspgo/adapter"
)

// DialOptions say how to connect to a NATS server or cluster.
type DialOptions struct {
	// URL is one or more server URLs, comma-separated, such as
	// "nats://n1:4222,nats://n2:4222". Required.
	URL string
	// Name names the connection in the server's monitoring.
	Name string
	// CredsFile is a NATS credentials file (JWT and seed). Empty means
	// none.
	CredsFile string
	// CAFile verifies the server's certificate. Empty means the system's
	// roots.
	CAFile string
	// CertFile and KeyFile are the client certificate for mutual TLS.
	// Empty means none.
	CertFile, KeyFile string
	// ConnectTimeout bounds the first connection. Zero means 5 s.
	ConnectTimeout time.Duration
}

// Dial connects to NATS. The connection reconnects by itself, forever,
// after a server is lost; calls made while it is away fail with
// CodeUnavailable.
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
	o := []nats.Option{nats.Name(opts.Name), nats.Timeout(opts.ConnectTimeout), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if opts.CredsFile != "" {
		o = append(o, nats.UserCredentials(opts.CredsFile))
	}
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
		return nil, &adapter.Error{Code: adapter.CodeUnavailable, Op: "dial", Adapter: Name, Err: fmt.Errorf("connecting to NATS at %s: %w", opts.URL, err)}
	}
	return nc, nil
}
