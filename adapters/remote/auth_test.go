package remote_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/adapters/remote/embedded"
	"github.com/dspgo/dspgo/conformance"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/testutil"
	"github.com/dspgo/dspgo/internal/wait"
)

// A deployment with users: two hosts and two callers, each with a
// random password.
type authDeployment struct {
	srv       *embedded.Server
	passwords map[string]string // user → password
}

var (
	hostUsers   = []string{"host-a", "host-b"}
	callerUsers = []string{"alice", "bob"}
)

// startAuthServer runs the embedded server with the users of both roles.
func startAuthServer(t testing.TB) *authDeployment {
	t.Helper()
	d := &authDeployment{passwords: map[string]string{}}
	var users []embedded.User
	for _, u := range hostUsers {
		d.passwords[u] = secret(t)
		users = append(users, embedded.User{Role: remote.RoleHost, Name: u, Password: d.passwords[u]})
	}
	for _, u := range callerUsers {
		d.passwords[u] = secret(t)
		users = append(users, embedded.User{Role: remote.RoleCaller, Name: u, Password: d.passwords[u]})
	}
	s, err := embedded.Start(context.Background(), embedded.Options{Port: -1, StoreDir: t.TempDir(), Users: users})
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	d.srv = s
	return d
}

func secret(t testing.TB) string {
	b := make([]byte, 16)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// dialAs connects as user, closed at the end of the test.
func (d *authDeployment) dialAs(t testing.TB, user string) *nats.Conn {
	t.Helper()
	nc, err := remote.Dial(ctxT(t, 10*time.Second), d.dialOptions(user))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func (d *authDeployment) dialOptions(user string) remote.DialOptions {
	return remote.DialOptions{URL: d.srv.ClientURL(), Name: user, User: user, Password: d.passwords[user]}
}

// serveAs serves a mock as host id, connected as user.
func (d *authDeployment) serveAs(t testing.TB, user, id string, opts remote.HostOptions) (*remote.Host, *mock.Adapter) {
	t.Helper()
	m := mock.New(mock.Options{})
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	opts.ID = id
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 100 * time.Millisecond
	}
	h, err := remote.Serve(ctxT(t, 30*time.Second), d.dialAs(t, user), m, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h, m
}

// callerAs opens the remote adapter as user.
func (d *authDeployment) callerAs(t testing.TB, user string) *remote.Adapter {
	t.Helper()
	a, err := remote.New(context.Background(), remote.Options{Conn: d.dialAs(t, user), Heartbeat: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	return a
}

// attacker is a raw connection as a user of the deployment whose every
// refusal by the server is kept.
type attacker struct {
	nc   *nats.Conn
	errs chan error
}

func (d *authDeployment) attackerAs(t testing.TB, user string) *attacker {
	t.Helper()
	at := &attacker{errs: make(chan error, 64)}
	nc, err := nats.Connect(d.srv.ClientURL(), nats.UserInfo(user, d.passwords[user]), nats.CustomInboxPrefix(remote.InboxPrefix(user)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case at.errs <- err:
			default:
			}
		}))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	at.nc = nc
	return at
}

// refused waits for the server's permissions violation naming subject
// (and queue, when set).
func (at *attacker) refused(t testing.TB, what, subject, queue string) {
	t.Helper()
	want := fmt.Sprintf("%q", subject)
	if queue != "" {
		want += fmt.Sprintf(" using queue %q", queue)
	}
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case err := <-at.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.HasSuffix(err.Error(), want) {
				return
			}
		case <-timeout.C:
			t.Fatalf("%s: no permissions violation for %s", what, want)
		}
	}
}

// cannotSubscribe subscribes to subject (in queue when set) and expects
// the server to refuse it.
func (at *attacker) cannotSubscribe(t testing.TB, what, subject, queue string) {
	t.Helper()
	var sub *nats.Subscription
	var err error
	if queue != "" {
		sub, err = at.nc.QueueSubscribeSync(subject, queue)
	} else {
		sub, err = at.nc.SubscribeSync(subject)
	}
	require.NoError(t, err)
	at.refused(t, what, subject, queue)
	_ = sub.Unsubscribe()
}

// cannotPublish publishes to subject and expects the server to refuse it.
func (at *attacker) cannotPublish(t testing.TB, what, subject string, data []byte) {
	t.Helper()
	require.NoError(t, at.nc.Publish(subject, data))
	at.refused(t, what, subject, "")
}

