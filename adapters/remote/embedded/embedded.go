// Package embedded runs a NATS server with JetStream inside the process,
// for one-machine use of the remote adapter and for tests, so that nothing
// needs installing. Several embedded servers form a cluster when given
// each other's cluster addresses as routes.
//
// The server authenticates its clients: it needs Users, each with the
// permissions of its role (remote.RoleHost or remote.RoleCaller, see
// Permissions), and speaks TLS when given a certificate. A server for the
// processes of one OS user gives itself a Local pair of users, which its
// clients find in a file only that user can read (the remoteconfig
// package, and so "dspgo workers --embedded-nats", always does). Only
// Options.NoAuth, for tests, makes one that accepts any client with
// every right, and then only on loopback.
//
// Real deployments use an external NATS cluster instead; see
// docs/scale-out.md.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/dspgo/dspgo/adapters/remote"
)

// DefaultMaxPayload is the largest message the server accepts when
// Options.MaxPayload is zero: a 16 MiB frame and its headers.
const DefaultMaxPayload = 16<<20 + 64<<10

// Options configure an embedded server.
type Options struct {
	// Host is the address clients connect to. Empty means "127.0.0.1".
	Host string

	// Port is the client port. Zero means 4222; negative means any free
	// port (see Server.ClientURL).
	Port int

	// StoreDir holds JetStream's data. Empty means a new temporary
	// directory, removed at Shutdown.
	StoreDir string

	// MaxPayload is the largest message in bytes. Zero means
	// DefaultMaxPayload.
	MaxPayload int32

	// ServerName names the server; cluster members need distinct names.
	// Empty means one chosen by the server.
	ServerName string

	// Cluster makes the server a member of a cluster when Cluster.Name is
	// set.
	Cluster Cluster

	// ReadyTimeout bounds the wait for the server (and, in a cluster, for
	// JetStream to have a leader). Zero means 10 s.
	ReadyTimeout time.Duration

	// Debug makes the server log to stderr. False keeps it quiet.
	Debug bool

	// Users are the clients the server accepts, each with the
	// permissions of its role in the deployment of Prefix and QueueGroup
	// (see Permissions); any other client is refused. NewLocal makes a
	// host user and a caller user for the processes of one OS user
	// (Local.Users). Empty is ErrNoAuth, unless NoAuth is set.
	Users []User

	// NoAuth makes a server without Users accept any client with every
	// right: any process of the machine may then take calls and steer
	// the hosts, so it is for tests. Start allows it only when Host is a
	// loopback address, and never with Users. False, the default, needs
	// Users.
	NoAuth bool

	// Prefix and QueueGroup are the deployment's subject prefix and the
	// hosts' queue group, which the roles' permissions name. Empty means
	// remote.DefaultPrefix and remote.DefaultQueueGroup.
	Prefix, QueueGroup string

	// TLS makes clients connect with TLS. The zero value means plain TCP.
	TLS TLS
}

// User is a client of the server.
type User struct {
	// Role gives the user its permissions: remote.RoleHost or
	// remote.RoleCaller.
	Role remote.Role
	// Name is the user name, a subject token (letters, digits, '_' and
	// '-'): it names the user's inbox (remote.InboxPrefix). Unused for an
	// NKEY user, whose public key is its name.
	Name string
	// Password is the user's password, or better its bcrypt hash
	// ("$2a$…", as "nats server passwd" or "htpasswd -nbB" make it). The
	// server never logs it.
	Password string
	// NKey is the user's public NKEY ("U…"), instead of a name and
	// password: the client proves it holds the seed.
	NKey string
}

// TLS configures the server's TLS.
type TLS struct {
	// CertFile and KeyFile are the server's certificate and key (PEM).
	// Empty means no TLS.
	CertFile, KeyFile string
	// CAFile, when set, makes the server require a client certificate
	// signed by one of its certificates (mutual TLS), besides the user's
	// credentials. Empty means no client certificate is asked for.
	CAFile string
}

// ErrNoAuth is the error of Start given no Users: without NoAuth, or
// with NoAuth beyond loopback.
var ErrNoAuth = errors.New("embedded NATS: the server needs authentication")

// IsLoopback reports whether host, an address to listen on, is
// "localhost" or a loopback IP address. The empty host and the
// unspecified addresses (0.0.0.0, ::) mean every interface: not loopback.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Cluster configures cluster membership.
type Cluster struct {
	// Name is the cluster's name, the same on every member.
	Name string
	// Host is the address for routes from other members. Empty means
	// "127.0.0.1".
	Host string
	// Port is the route port. Zero or negative means any free port (see
	// Server.ClusterURL).
	Port int
	// Routes are the other members' route URLs, such as
	// "nats://127.0.0.1:6222".
	Routes []string
}

