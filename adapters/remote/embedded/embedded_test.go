package embedded_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/adapters/remote/embedded"
	"github.com/dspgo/dspgo/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func start(t *testing.T, opts embedded.Options) *embedded.Server {
	t.Helper()
	opts.Port, opts.StoreDir = -1, t.TempDir()
	s, err := embedded.Start(ctxT(t), opts)
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	return s
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "[::1]": true, "localhost": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "192.168.1.2": false, "nats.example": false,
	} {
		assert.Equal(t, want, embedded.IsLoopback(host), host)
	}
}

// A server needs users: without them it does not start, even on
// loopback, unless NoAuth says so, and even then never beyond loopback
// (and never binds); routes beyond loopback are refused too.
func TestStartNeedsUsers(t *testing.T) {
	s, err := embedded.Start(ctxT(t), embedded.Options{Port: -1, StoreDir: t.TempDir()})
	assert.Nil(t, s)
	require.ErrorIs(t, err, embedded.ErrNoAuth)
	assert.ErrorContains(t, err, "give Options.Users (NewLocal makes a host and a caller user for one OS user)")
	for _, host := range []string{"0.0.0.0", "::", "10.0.0.1"} {
		s, err := embedded.Start(ctxT(t), embedded.Options{Host: host, Port: -1, StoreDir: t.TempDir(), NoAuth: true})
		assert.Nil(t, s)
		require.ErrorIs(t, err, embedded.ErrNoAuth, host)
		assert.Contains(t, err.Error(), "give Options.Users (or listen on 127.0.0.1)")
	}
	_, err = embedded.Start(ctxT(t), embedded.Options{Port: -1, StoreDir: t.TempDir(), NoAuth: true,
		Users: []embedded.User{{Role: remote.RoleCaller, Name: "alice", Password: "pw"}}})
	assert.ErrorContains(t, err, "Options.NoAuth and Options.Users")
	_, err = embedded.Start(ctxT(t), embedded.Options{Port: -1, StoreDir: t.TempDir(), NoAuth: true, Cluster: embedded.Cluster{Name: "c", Host: "0.0.0.0"}})
	assert.ErrorContains(t, err, "routes between embedded servers are not authenticated")

	s = start(t, embedded.Options{NoAuth: true})
	nc, err := remote.Dial(ctxT(t), remote.DialOptions{URL: s.ClientURL(), AllowNoAuth: true})
	require.NoError(t, err, "NoAuth lets any client in")
	nc.Close()
}

func TestParseUsers(t *testing.T) {
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	users, err := embedded.ParseUsers(strings.NewReader("# comment\n\nhost  host-a  $2a$11$hash\n  caller " + pub + "\n"))
	require.NoError(t, err)
	assert.Equal(t, []embedded.User{{Role: remote.RoleHost, Name: "host-a", Password: "$2a$11$hash"}, {Role: remote.RoleCaller, NKey: pub}}, users)

	for text, want := range map[string]string{
		"admin root S3CR3T\n":             "line 1: its first field is not a role (host or caller)",
		"host h p\nalice:S3CR3T\n":        "line 2: its first field is not a role (host or caller)",
		"host\n":                          "line 1: expected",
		"\ncaller alice\n":                "line 2: expected",
		"caller alice S3CR3T extra\n":     "line 1: expected",
		"# nothing\n":                     "no users",
		"caller UNOTAKEY S3CR3T more x\n": "line 1: expected",
		"host h p\ncaller alice " + strings.Repeat("S3CR3T", 12000) + "\n": "line 2 is over 64 KiB",
	} {
		_, err := embedded.ParseUsers(strings.NewReader(text))
		require.Error(t, err, text)
		assert.Contains(t, err.Error(), want, text)
		assert.NotContains(t, err.Error(), "3CR3T")
	}
	for _, bad := range [][]embedded.User{
		{{Role: remote.RoleCaller, Name: "al.ice", Password: "p"}},
		{{Role: remote.RoleCaller, Name: "alice"}},
		{{Role: remote.RoleCaller, Name: "alice", Password: "p"}, {Role: remote.RoleHost, Name: "alice", Password: "q"}},
		{{Role: "admin", Name: "root", Password: "p"}},
		{{Role: remote.RoleCaller, NKey: "UNOTAKEY"}},
	} {
		_, err := embedded.Start(ctxT(t), embedded.Options{Port: -1, StoreDir: t.TempDir(), Users: bad})
		assert.Error(t, err, "%v", bad)
	}
}

