package embedded

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/dspgo/dspgo/adapters/remote"
)

// Permissions returns the nats-server permissions of the user named user
// in role, for the deployment of subject prefix prefix and hosts' queue
// group queueGroup (empty means the defaults): remote.Permissions in
// nats-server's terms. The embedded server gives them to its Users; an
// external server's configuration can say the same (docs/scale-out.md).
func Permissions(role remote.Role, prefix, queueGroup, user string) (*server.Permissions, error) {
	g, err := remote.Permissions(role, prefix, queueGroup, user)
	if err != nil {
		return nil, err
	}
	p := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: g.Publish},
		Subscribe: &server.SubjectPermission{Allow: g.Subscribe},
	}
	if g.ResponseTTL > 0 {
		p.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: g.ResponseTTL}
	}
	return p, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// configureAuth gives so the users of opts, each with its role's
// permissions.
func configureAuth(so *server.Options, opts Options) error {
	names := map[string]bool{}
	for i, u := range opts.Users {
		name := u.Name
		if u.NKey != "" {
			if u.Name != "" || u.Password != "" {
				return fmt.Errorf("embedded NATS: user %d: an NKEY user has neither a name nor a password", i+1)
			}
			if !nkeys.IsValidPublicUserKey(u.NKey) {
				return fmt.Errorf("embedded NATS: user %d: %q is not a user's public NKEY (U…)", i+1, u.NKey)
			}
			name = u.NKey
		} else {
			if !nameRE.MatchString(u.Name) {
				return fmt.Errorf("embedded NATS: user %d: name %q must be letters, digits, '_' and '-' (it names the user's inbox)", i+1, u.Name)
			}
			if u.Password == "" {
				return fmt.Errorf("embedded NATS: user %q has no password (nor NKEY)", u.Name)
			}
		}
		if names[name] {
			return fmt.Errorf("embedded NATS: user %q is given twice", name)
		}
		names[name] = true
		perms, err := Permissions(u.Role, opts.Prefix, opts.QueueGroup, name)
		if err != nil {
			return fmt.Errorf("embedded NATS: user %q: %w", name, err)
		}
		if u.NKey != "" {
			so.Nkeys = append(so.Nkeys, &server.NkeyUser{Nkey: u.NKey, Permissions: perms})
		} else {
			so.Users = append(so.Users, &server.User{Username: u.Name, Password: u.Password, Permissions: perms})
		}
	}
	return nil
}

// configureTLS makes so speak TLS as t says.
func configureTLS(so *server.Options, t TLS) error {
	if t.CertFile == "" && t.KeyFile == "" {
		if t.CAFile != "" {
			return fmt.Errorf("embedded NATS: a TLS CA file needs the server's certificate and key")
		}
		return nil
	}
	cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.CertFile, KeyFile: t.KeyFile, CaFile: t.CAFile, Verify: t.CAFile != ""})
	if err != nil {
		return fmt.Errorf("embedded NATS: TLS: %w", err)
	}
	so.TLSConfig, so.TLS, so.TLSVerify = cfg, true, t.CAFile != ""
	so.TLSTimeout = 2
	return nil
}

// ReadUsers reads a users file (see ParseUsers).
func ReadUsers(path string) ([]User, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	defer f.Close()
	users, err := ParseUsers(f)
	if err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	return users, nil
}

// ParseUsers reads users, one a line: the role, then either a name and
// its password (or the password's bcrypt hash), or an NKEY user's public
// key. Blank lines and lines starting with '#' are skipped:
//
//	# role  name or public key                                  password or hash
//	host    host-a                                              $2a$11$…
//	caller  alice                                               $2a$11$…
//	caller  UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4
//
// Errors name the line, never its password.
func ParseUsers(r io.Reader) ([]User, error) {
	var users []User
	br := bufio.NewReaderSize(r, maxUserLine) // a line is read whole, or refused
	for n := 1; ; n++ {
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("line %d is over %d KiB: no user line is that long", n, maxUserLine>>10)
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if user, ok, lerr := parseUserLine(string(raw)); lerr != nil {
			return nil, fmt.Errorf("line %d: %w", n, lerr)
		} else if ok {
			users = append(users, user)
		}
		if err == io.EOF {
			break
		}
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("no users")
	}
	return users, nil
}

// maxUserLine is the longest line ParseUsers takes.
const maxUserLine = 64 << 10

// parseUserLine parses one line of a users file: ok is false for a blank
// line or a comment.
func parseUserLine(line string) (u User, ok bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return u, false, nil
	}
	f := strings.Fields(line)
	role := remote.Role(f[0])
	if role != remote.RoleHost && role != remote.RoleCaller {
		// Not quoted: a line in another format ("alice:S3CR3T", as
		// htpasswd writes it) has a password in its first field.
		return u, false, errors.New("its first field is not a role (host or caller); the line is not shown, as it may hold a password")
	}
	switch {
	case len(f) == 2 && nkeys.IsValidPublicUserKey(f[1]):
		return User{Role: role, NKey: f[1]}, true, nil
	case len(f) == 3:
		return User{Role: role, Name: f[1], Password: f[2]}, true, nil
	default:
		return u, false, fmt.Errorf("expected \"<role> <name> <password or bcrypt hash>\" or \"<role> <public NKEY>\" (%d fields)", len(f))
	}
}