// Server is a running embedded NATS server.
type Server struct {
	ns      *server.Server
	tempDir string
}

// Start starts a server and waits until it accepts connections. In a
// cluster, it does not wait for the other members: see WaitClusterReady.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	switch {
	case opts.Port == 0:
		opts.Port = 4222
	case opts.Port < 0:
		opts.Port = server.RANDOM_PORT
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 10 * time.Second
	}
	switch {
	case opts.NoAuth && len(opts.Users) > 0:
		return nil, errors.New("embedded NATS: Options.NoAuth and Options.Users: a server either authenticates its users or no one")
	case len(opts.Users) == 0 && !opts.NoAuth:
		return nil, fmt.Errorf("%w: give Options.Users (NewLocal makes a host and a caller user for one OS user); "+
			"Options.NoAuth, for tests, lets any client of the machine in", ErrNoAuth)
	case opts.NoAuth && !IsLoopback(opts.Host):
		return nil, fmt.Errorf("%w: %s is beyond loopback; give Options.Users (or listen on 127.0.0.1)", ErrNoAuth, net.JoinHostPort(opts.Host, fmt.Sprint(opts.Port)))
	}
	if c := opts.Cluster; c.Name != "" && c.Host != "" && !IsLoopback(c.Host) {
		return nil, fmt.Errorf("embedded NATS: the cluster address %s is beyond loopback, and routes between embedded servers are not authenticated; use an external NATS cluster", c.Host)
	}
	so := &server.Options{
		ServerName: opts.ServerName, Host: opts.Host, Port: opts.Port, MaxPayload: opts.MaxPayload,
		JetStream: true, NoSigs: true, NoLog: !opts.Debug,
		Debug: opts.Debug, Trace: false,
	}
	if err := configureAuth(so, opts); err != nil {
		return nil, err
	}
	if err := configureTLS(so, opts.TLS); err != nil {
		return nil, err
	}
	s := &Server{}
	if opts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "dspgo-nats-")
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		s.tempDir, opts.StoreDir = dir, dir
	}
	so.StoreDir = opts.StoreDir
	if c := opts.Cluster; c.Name != "" {
		if c.Host == "" {
			c.Host = "127.0.0.1"
		}
		if c.Port <= 0 {
			c.Port = server.RANDOM_PORT
		}
		so.Cluster = server.ClusterOpts{Name: c.Name, Host: c.Host, Port: c.Port}
		for _, r := range c.Routes {
			so.Routes = append(so.Routes, server.RoutesFromStr(r)...)
		}
	}
	ns, err := server.NewServer(so)
	if err != nil {
		s.removeTemp()
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	if opts.Debug {
		ns.ConfigureLogger()
	}
	s.ns = ns
	ns.Start()
	ready := make(chan bool, 1)
	go func() { ready <- ns.ReadyForConnections(opts.ReadyTimeout) }()
	select {
	case ok := <-ready:
		if !ok {
			s.Shutdown()
			return nil, fmt.Errorf("embedded NATS: not ready to accept connections on %s:%d within %v (is the port in use?)", opts.Host, opts.Port, opts.ReadyTimeout)
		}
	case <-ctx.Done():
		<-ready
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS: %w", ctx.Err())
	}
	return s, nil
}

// ClientURL is the URL clients connect to, such as
// "nats://127.0.0.1:4222".
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// ClusterURL is the URL other members route to; empty outside a cluster.
func (s *Server) ClusterURL() string {
	a := s.ns.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats://" + net.JoinHostPort(a.IP.String(), fmt.Sprint(a.Port))
}

// Name is the server's name.
func (s *Server) Name() string { return s.ns.Name() }

// ID is the server's unique id (its public NKEY), new at each start: what
// a client reads as nats.Conn.ConnectedServerId.
func (s *Server) ID() string { return s.ns.ID() }

// WaitClusterReady waits until the server has routes to want other
// members and JetStream's cluster has a leader, and, when the server is
// that leader, until it counts want+1 JetStream servers online: only
// then can it place a stream of want+1 replicas (before, creating one
// fails with "no suitable peers for placement"). Called on every member,
// it waits until the cluster can place such a stream.
func (s *Server) WaitClusterReady(ctx context.Context, want int) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if s.ns.NumRoutes() >= want && s.ns.JetStreamIsCurrent() &&
			(!s.ns.JetStreamIsLeader() || len(s.ns.JetStreamClusterPeers()) >= want+1) {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("embedded NATS %s: cluster not ready (%d routes of %d)", s.Name(), s.ns.NumRoutes(), want), ctx.Err())
		}
	}
}

// Shutdown stops the server, waits for it, and removes its temporary
// store. It is idempotent.
func (s *Server) Shutdown() {
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
	s.removeTemp()
}

func (s *Server) removeTemp() {
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
		s.tempDir = ""
	}
}