// An NKEY caller connects with its seed file; its inbox is its public
// key's, and it has the caller's permissions.
func TestNKeyUser(t *testing.T) {
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	seedFile := filepath.Join(t.TempDir(), "caller.nk")
	require.NoError(t, os.WriteFile(seedFile, seed, 0o600))
	s := start(t, embedded.Options{Users: []embedded.User{{Role: remote.RoleCaller, NKey: pub}}})

	errs := make(chan error, 8)
	nc, err := nats.Connect(s.ClientURL(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }),
		func(o *nats.Options) error {
			opt, err := nats.NkeyOptionFromSeed(seedFile)
			if err != nil {
				return err
			}
			return opt(o)
		}, nats.CustomInboxPrefix(remote.InboxPrefix(pub)))
	require.NoError(t, err)
	defer nc.Close()
	_, err = nc.SubscribeSync("dspgo.call")
	require.NoError(t, err)
	select {
	case err := <-errs:
		assert.ErrorIs(t, err, nats.ErrPermissionViolation)
	case <-ctxT(t).Done():
		t.Fatal("no permissions violation")
	}

	dialed, err := remote.Dial(ctxT(t), remote.DialOptions{URL: s.ClientURL(), NKeySeedFile: seedFile})
	require.NoError(t, err)
	defer dialed.Close()
	assert.True(t, strings.HasPrefix(dialed.NewInbox(), "_INBOX."+pub+"."))
	a, err := remote.New(ctxT(t), remote.Options{Conn: dialed})
	require.NoError(t, err, "a caller may read its inbox and the announcements")
	require.NoError(t, a.Close(context.Background()))

	_, err = remote.Dial(ctxT(t), remote.DialOptions{URL: s.ClientURL()})
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "anonymous: %v", err)
	notSeed := filepath.Join(t.TempDir(), "junk")
	require.NoError(t, os.WriteFile(notSeed, []byte("S3CR3T junk"), 0o600))
	_, err = remote.Dial(ctxT(t), remote.DialOptions{URL: s.ClientURL(), NKeySeedFile: notSeed})
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	assert.NotContains(t, err.Error(), "3CR3T")
}

// A user's password may be given as its bcrypt hash.
func TestBcryptPassword(t *testing.T) {
	const hash = "$2a$04$9bDtwAaNauzrFpn1GOBxMuMTAzrE3JgVSQQRfAKEMhDd7MRIr7EMe" // "caller-password", cost 4
	users, err := embedded.ParseUsers(strings.NewReader("caller alice " + hash + "\n"))
	require.NoError(t, err)
	s := start(t, embedded.Options{Users: users})
	nc, err := remote.Dial(ctxT(t), remote.DialOptions{URL: s.ClientURL(), User: "alice", Password: "caller-password"})
	require.NoError(t, err)
	nc.Close()
	_, err = remote.Dial(ctxT(t), remote.DialOptions{URL: s.ClientURL(), User: "alice", Password: hash})
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "the hash itself is not the password")
}

// tlsFiles writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, each signed by the CA.
func tlsFiles(t *testing.T) (ca, serverCert, serverKey, clientCert, clientKey string) {
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dspgo test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return path
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		require.NoError(t, err)
		keyDER, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	ca = write("ca.pem", "CERTIFICATE", caDER)
	serverCert, serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return
}

