package embedded

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/dspgo/dspgo/adapters/remote"
)

// Local is the pair of users of an embedded server on loopback whose
// clients are the processes of one OS user: a host and a caller, each
// with a random password (NewLocal). The server that makes them writes
// them to a file only that OS user can read (WriteLocal), where that
// user's other processes, and no one else's, find them (ReadLocal): so a
// server started with no users file still authenticates every client,
// and another user of the machine can neither take calls nor steer the
// hosts.
type Local struct {
	// URL is the server's client URL.
	URL string `json:"url"`
	// PID is the process running the server.
	PID int `json:"pid"`
	// ServerID is the server's id (Server.ID): a client that took these
	// credentials checks that the server it reached is this one, not
	// another process on the same port. Empty means not known.
	ServerID string `json:"server_id,omitempty"`
	// Host and Caller are the users of the two roles.
	Host   LocalUser `json:"host"`
	Caller LocalUser `json:"caller"`
}

// LocalUser is a user of Local. Its String, GoString and LogValue forms
// show the name only.
type LocalUser struct {
	// Name is the user name: local-host or local-caller.
	Name string `json:"name"`
	// Password is the user's random password, 43 characters of
	// base64url.
	Password string `json:"password"`
}

// String returns the user's name, never its password.
func (u LocalUser) String() string { return u.Name }

// GoString returns the user's name, never its password, for %#v.
func (u LocalUser) GoString() string { return fmt.Sprintf("embedded.LocalUser{Name: %q}", u.Name) }

// LogValue gives a logger l's URL, process and user names, never the
// passwords.
func (l Local) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", l.URL), slog.Int("pid", l.PID),
		slog.String("host", l.Host.Name), slog.String("caller", l.Caller.Name))
}

// LogValue gives a logger the user's name, never its password.
func (u LocalUser) LogValue() slog.Value { return slog.StringValue(u.Name) }

// NewLocal makes a host user and a caller user with 256-bit random
// passwords; URL is for the caller to set.
func NewLocal() (Local, error) {
	l := Local{PID: os.Getpid(), Host: LocalUser{Name: "local-host"}, Caller: LocalUser{Name: "local-caller"}}
	for _, p := range []*string{&l.Host.Password, &l.Caller.Password} {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return Local{}, fmt.Errorf("embedded NATS: local credentials: %w", err)
		}
		*p = base64.RawURLEncoding.EncodeToString(b)
	}
	return l, nil
}

// Users are l's users in their roles, for Options.Users.
func (l Local) Users() []User {
	return []User{
		{Role: remote.RoleHost, Name: l.Host.Name, Password: l.Host.Password},
		{Role: remote.RoleCaller, Name: l.Caller.Name, Password: l.Caller.Password},
	}
}

// User is l's user of role: the host's for remote.RoleHost, otherwise
// the caller's.
func (l Local) User(role remote.Role) LocalUser {
	if role == remote.RoleHost {
		return l.Host
	}
	return l.Caller
}

// LocalPath is the file of the local credentials of the embedded server
// on port, in dir: dir/nats-<port>.json. Servers on loopback are told
// apart by their port alone, since 127.0.0.1, ::1 and localhost may all
// reach the same one.
func LocalPath(dir string, port int) string {
	return filepath.Join(dir, fmt.Sprintf("nats-%d.json", port))
}

// WriteLocal writes l to LocalPath(dir, port), readable and writable by
// this OS user only (0600), replacing the file of an earlier server on
// that port at once (a rename). It creates dir (0700) when missing, and
// refuses one that is not this user's or that others may write to.
func WriteLocal(dir string, port int, l Local) (path string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("embedded NATS: local credentials: %w", err)
	}
	if err := checkPrivate(dir, true); err != nil {
		return "", err
	}
	data, err := json.Marshal(l)
	if err != nil {
		return "", fmt.Errorf("embedded NATS: local credentials: %w", err)
	}
	f, err := os.CreateTemp(dir, ".nats-*.tmp") // 0600
	if err != nil {
		return "", fmt.Errorf("embedded NATS: local credentials: %w", err)
	}
	_, werr := f.Write(append(data, '\n'))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	path = LocalPath(dir, port)
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("embedded NATS: local credentials: %w", werr)
	}
	return path, nil
}

// ReadLocal reads the local credentials of the embedded server on port
// from dir. An error wrapping fs.ErrNotExist means there are none. It
// refuses a file or a directory that is not this OS user's, and a file
// that others may read or a directory that others may write to, since
// those credentials may be another user's forgery or already known to
// others.
func ReadLocal(dir string, port int) (Local, string, error) {
	path := LocalPath(dir, port)
	if err := checkPrivate(dir, true); err != nil {
		return Local{}, path, err
	}
	if err := checkPrivate(path, false); err != nil {
		return Local{}, path, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Local{}, path, fmt.Errorf("embedded NATS: local credentials: %w", err)
	}
	defer clear(data)
	var l Local
	if err := json.Unmarshal(data, &l); err != nil || l.Host.Password == "" || l.Caller.Password == "" {
		return Local{}, path, fmt.Errorf("embedded NATS: local credentials %s: not a file the embedded server wrote", path)
	}
	return l, path, nil
}

// RemoveLocal removes the file WriteLocal wrote at path, when it still
// holds l: a later server on the same port keeps its own.
func RemoveLocal(path string, l Local) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	defer clear(data)
	var now Local
	if json.Unmarshal(bytes.TrimSpace(data), &now) == nil && now == l {
		_ = os.Remove(path)
	}
}

// checkPrivate refuses path unless this OS user owns it and, for a
// directory, no one else may write to it or, for a file, no one else
// may read or write it.
func checkPrivate(path string, dir bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("embedded NATS: local credentials: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case dir && !fi.IsDir():
		return fmt.Errorf("embedded NATS: local credentials: %s is not a directory", path)
	case !dir && !fi.Mode().IsRegular():
		return fmt.Errorf("embedded NATS: local credentials: %s is not a regular file", path)
	case !ok || int(st.Uid) != os.Getuid():
		return fmt.Errorf("embedded NATS: local credentials: %s belongs to another user", path)
	case dir && fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("embedded NATS: local credentials: others may write to the directory %s (mode %v): use one only you can write to", path, fi.Mode().Perm())
	case !dir && fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("embedded NATS: local credentials: others may read %s (mode %v): it should be 0600", path, fi.Mode().Perm())
	}
	return nil
}

// DefaultLocalDir is the directory of local credentials when none is
// configured, from the environment getenv reads: $XDG_RUNTIME_DIR/dspgo
// (a per-user directory that the system empties at logout), else
// $XDG_CONFIG_HOME/dspgo, else $HOME/.config/dspgo.
func DefaultLocalDir(getenv func(string) string) (string, error) {
	for _, v := range []struct{ name, sub string }{{"XDG_RUNTIME_DIR", "dspgo"}, {"XDG_CONFIG_HOME", "dspgo"}, {"HOME", ".config/dspgo"}} {
		if d := getenv(v.name); d != "" && filepath.IsAbs(d) {
			return filepath.Join(d, v.sub), nil
		}
	}
	return "", errors.New("embedded NATS: local credentials: neither XDG_RUNTIME_DIR, XDG_CONFIG_HOME nor HOME is set to an absolute path")
}