// TestRolesRoundTrip: a host and a caller with the roles' permissions
// serve and call, broadcast, stream, and record specs, with no refusal.
func TestRolesRoundTrip(t *testing.T) {
	d := startAuthServer(t)
	logs := &testutil.SyncBuffer{}
	d.serveAs(t, "host-a", "h1", remote.HostOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	a := d.callerAs(t, "alice")
	ctx := ctxT(t, 20*time.Second)
	require.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"m1"}`)}))
	resp, err := a.Call(ctx, adapter.Request{Command: "get_stats"})
	require.NoError(t, err)
	assert.Contains(t, string(resp.Result), `"m1"`)
	n := 0
	for c, err := range a.Stream(ctx, adapter.Request{Command: "stream_count", Args: json.RawMessage(`{"n":40}`)}) {
		require.NoError(t, err)
		if c.Response == nil {
			n++
		}
	}
	assert.Equal(t, 40, n)
	assert.NotContains(t, logs.String(), "ermission", logs.String())
}

// TestConformanceWithRoles: two host processes connected as users of the
// host role, a caller as a user of the caller role, on a server that
// enforces the roles' permissions: the whole suite passes.
func TestConformanceWithRoles(t *testing.T) {
	testutil.VerifyNoChildren(t)
	d := startAuthServer(t)
	hosts := newHostSet(t, d.srv.ClientURL(), 2, userEnv+"=host-a", passEnv+"="+d.passwords["host-a"])
	conformance.Run(t, conformance.Harness{
		Name: "remote/roles",
		New: func(ctx context.Context) (adapter.Adapter, error) {
			nc, err := remote.Dial(ctx, d.dialOptions("alice"))
			if err != nil {
				return nil, err
			}
			a, err := remote.New(ctx, remote.Options{Conn: nc, Heartbeat: 100 * time.Millisecond, OnClose: nc.Close})
			if err != nil {
				nc.Close()
				return nil, err
			}
			if err := a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy"}`)}); err != nil {
				_ = a.Close(ctx)
				return nil, err
			}
			return a, nil
		},
		Faults: &conformance.Faults{
			Crash:   func(context.Context, adapter.Adapter) error { hosts.killOne(); return nil },
			Recover: func(context.Context, adapter.Adapter) error { hosts.add(); return nil },
		},
	})
}

// TestAnonymousAndWrongCredentialsAreRefused: without credentials, or
// with a wrong password, nothing connects; the error names no secret.
func TestAnonymousAndWrongCredentialsAreRefused(t *testing.T) {
	d := startAuthServer(t)
	ctx := ctxT(t, 10*time.Second)
	_, err := remote.Dial(ctx, remote.DialOptions{URL: d.srv.ClientURL()})
	require.Error(t, err)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
	assert.ErrorIs(t, err, nats.ErrAuthorization)

	wrong := d.dialOptions("alice")
	wrong.Password = "not-" + wrong.Password
	_, err = remote.Dial(ctx, wrong)
	require.Error(t, err)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err))
	assert.NotContains(t, err.Error(), wrong.Password)

	// Credentials in the URL are not printed either: a password, or a
	// token as the user name.
	for _, userinfo := range []string{"alice:" + wrong.Password, wrong.Password, "alice:pa%2Fss" + wrong.Password} {
		_, err = remote.Dial(ctx, remote.DialOptions{URL: strings.Replace(d.srv.ClientURL(), "nats://", "nats://"+userinfo+"@", 1)})
		require.Error(t, err)
		assert.NotContains(t, err.Error(), wrong.Password)
		assert.Contains(t, err.Error(), "nats://***@127.0.0.1:")
	}
	// A password holding what a URL may not hold raw makes the URL fail to
	// parse, and the parser's error quotes the URL, and a piece of the
	// password as a port: none of it is shown.
	for _, password := range []string{"Zq9/Tp4xK2", "Zq9?Tp4xK2", "Zq9#Tp4xK2", "Zq9@Tp4xK2"} {
		_, err = remote.Dial(ctx, remote.DialOptions{URL: strings.Replace(d.srv.ClientURL(), "nats://", "nats://alice:"+password+"@", 1)})
		require.Error(t, err)
		for _, piece := range []string{"Zq9", "Tp4xK2"} {
			assert.NotContains(t, err.Error(), piece, password)
		}
		assert.Contains(t, err.Error(), "nats://***@127.0.0.1:", password)
	}
}

// TestCallerCannotTakeCalls: a caller can neither subscribe to the call
// subjects nor join the hosts' queue group, so it never receives another
// caller's call; the calls go on reaching the host.
func TestCallerCannotTakeCalls(t *testing.T) {
	d := startAuthServer(t)
	d.serveAs(t, "host-a", "h1", remote.HostOptions{})
	mallory := d.attackerAs(t, "bob")
	mallory.cannotSubscribe(t, "the call subject", "dspgo.call", "")
	mallory.cannotSubscribe(t, "the hosts' queue group", "dspgo.call", remote.DefaultQueueGroup)
	mallory.cannotSubscribe(t, "another queue group", "dspgo.call", "mallory")
	mallory.cannotSubscribe(t, "a host's own calls", "dspgo.host.h1.call", "")
	mallory.cannotSubscribe(t, "every host's calls", "dspgo.host.*.call", "")
	mallory.cannotSubscribe(t, "the whole prefix", "dspgo.>", "")
	mallory.cannotSubscribe(t, "everything", ">", "")

	a := d.callerAs(t, "alice")
	resp, err := a.Call(ctxT(t, 10*time.Second), adapter.Request{Command: "ping"})
	require.NoError(t, err)
	assert.Equal(t, "h1", host(resp.Worker), "the host, not the attacker, served the call")
}

