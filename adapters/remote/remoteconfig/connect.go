package remoteconfig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/adapters/remote/embedded"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/internal/secret"
)

// Connect connects to the NATS server of cfg.Remote in role (a worker
// host, remote.RoleHost, or a caller), first starting the embedded one
// when remote.embedded.enabled is set. release closes the connection and
// stops that server.
//
// The connection authenticates as remote.* says (a credentials file, an
// NKEY seed file, a user with a password from a variable or a file, or a
// token from a variable or a file), reading each secret only here; no
// error shows one. The embedded server takes its users and their roles
// from remote.embedded.users_file. Without one it listens only on
// loopback and makes a host user and a caller user with random
// passwords, which it writes to a file of remote.local_credentials_dir
// that only this OS user can read (see embedded.Local); a connection
// with no credentials configured to it, or to any server on a loopback
// URL whose port has such a file, authenticates as role's user there.
func Connect(ctx context.Context, cfg *config.Config, role remote.Role) (nc *nats.Conn, release func(), err error) {
	name := "dspgo-caller"
	if role == remote.RoleHost {
		name = "dspgo-host"
	}
	r := cfg.Remote
	url := r.URL
	var srv *embedded.Server
	var local localCredentials
	stop := func() {
		if srv != nil {
			srv.Shutdown()
			local.remove()
		}
	}
	if r.Embedded.Enabled {
		srv, local, err = startEmbedded(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		url = srv.ClientURL()
	}
	opts, err := dialOptions(cfg, url, name)
	if err == nil && !hasCredentials(opts) {
		if srv == nil {
			local, err = findLocal(cfg, url)
		}
		if u := local.l.User(role); err == nil && u.Password != "" {
			opts.User, opts.Password, local.used = u.Name, u.Password, true
		}
	}
	if err == nil {
		nc, err = remote.Dial(ctx, opts)
		if adapter.CodeOf(err) == adapter.CodeFailedPrecondition && !errors.Is(err, remote.ErrNoAuth) {
			err = refusedHint(err, cfg, local)
		}
	}
	if err == nil && local.used && local.l.ServerID != "" && nc.ConnectedServerId() != local.l.ServerID {
		nc.Close()
		err = adapter.Errorf(adapter.CodeFailedPrecondition, "the server at %s is not the embedded server whose local credentials are in %s "+
			"(process %d wrote them): another process listens on its port; is that server still running?", secret.URLs(url), local.path, local.l.PID)
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	return nc, func() {
		nc.Close()
		stop()
	}, nil
}

// hasCredentials reports whether opts say how to authenticate.
func hasCredentials(opts remote.DialOptions) bool {
	return opts.CredsFile != "" || opts.NKeySeedFile != "" || opts.User != "" || opts.Token != "" || strings.Contains(opts.URL, "@")
}

// refusedHint adds to err, a server's refusal of the connection's
// credentials, what to check.
func refusedHint(err error, cfg *config.Config, local localCredentials) error {
	if local.used {
		return fmt.Errorf("%w; the local credentials in %s are not this server's (process %d wrote them for its embedded server): is that server still running?",
			err, local.path, local.l.PID)
	}
	return fmt.Errorf("%w; check remote.user with remote.password_env or remote.password_file, remote.token_env or remote.token_file, remote.nkey_seed_file, or remote.creds_file (an embedded server of this OS user on loopback is found by the file it writes to remote.local_credentials_dir, %s)",
		err, localDirOrDefault(cfg))
}

// startEmbedded starts the embedded NATS server of remote.embedded, and
// writes its local credentials when it has no users file.
func startEmbedded(ctx context.Context, cfg *config.Config) (*embedded.Server, localCredentials, error) {
	r := cfg.Remote
	e := r.Embedded
	var none localCredentials
	host, port, err := net.SplitHostPort(e.Listen)
	if err != nil {
		return nil, none, adapter.Errorf(adapter.CodeInvalidArgument, "remote.embedded.listen: %v", err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return nil, none, adapter.Errorf(adapter.CodeInvalidArgument, "remote.embedded.listen: port %q is not a number", port)
	}
	if n == 0 {
		n = -1 // ":0", as net.Listen takes it: any free port (the embedded server's own zero is 4222)
	}
	if host == "" {
		host = "0.0.0.0" // ":4222", as net.Listen takes it: every interface
	}
	opts := embedded.Options{Host: host, Port: n, StoreDir: e.StoreDir, Prefix: r.Prefix, QueueGroup: r.QueueGroup,
		TLS: embedded.TLS{CertFile: e.TLS.CertFile, KeyFile: e.TLS.KeyFile, CAFile: e.TLS.CAFile}}
	var local localCredentials
	switch {
	case e.UsersFile != "":
		if opts.Users, err = embedded.ReadUsers(e.UsersFile); err != nil {
			return nil, none, adapter.Errorf(adapter.CodeInvalidArgument, "remote.embedded.users_file: %v", err)
		}
	case !embedded.IsLoopback(host):
		return nil, none, adapter.Errorf(adapter.CodeFailedPrecondition,
			"remote.embedded.listen %s is beyond loopback: set remote.embedded.users_file to authenticate clients (or listen on 127.0.0.1)", e.Listen)
	default:
		if local.dir, err = localDir(cfg); err != nil {
			return nil, none, err
		}
		if local.l, err = embedded.NewLocal(); err != nil {
			return nil, none, err
		}
		opts.Users = local.l.Users()
	}
	srv, err := embedded.Start(ctx, opts)
	if err != nil {
		return nil, none, &adapter.Error{Code: adapter.CodeUnavailable, Op: "open", Adapter: remote.Name, Err: err}
	}
	if local.dir != "" {
		local.l.URL, local.l.ServerID = srv.ClientURL(), srv.ID()
		if local.path, err = embedded.WriteLocal(local.dir, urlPort(local.l.URL), local.l); err != nil {
			srv.Shutdown()
			return nil, none, adapter.Errorf(adapter.CodeFailedPrecondition, "remote.local_credentials_dir: %v", err)
		}
	}
	return srv, local, nil
}

// dialOptions are the connection options of cfg.Remote, its secrets read
// from their variables and files.
func dialOptions(cfg *config.Config, url, name string) (remote.DialOptions, error) {
	r := cfg.Remote
	opts := remote.DialOptions{URL: url, Name: name, CredsFile: r.CredsFile, NKeySeedFile: r.NKeySeedFile, User: r.User,
		InboxPrefix: r.InboxPrefix, CAFile: r.TLS.CAFile, CertFile: r.TLS.CertFile, KeyFile: r.TLS.KeyFile, ConnectTimeout: r.ConnectTimeout,
		Logger: cfg.Logger(cfg.LogOutput()), AllowNoAuth: r.AllowNoAuth}
	var err error
	if r.User != "" {
		if opts.Password, err = readSecret(cfg, "remote.password_env", r.PasswordEnv, "remote.password_file", r.PasswordFile); err != nil {
			return opts, err
		}
	}
	if r.TokenEnv != "" || r.TokenFile != "" {
		if opts.Token, err = readSecret(cfg, "remote.token_env", r.TokenEnv, "remote.token_file", r.TokenFile); err != nil {
			return opts, err
		}
	}
	return opts, nil
}

// readSecret returns the secret in the variable variable (from the
// environment the configuration was loaded with) or in the file path,
// its line end trimmed. Its errors name the key and the variable or
// file, never the secret.
func readSecret(cfg *config.Config, envKey, variable, fileKey, path string) (string, error) {
	if variable != "" {
		if v := cfg.Getenv(variable); v != "" {
			return v, nil
		}
		return "", adapter.Errorf(adapter.CodeFailedPrecondition, "%s names the variable %s, which is unset or empty", envKey, variable)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", adapter.Errorf(adapter.CodeFailedPrecondition, "%s: %v", fileKey, err)
	}
	s := strings.TrimRight(string(data), "\r\n")
	if strings.TrimSpace(s) == "" {
		return "", adapter.Errorf(adapter.CodeFailedPrecondition, "%s: %s is empty", fileKey, path)
	}
	return s, nil
}

// HostOptions translates configuration into worker host options. The
// host's LM allowlist (remote.HostOptions.LMBaseURLs) is its own
// lm.base_url (the provider's default when unset) and remote.lm_base_urls,
// or, when that is empty, the provider's default; the only key variable
// it allows is its own lm.api_key_env.
func HostOptions(cfg *config.Config) remote.HostOptions {
	r := cfg.Remote
	own := cfg.LM.BaseURL
	if own == "" {
		own = remote.DefaultLMBaseURL
	}
	allowed := append([]string{own}, r.LMBaseURLs...)
	if len(r.LMBaseURLs) == 0 {
		allowed = append(allowed, remote.DefaultLMBaseURL)
	}
	return remote.HostOptions{ID: r.HostID, Prefix: r.Prefix, QueueGroup: r.QueueGroup, Heartbeat: r.Heartbeat,
		Replicas: r.Replicas, LMBaseURLs: allowed, LMAPIKeyEnv: cfg.LM.APIKeyEnv,
		LMImageURLs: cfg.LM.ImageURLs, MaxInFlightBytes: r.MaxInFlightBytes, Logger: cfg.Logger(cfg.LogOutput())}
}
