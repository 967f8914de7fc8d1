package remoteconfig

import (
	"errors"
	"io/fs"
	"net/url"
	"strconv"
	"strings"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/remote/embedded"
	"github.com/dspgo/dspgo/config"
)

// localCredentials are the local credentials of an embedded server on
// loopback (embedded.Local): made by this process's server, or found in
// the file such a server wrote.
type localCredentials struct {
	// dir is remote.local_credentials_dir, or its default.
	dir string
	// path is the file; empty when there is none.
	path string
	l    embedded.Local
	// used is set when the connection authenticates with them.
	used bool
}

// remove removes the file this process's server wrote, unless a later
// server has replaced it.
func (c localCredentials) remove() {
	if c.path != "" {
		embedded.RemoveLocal(c.path, c.l)
	}
}

// LocalCredentialsFile is the file where the embedded server of cfg
// (remote.embedded.enabled, no users file), running at url (as Connect
// connected to it), writes its users while it runs: nats-<port>.json in
// remote.local_credentials_dir (embedded.Local). It is empty, with no
// error, for a configuration that starts no such server.
func LocalCredentialsFile(cfg *config.Config, url string) (string, error) {
	if e := cfg.Remote.Embedded; !e.Enabled || e.UsersFile != "" {
		return "", nil
	}
	dir, err := localDir(cfg)
	if err != nil {
		return "", err
	}
	return embedded.LocalPath(dir, urlPort(url)), nil
}

// localDir is remote.local_credentials_dir, or its default from the
// environment the configuration was loaded with.
func localDir(cfg *config.Config) (string, error) {
	if d := cfg.Remote.LocalCredentialsDir; d != "" {
		return d, nil
	}
	d, err := embedded.DefaultLocalDir(cfg.Getenv)
	if err != nil {
		return "", adapter.Errorf(adapter.CodeFailedPrecondition, "%v: set remote.local_credentials_dir", err)
	}
	return d, nil
}

// localDirOrDefault names the directory of local credentials for a
// message.
func localDirOrDefault(cfg *config.Config) string {
	if d, err := localDir(cfg); err == nil {
		return d
	}
	return "unset"
}

// findLocal returns the local credentials of the server at urls when
// every URL is on loopback and the first one's port has a file of them;
// none otherwise. A file that others may have written or read is an
// error, not none.
func findLocal(cfg *config.Config, urls string) (localCredentials, error) {
	var none localCredentials
	port := 0
	for _, u := range strings.Split(urls, ",") {
		host, p, ok := hostPort(strings.TrimSpace(u))
		if !ok || !embedded.IsLoopback(host) {
			return none, nil
		}
		if port == 0 {
			port = p
		}
	}
	dir, err := localDir(cfg)
	if err != nil || port == 0 {
		return none, nil
	}
	l, path, err := embedded.ReadLocal(dir, port)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return none, nil
	case err != nil:
		return none, adapter.Errorf(adapter.CodeFailedPrecondition, "remote.local_credentials_dir: %v", err)
	}
	return localCredentials{dir: dir, path: path, l: l}, nil
}

// urlPort is the port of a server URL, or 0.
func urlPort(u string) int {
	_, p, _ := hostPort(u)
	return p
}

// hostPort splits a NATS server URL ("nats://127.0.0.1:4222", or
// "127.0.0.1:4222" as nats.go also takes it) into its host and port,
// 4222 when it names none.
func hostPort(s string) (host string, port int, ok bool) {
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" {
		return "", 0, false
	}
	port = 4222
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return "", 0, false
		}
	}
	return u.Hostname(), port, true
}