// TestCallerCannotReadOrForgeAnotherCallersReplies: a caller can read
// only its own inbox, and cannot publish to anyone's: not to another
// caller's (a forged result), nor to a host's.
func TestCallerCannotReadOrForgeAnotherCallersReplies(t *testing.T) {
	d := startAuthServer(t)
	d.serveAs(t, "host-a", "h1", remote.HostOptions{})
	mallory := d.attackerAs(t, "bob")
	mallory.cannotSubscribe(t, "another caller's inbox", remote.InboxPrefix("alice")+".>", "")
	mallory.cannotSubscribe(t, "a host's inbox", remote.InboxPrefix("host-a")+".>", "")
	mallory.cannotSubscribe(t, "every inbox", "_INBOX.>", "")
	mallory.cannotSubscribe(t, "the default inboxes", "_INBOX.*", "")
	mallory.cannotPublish(t, "a forged reply", remote.InboxPrefix("alice")+".abc.1", []byte(`{"outputs":{"answer":"forged"}}`))
	mallory.cannotPublish(t, "a forged tool answer", remote.InboxPrefix("host-a")+".abc.1", []byte(`{}`))

	// Its own inbox works: bob is a caller like any other.
	b := d.callerAs(t, "bob")
	_, err := b.Call(ctxT(t, 10*time.Second), adapter.Request{Command: "ping"})
	require.NoError(t, err)
}

// TestCallerCannotImpersonateAHost: a caller cannot announce itself as a
// host, take discovery requests, or answer NATS micro's requests.
func TestCallerCannotImpersonateAHost(t *testing.T) {
	d := startAuthServer(t)
	mallory := d.attackerAs(t, "bob")
	mallory.cannotPublish(t, "a forged announcement", "dspgo.announce", []byte(`{"host":"h1","workers":100}`))
	mallory.cannotSubscribe(t, "discovery", "dspgo.discover", "")
	mallory.cannotSubscribe(t, "micro's pings", "$SRV.PING.dspgo", "")
	mallory.cannotPublish(t, "micro's stats", "$SRV.STATS.dspgo", nil)
}