// With TLS and a client CA, a client needs the server's CA, a client
// certificate and its credentials; without any of them it is refused.
func TestMutualTLS(t *testing.T) {
	ca, cert, key, clientCert, clientKey := tlsFiles(t)
	s := start(t, embedded.Options{TLS: embedded.TLS{CertFile: cert, KeyFile: key, CAFile: ca},
		Users: []embedded.User{{Role: remote.RoleCaller, Name: "alice", Password: "pw"}}})
	assert.True(t, strings.HasPrefix(s.ClientURL(), "tls://"), s.ClientURL())
	good := remote.DialOptions{URL: s.ClientURL(), User: "alice", Password: "pw", CAFile: ca, CertFile: clientCert, KeyFile: clientKey}
	nc, err := remote.Dial(ctxT(t), good)
	require.NoError(t, err)
	assert.True(t, nc.TLSRequired())
	nc.Close()

	for name, change := range map[string]func(*remote.DialOptions){
		"no client certificate": func(o *remote.DialOptions) { o.CertFile, o.KeyFile = "", "" },
		"no credentials":        func(o *remote.DialOptions) { o.User, o.Password = "", "" },
		"the system's roots":    func(o *remote.DialOptions) { o.CAFile = "" },
		"plain TCP":             func(o *remote.DialOptions) { o.URL = strings.Replace(o.URL, "tls://", "nats://", 1); o.CAFile = "" },
	} {
		o := good
		change(&o)
		o.ConnectTimeout = 2 * time.Second
		nc, err := remote.Dial(ctxT(t), o)
		if !assert.Error(t, err, name) {
			nc.Close()
		}
	}
}

// The nats-server configuration that docs/scale-out.md gives for an
// external server parses, and gives its two users exactly the roles'
// permissions of Permissions.
func TestDocumentedServerConfigHasTheRoles(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "docs", "scale-out.md"))
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)```hcl\n(# nats-server.conf.*?)```").FindSubmatch(doc)
	require.NotNil(t, m, "docs/scale-out.md has the nats-server.conf block")
	_, cert, key, _, _ := tlsFiles(t)
	conf := strings.NewReplacer("/etc/nats/server.pem", cert, "/etc/nats/server-key.pem", key).Replace(string(m[1]))
	path := filepath.Join(t.TempDir(), "nats-server.conf")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))
	opts, err := server.ProcessConfigFile(path)
	require.NoError(t, err)
	want := map[string]remote.Role{"host-a": remote.RoleHost, "alice": remote.RoleCaller}
	require.Len(t, opts.Users, len(want))
	for _, u := range opts.Users {
		role, ok := want[u.Username]
		require.True(t, ok, u.Username)
		perms, err := embedded.Permissions(role, "", "", u.Username)
		require.NoError(t, err)
		assert.ElementsMatch(t, perms.Publish.Allow, u.Permissions.Publish.Allow, "%s publish", u.Username)
		assert.ElementsMatch(t, perms.Subscribe.Allow, u.Permissions.Subscribe.Allow, "%s subscribe", u.Username)
		assert.Equal(t, perms.Response, u.Permissions.Response, "%s responses", u.Username)
	}
}

// Local credentials print their users' names, never their passwords, in
// any form fmt or a logger gives them.
func TestLocalHidesItsPasswords(t *testing.T) {
	l, err := embedded.NewLocal()
	require.NoError(t, err)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("local", "creds", l, "host", l.Host)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("local", "creds", l, "host", l.Host)
	for _, out := range []string{fmt.Sprint(l), fmt.Sprintf("%+v", l), fmt.Sprintf("%#v", l), fmt.Sprintf("%v", &l), logged.String()} {
		assert.NotContains(t, out, l.Host.Password)
		assert.NotContains(t, out, l.Caller.Password)
		assert.Contains(t, out, "local-host")
	}
}