// TestCallerCannotReadOrWriteTheState: of the state bucket a caller may
// only put the configure_lm broadcast; it cannot read a key, watch the
// bucket, write another key (a spec, a broadcast of shutdown), or delete
// or purge the stream. The state is unchanged.
func TestCallerCannotReadOrWriteTheState(t *testing.T) {
	d := startAuthServer(t)
	d.serveAs(t, "host-a", "h1", remote.HostOptions{})
	a := d.callerAs(t, "alice")
	ctx := ctxT(t, 20*time.Second)
	require.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"alice's"}`)}))

	const bucket, stream = "dspgo_state", "KV_dspgo_state"
	mallory := d.attackerAs(t, "bob")
	for _, subject := range []string{
		"$JS.API.DIRECT.GET." + stream + ".$KV." + bucket + ".broadcast.configure_lm", // read a key
		"$JS.API.STREAM.MSG.GET." + stream,                                            // read a message
		"$JS.API.CONSUMER.CREATE." + stream,                                           // watch the bucket
		"$JS.API.STREAM.DELETE." + stream,                                             // delete the state
		"$JS.API.STREAM.PURGE." + stream,                                              // purge it
		"$JS.API.STREAM.UPDATE." + stream,                                             // change it
		"$KV." + bucket + ".spec.0123",                                                // plant a spec
		"$KV." + bucket + ".broadcast.shutdown",                                       // broadcast shutdown through the state
		"$KV." + bucket + ".broadcast.reset",                                          // or anything else
	} {
		mallory.cannotPublish(t, "the state bucket", subject, []byte(`{}`))
	}
	mallory.cannotSubscribe(t, "the bucket's subjects", "$KV."+bucket+".>", "")

	js, err := jetstream.New(d.dialAs(t, "host-b"))
	require.NoError(t, err)
	kv, err := js.KeyValue(ctx, bucket)
	require.NoError(t, err)
	keys, err := kv.Keys(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"broadcast.configure_lm"}, keys, "nothing was written but the caller's broadcast")
	e, err := kv.Get(ctx, "broadcast.configure_lm")
	require.NoError(t, err)
	assert.Contains(t, string(e.Value()), "alice's")
}

// TestHostRoleLimits: a host takes calls only in the hosts' queue group,
// reads only its own inbox, makes no calls through the queue group, and
// touches no stream but the state bucket.
func TestHostRoleLimits(t *testing.T) {
	d := startAuthServer(t)
	rogue := d.attackerAs(t, "host-b")
	rogue.cannotSubscribe(t, "every call, outside the queue group", "dspgo.call", "")
	rogue.cannotSubscribe(t, "another queue group", "dspgo.call", "rogue")
	rogue.cannotSubscribe(t, "a caller's inbox", remote.InboxPrefix("alice")+".>", "")
	rogue.cannotSubscribe(t, "another host's inbox", remote.InboxPrefix("host-a")+".>", "")
	rogue.cannotSubscribe(t, "the announcements", "dspgo.announce", "")
	rogue.cannotPublish(t, "a call through the queue group", "dspgo.call", nil)
	rogue.cannotPublish(t, "a stream that is not the state", "$JS.API.STREAM.CREATE.OTHER", nil)
	rogue.cannotPublish(t, "deleting the state", "$JS.API.STREAM.DELETE.KV_dspgo_state", nil)
}

// lmRecorder is an OpenAI-compatible endpoint on 127.0.0.1 that answers
// every chat completion and records the Authorization header it got.
type lmRecorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	auth []string
}

func newLMRecorder(t testing.TB) *lmRecorder {
	r := &lmRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": "[[ ## answer ## ]]\nok\n\n[[ ## completed ## ]]"}}},
		})
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *lmRecorder) baseURL() string { return r.srv.URL + "/v1" }

func (r *lmRecorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

// TestKeyExfiltrationIsRefused: a caller asks the hosts' Python workers
// to use its own endpoint, with the variable holding the hosts' real
// key (or to fetch images by URL, which the host's configuration does not
// allow), by a broadcast, a direct call, and a record it writes to the
// shared state itself; every host refuses each (failed_precondition,
// logged), and the attacker's endpoint sees no request, while the
// host's own endpoint gets the key as before.
func TestKeyExfiltrationIsRefused(t *testing.T) {
	testutil.VerifyNoChildren(t)
	const keyEnv, key = "DSPGO_TEST_LM_KEY", "sk-the-hosts-real-key"
	legit, evil := newLMRecorder(t), newLMRecorder(t)
	d := startAuthServer(t)
	ctx := ctxT(t, 60*time.Second)

	backend, err := port.New(ctx, port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Logger: testutil.Discard,
		PassEnv: []string{"PATH", keyEnv, "OTHER_SECRET"}, Environ: func() []string {
			return []string{"PATH=" + os.Getenv("PATH"), keyEnv + "=" + key, "OTHER_SECRET=sk-another-secret"}
		}})
	require.NoError(t, err)
	defer backend.Close(context.Background())
	hostLM := dspgo.LMConfig{Provider: "openai", Model: "m", BaseURL: legit.baseURL(), APIKeyEnv: keyEnv, Engine: "native"}
	require.NoError(t, dspgo.NewClient(backend).ConfigureLM(ctx, hostLM))
	logs := &testutil.SyncBuffer{}
	h, err := remote.Serve(ctx, d.dialAs(t, "host-a"), backend, remote.HostOptions{ID: "h1", Heartbeat: 100 * time.Millisecond,
		LMBaseURLs: []string{legit.baseURL()}, LMAPIKeyEnv: keyEnv, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	defer h.Close(context.Background())

	a := d.callerAs(t, "alice")
	client := dspgo.NewClient(a)
	execute := func() {
		t.Helper()
		p, err := client.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
		require.NoError(t, err)
		out, err := client.Execute(ctx, p.ID, map[string]any{"question": "?"})
		require.NoError(t, err)
		assert.Equal(t, "ok", out["answer"])
	}
	execute()
	require.Equal(t, []string{"Bearer " + key}, legit.requests(), "the host's own endpoint gets its key")

	attacks := map[string]dspgo.LMConfig{
		"the attacker's endpoint with the hosts' variable":  {Provider: "openai", Model: "m", BaseURL: evil.baseURL(), APIKeyEnv: keyEnv, Engine: "native", Verify: true},
		"the attacker's endpoint with the default variable": {Provider: "openai", Model: "m", BaseURL: evil.baseURL(), Engine: "native"},
		"the host's endpoint with another variable":         {Provider: "openai", Model: "m", BaseURL: legit.baseURL(), APIKeyEnv: "OTHER_SECRET", Engine: "native"},
		"the dummy naming the attacker's endpoint":          {Provider: "dummy", BaseURL: evil.baseURL()},
		"the host's endpoint fetching images by URL":        {Provider: "openai", Model: "m", BaseURL: legit.baseURL(), APIKeyEnv: keyEnv, Engine: "native", ImageURLs: true},
	}
	for name, lm := range attacks {
		err := client.ConfigureLM(ctx, lm) // a broadcast
		assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%s: %v", name, err)
		assert.ErrorContains(t, err, `host "h1" refuses configure_lm`, name)

		args, _ := json.Marshal(map[string]any{"provider": lm.Provider, "model": lm.Model, "base_url": lm.BaseURL, "api_key_env": lm.APIKeyEnv,
			"image_urls": lm.ImageURLs})
		_, err = a.Call(ctx, adapter.Request{Command: "configure_lm", Args: args}) // a direct call
		assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%s: %v", name, err)
	}
	// A key sent where its variable's name belongs is refused without
	// being shown, to the caller or in the host's log.
	args, _ := json.Marshal(map[string]any{"provider": "openai", "model": "m", "base_url": legit.baseURL(), "api_key_env": "sk-live-S3CR3T"})
	_, err = a.Call(ctx, adapter.Request{Command: "configure_lm", Args: args})
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
	assert.NotContains(t, err.Error(), "S3CR3T")
	// The same keys spelled differently still name the attacker's
	// endpoint: the worker reads the exact key, the last one.
	tricky := fmt.Sprintf(`{"provider":"openai","model":"m","base_url":%q,"Base_URL":%q,"base_url":%q}`, legit.baseURL(), legit.baseURL(), evil.baseURL())
	_, err = a.Call(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(tricky)})
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)

	// A caller may write the configure_lm record to the shared state
	// itself: the host refuses it from there too.
	js, err := jetstream.New(d.dialAs(t, "bob"))
	require.NoError(t, err)
	kv, err := js.KeyValue(ctx, "dspgo_state")
	require.NoError(t, err)
	evilArgs, _ := json.Marshal(map[string]any{"provider": "openai", "model": "m", "base_url": evil.baseURL(), "api_key_env": keyEnv, "engine": "native"})
	rev, err := kv.Put(ctx, "broadcast.configure_lm", evilArgs)
	require.NoError(t, err)
	// A call carrying that revision is served once the host's watch has
	// reached it.
	m := nats.NewMsg("dspgo.call")
	m.Header.Set("Dspgo-Command", "ping")
	m.Header.Set("Dspgo-State-Rev", strconv.FormatUint(rev, 10))
	_, err = d.dialAs(t, "bob").RequestMsgWithContext(ctx, m)
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "refused a configure_lm")

	execute()
	assert.Empty(t, evil.requests(), "the attacker's endpoint saw no request")
	assert.Equal(t, []string{"Bearer " + key, "Bearer " + key}, legit.requests(), "the host still runs its own LM")
	assert.NotContains(t, logs.String(), key)
	assert.NotContains(t, logs.String(), "S3CR3T")
}

// TestHostAnswersOnlyInboxes: a request whose reply subject is not an
// inbox (here the state bucket, which a host may write) is dropped, not
// answered there; a tools subject other than the request's own inbox is
// refused; broadcasts other than configure_lm are refused.
func TestHostAnswersOnlyInboxes(t *testing.T) {
	d := startAuthServer(t)
	logs := &testutil.SyncBuffer{}
	d.serveAs(t, "host-a", "h1", remote.HostOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	nc := d.dialAs(t, "alice")
	ctx := ctxT(t, 10*time.Second)

	m := nats.NewMsg("dspgo.call")
	m.Reply = "$KV.dspgo_state.spec.planted"
	m.Header.Set("Dspgo-Command", "describe")
	require.NoError(t, nc.PublishMsg(m))
	// The host takes requests in order: once a later one is answered,
	// the first was handled.
	ping := nats.NewMsg("dspgo.call")
	ping.Header.Set("Dspgo-Command", "ping")
	_, err := nc.RequestMsgWithContext(ctx, ping)
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "dropped a request whose reply subject is not an inbox")

	tools := nats.NewMsg("dspgo.call")
	tools.Header.Set("Dspgo-Command", "ping")
	tools.Header.Set("Dspgo-Tools", "$KV.dspgo_state.spec.planted")
	r, err := nc.RequestMsgWithContext(ctx, tools)
	require.NoError(t, err)
	assert.Equal(t, "invalid_argument", r.Header.Get("Dspgo-Error"), "%s", r.Data)

	for _, cmd := range []string{"shutdown", "reset", "create_program"} {
		b := nats.NewMsg("dspgo.call")
		b.Header.Set("Dspgo-Command", cmd)
		b.Header.Set("Dspgo-Broadcast", "1")
		b.Data = []byte(`{}`)
		r, err := nc.RequestMsgWithContext(ctx, b)
		require.NoError(t, err)
		assert.Equal(t, "invalid_argument", r.Header.Get("Dspgo-Error"), "%s: %s", cmd, r.Data)
		assert.Contains(t, string(r.Data), "cannot be broadcast")
	}

	js, err := jetstream.New(d.dialAs(t, "host-b"))
	require.NoError(t, err)
	kv, err := js.KeyValue(ctx, "dspgo_state")
	require.NoError(t, err)
	_, err = kv.Get(ctx, "spec.planted")
	assert.ErrorIs(t, err, jetstream.ErrKeyNotFound, "the host wrote nothing to the state for the request")
	_, err = kv.Get(ctx, "broadcast.shutdown")
	assert.ErrorIs(t, err, jetstream.ErrKeyNotFound)
}

// TestCallerRecordsABroadcastForLaterHosts: with no host serving, a
// caller records configure_lm in the state bucket (which a host made
// earlier), and the next host applies it; a record naming an endpoint
// outside the host's allowlist is refused at start, logged, and does not
// keep the host from serving.
func TestCallerRecordsABroadcastForLaterHosts(t *testing.T) {
	d := startAuthServer(t)
	ctx := ctxT(t, 30*time.Second)
	first, _ := d.serveAs(t, "host-a", "h1", remote.HostOptions{})
	require.NoError(t, first.Close(ctx))

	a := d.callerAs(t, "alice")
	require.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"recorded"}`)}))
	second, _ := d.serveAs(t, "host-b", "h2", remote.HostOptions{})
	resp, err := a.Call(ctx, adapter.Request{Command: "get_stats"})
	require.NoError(t, err)
	assert.Contains(t, string(resp.Result), `"recorded"`)
	require.NoError(t, second.Close(ctx))

	evil := newLMRecorder(t)
	b := d.callerAs(t, "bob")
	require.NoError(t, b.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"evil","base_url":"` + evil.baseURL() + `"}`)}))
	logs := &testutil.SyncBuffer{}
	d.serveAs(t, "host-a", "h3", remote.HostOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	resp, err = b.Call(ctx, adapter.Request{Command: "get_stats"})
	require.NoError(t, err, "the refused record did not keep the host from serving")
	assert.NotContains(t, string(resp.Result), `"evil"`)
	assert.Contains(t, logs.String(), "refused a configure_lm")
	assert.Contains(t, logs.String(), "a recorded broadcast was refused; skipped")
}

// TestCallerCannotEraseOrFloodTheState: the one record a caller may write
// to the shared state cannot carry a rollup (which would erase every
// record: the specs, the named LMs), and named LMs past what a worker
// keeps do not keep a new host from serving: the host skips them,
// without asking its workers, and says so once.
func TestCallerCannotEraseOrFloodTheState(t *testing.T) {
	d := startAuthServer(t)
	ctx := ctxT(t, 60*time.Second)
	first, _ := d.serveAs(t, "host-a", "h1", remote.HostOptions{})
	a := d.callerAs(t, "alice")
	require.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"kept","name":"kept"}`)}))
	require.NoError(t, first.Close(ctx))

	nc := d.dialAs(t, "bob")
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	rollup := nats.NewMsg("$KV.dspgo_state.broadcast.configure_lm")
	rollup.Header.Set("Nats-Rollup", "all")
	rollup.Data = []byte(`{"provider":"dummy"}`)
	_, err = js.PublishMsg(ctx, rollup)
	require.Error(t, err, "the bucket refuses rollups")

	const extra = 5
	for i := range program.MaxNamedLMs + extra {
		name := fmt.Sprintf("n%d", i)
		_, err := js.Publish(ctx, "$KV.dspgo_state.broadcast.configure_lm."+name, []byte(`{"provider":"dummy","name":"`+name+`"}`))
		require.NoError(t, err)
	}
	logs := &testutil.SyncBuffer{}
	d.serveAs(t, "host-b", "h2", remote.HostOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	resp, err := a.Call(ctx, adapter.Request{Command: "get_stats"})
	require.NoError(t, err, "the host serves")
	var stats struct {
		LMs map[string]json.RawMessage `json:"lms"`
	}
	require.NoError(t, json.Unmarshal(resp.Result, &stats))
	assert.Len(t, stats.LMs, program.MaxNamedLMs)
	assert.Contains(t, stats.LMs, "kept", "the record from before the attempted rollup")
	assert.Equal(t, 1, strings.Count(logs.String(), "the shared state holds more named LMs than a worker keeps; skipped"), logs.String())
	assert.Contains(t, logs.String(), fmt.Sprintf("skipped=%d", extra+1))

	err = a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","name":"one_more"}`)})
	assert.Equal(t, adapter.CodeResourceExhausted, adapter.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, fmt.Sprintf(`a worker keeps at most %d named LM configurations: "one_more" would be one more`, program.MaxNamedLMs))
}

// TestRefusedPublishFailsTheCall: a call published where its user may not
// publish (here a caller whose permissions lack "dspgo.call") fails at
// once with CodeFailedPrecondition naming the subject, instead of waiting
// for a reply the server dropped; a second adapter on the same connection
// learns of its own refusals too, and the connection's own error handler
// still gets every error.
func TestRefusedPublishFailsTheCall(t *testing.T) {
	url, password := startServerWith(t, remote.RoleCaller, func(p *server.Permissions) { p.Publish.Deny = []string{"dspgo.call"} })
	hostConn, err := nats.Connect(url, nats.UserInfo("host", password))
	require.NoError(t, err)
	t.Cleanup(hostConn.Close)
	h, err := remote.Serve(ctxT(t, 30*time.Second), hostConn, mock.New(mock.Options{}), remote.HostOptions{ID: "h1", Heartbeat: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	errs := make(chan error, 64)
	nc, err := nats.Connect(url, nats.UserInfo("carol", password), nats.CustomInboxPrefix(remote.InboxPrefix("carol")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	// A heartbeat of an hour: without the refusal, the call would wait
	// for its context.
	open := func() *remote.Adapter {
		a, err := remote.New(context.Background(), remote.Options{Conn: nc, Heartbeat: time.Hour})
		require.NoError(t, err)
		t.Cleanup(func() { _ = a.Close(context.Background()) })
		return a
	}
	first, second := open(), open()
	for _, a := range []*remote.Adapter{first, second, first} {
		ctx := ctxT(t, 20*time.Second)
		start := time.Now()
		_, err := a.Call(ctx, adapter.Request{Command: "ping"})
		require.Error(t, err)
		assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
		assert.Contains(t, err.Error(), `publish to "dspgo.call"`)
		assert.Less(t, time.Since(start), 10*time.Second, "the refusal ended the call")
	}
	require.NoError(t, second.Close(context.Background()))
	_, err = first.Call(ctxT(t, 20*time.Second), adapter.Request{Command: "ping"})
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
	testutil.WaitFor(t, "the connection's handler got the refusals", func() bool {
		for {
			select {
			case err := <-errs:
				if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `Publish to "dspgo.call"`) {
					return true
				}
			default:
				return false
			}
		}
	})
}

// TestRefusedSubscriptionFailsNew: New fails at once, naming the
// subject, when the server refuses the caller's subscriptions: its inbox
// when the connection does not use its user's inbox prefix, and the
// announcements when the adapter's prefix is not the one the user may
// read.
func TestRefusedSubscriptionFailsNew(t *testing.T) {
	d := startAuthServer(t)
	noPrefix, err := nats.Connect(d.srv.ClientURL(), nats.UserInfo("alice", d.passwords["alice"]), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	require.NoError(t, err)
	t.Cleanup(noPrefix.Close)
	for _, tc := range []struct {
		name, want string
		opts       remote.Options
	}{
		{"default inbox prefix", `subscription to "_INBOX.`, remote.Options{Conn: noPrefix}},
		{"another prefix", `subscription to "other.announce"`, remote.Options{Conn: d.dialAs(t, "alice"), Prefix: "other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.opts.Conn.NumSubscriptions()
			a, err := remote.New(ctxT(t, 20*time.Second), tc.opts)
			require.Error(t, err)
			assert.Nil(t, a)
			assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, before, tc.opts.Conn.NumSubscriptions(), "New left no subscription")
		})
	}
	// The same user with its own inbox prefix and the default prefix is
	// let in.
	d.callerAs(t, "alice")
}

// TestSubscriptionRefusedLaterFailsCalls: a subscription the server
// refuses after New (as after a reconnection to a server with other
// permissions) fails every call until the connection reconnects; a
// refused reply subscription also ends the calls waiting, whose replies
// cannot come, and a refused announcements subscription lets them finish.
func TestSubscriptionRefusedLaterFailsCalls(t *testing.T) {
	for _, tc := range []struct {
		name        string
		subject     func(*remote.Adapter) string
		lmDelayMs   int          // the call in flight's LM
		inFlightErr adapter.Code // the call in flight's; CodeOK: it succeeds
	}{
		// Without the refusal, the call would succeed when its LM answers.
		{"replies", remote.ReplySubject, 3000, adapter.CodeFailedPrecondition},
		{"announcements", func(*remote.Adapter) string { return "dspgo.announce" }, 500, adapter.CodeOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startAuthServer(t)
			h, _ := d.serveAs(t, "host-a", "h1", remote.HostOptions{})
			nc := d.dialAs(t, "alice")
			var reconnections atomic.Int32 // the connection's own handler, still called
			nc.SetReconnectHandler(func(*nats.Conn) { reconnections.Add(1) })
			a, err := remote.New(ctxT(t, 20*time.Second), remote.Options{Conn: nc, Heartbeat: time.Hour})
			require.NoError(t, err)
			t.Cleanup(func() { _ = a.Close(context.Background()) })
			ctx := ctxT(t, 30*time.Second)
			c, p := dummyProgram(t, ctx, a, tc.lmDelayMs)
			done := make(chan error, 1)
			go func() { _, err := c.Execute(ctx, p.ID, map[string]any{"q": "x"}); done <- err }()
			require.True(t, wait.Until(ctx, func() bool { return h.Stats().InFlight == 1 }))

			subject := tc.subject(a)
			nc.ErrorHandler()(nc, nil, fmt.Errorf("%w: Permissions Violation for Subscription to %q", nats.ErrPermissionViolation, subject))
			_, err = a.Call(ctx, adapter.Request{Command: "ping"})
			assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
			assert.Contains(t, err.Error(), fmt.Sprintf("subscription to %q", subject))
			err = <-done
			assert.Equal(t, tc.inFlightErr, adapter.CodeOf(err), "%v", err)

			// A reconnection subscribes again: the calls go on.
			nc.ReconnectHandler()(nc)
			_, err = a.Call(ctx, adapter.Request{Command: "ping"})
			assert.NoError(t, err)
			assert.Equal(t, int32(1), reconnections.Load())
		})
	}
}

// startServerWith starts a server with two users, password their
// password: "host", which may do anything, and "carol", with role's
// permissions (remote.Permissions) as edit changes them.
func startServerWith(t *testing.T, role remote.Role, edit func(*server.Permissions)) (url, password string) {
	t.Helper()
	s, _, password := startEditableServer(t, role, edit)
	return s.ClientURL(), password
}

// startEditableServer is startServerWith, returning the server and its
// options, which carolMay changes.
func startEditableServer(t *testing.T, role remote.Role, edit func(*server.Permissions)) (*server.Server, *server.Options, string) {
	t.Helper()
	password := secret(t)
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		Users: serverUsers(t, password, role, edit)}
	s, err := server.NewServer(opts.Clone())
	require.NoError(t, err)
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	require.True(t, s.ReadyForConnections(10*time.Second), "the server started")
	return s, opts, password
}

// serverUsers are startServerWith's users.
func serverUsers(t *testing.T, password string, role remote.Role, edit func(*server.Permissions)) []*server.User {
	t.Helper()
	perms, err := embedded.Permissions(role, remote.DefaultPrefix, remote.DefaultQueueGroup, "carol")
	require.NoError(t, err)
	edit(perms)
	return []*server.User{{Username: "host", Password: password}, {Username: "carol", Password: password, Permissions: perms}}
}

// carolMay reloads s's configuration, opts, with carol's permissions as
// edit changes them.
func carolMay(t *testing.T, s *server.Server, opts *server.Options, password string, role remote.Role, edit func(*server.Permissions)) {
	t.Helper()
	opts = opts.Clone()
	opts.Users = serverUsers(t, password, role, edit)
	require.NoError(t, s.ReloadOptions(opts))
}

// TestDialLogsTheServersErrors: the errors the server reports on a
// connection after Dial (here a refused subscription) go to
// DialOptions.Logger, not to stderr as nats.go's default does.
func TestDialLogsTheServersErrors(t *testing.T) {
	d := startAuthServer(t)
	logs := &testutil.SyncBuffer{}
	opts := d.dialOptions("alice")
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	nc, err := remote.Dial(ctxT(t, 10*time.Second), opts)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	_, err = nc.SubscribeSync(remote.InboxPrefix("bob") + ".>")
	require.NoError(t, err)
	testutil.WaitFor(t, "the refusal was logged", func() bool {
		return strings.Contains(logs.String(), `level=WARN msg="NATS connection error"`) &&
			strings.Contains(logs.String(), `Permissions Violation for Subscription to \"_INBOX.bob.>\"`)
	})
	assert.NotContains(t, logs.String(), d.passwords["alice"])
}

// TestServeAsCallerIsRefused: a host connected as a caller's user fails
// to serve with CodeFailedPrecondition once the server refuses what a
// host does that a caller may not (here its first request to the shared
// state), rather than retrying until its context ends.
func TestServeAsCallerIsRefused(t *testing.T) {
	d := startAuthServer(t)
	m := mock.New(mock.Options{})
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	h, err := remote.Serve(ctxT(t, 30*time.Second), d.dialAs(t, "alice"), m, remote.HostOptions{ID: "h1"})
	require.Error(t, err)
	assert.Nil(t, h)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), `refused to let this connection publish to "$JS.API.`)
}

// TestServeRefusedASubscription: a host whose user may not subscribe to
// one of the host's subjects fails to serve with CodeFailedPrecondition
// naming it, instead of serving deaf to it.
func TestServeRefusedASubscription(t *testing.T) {
	for _, subject := range []string{"dspgo.discover", "dspgo.host.h1.cancel", "dspgo.call"} {
		t.Run(subject, func(t *testing.T) {
			url, password := startServerWith(t, remote.RoleHost, func(p *server.Permissions) { p.Subscribe.Deny = []string{subject} })
			nc, err := nats.Connect(url, nats.UserInfo("carol", password), nats.CustomInboxPrefix(remote.InboxPrefix("carol")),
				nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
			require.NoError(t, err)
			t.Cleanup(nc.Close)
			m := mock.New(mock.Options{})
			t.Cleanup(func() { _ = m.Close(context.Background()) })
			h, err := remote.Serve(ctxT(t, 30*time.Second), nc, m, remote.HostOptions{ID: "h1"})
			require.Error(t, err)
			assert.Nil(t, h)
			assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
			assert.Contains(t, err.Error(), fmt.Sprintf("subscription to %q", subject))
		})
	}
}

// TestRefusalFixedMeanwhile: a refusal of an earlier adapter on the same
// connection, which the connection still reports as its last error, does
// not fail an adapter opened after the permissions were fixed.
func TestRefusalFixedMeanwhile(t *testing.T) {
	deny := func(p *server.Permissions) { p.Subscribe.Deny = []string{"dspgo.announce"} }
	s, opts, password := startEditableServer(t, remote.RoleCaller, deny)
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("carol", password), nats.CustomInboxPrefix(remote.InboxPrefix("carol")),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	_, err = remote.New(ctxT(t, 10*time.Second), remote.Options{Conn: nc})
	require.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
	require.ErrorContains(t, nc.LastError(), `Subscription to "dspgo.announce"`)

	carolMay(t, s, opts, password, remote.RoleCaller, func(*server.Permissions) {})
	a, err := remote.New(ctxT(t, 10*time.Second), remote.Options{Conn: nc})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	require.ErrorContains(t, nc.LastError(), `Subscription to "dspgo.announce"`, "the old refusal is still the connection's last error")
}

// TestBroadcastRefusedByTheStateFails: a caller's broadcast recorded in
// the shared state (no host serving) that the server does not let it
// write fails with CodeFailedPrecondition after one attempt, not when
// its context ends.
func TestBroadcastRefusedByTheStateFails(t *testing.T) {
	url, password := startServerWith(t, remote.RoleCaller, func(p *server.Permissions) { p.Publish.Deny = []string{"$JS.API.>"} })
	nc, err := nats.Connect(url, nats.UserInfo("carol", password), nats.CustomInboxPrefix(remote.InboxPrefix("carol")),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	a, err := remote.New(ctxT(t, 10*time.Second), remote.Options{Conn: nc})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	err = a.Broadcast(ctxT(t, time.Minute), adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy"}`)})
	require.Error(t, err)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), `refused to let this connection publish to "$JS.API.`)
}
