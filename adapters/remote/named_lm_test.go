package remote_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/internal/testutil"
)

// hostLMs reads the LM configurations a host's own mock has.
func hostLMs(t *testing.T, m *mock.Adapter) (string, map[string]string) {
	t.Helper()
	resp, err := m.Call(t.Context(), adapter.Request{Command: "get_stats"})
	require.NoError(t, err)
	var stats struct {
		LM  struct{ Model string }            `json:"lm"`
		LMs map[string]struct{ Model string } `json:"lms"`
	}
	require.NoError(t, json.Unmarshal(resp.Result, &stats))
	names := map[string]string{}
	for name, lm := range stats.LMs {
		names[name] = lm.Model
	}
	return stats.LM.Model, names
}

// TestNamedLMsInTheSharedState: each named LM configuration has its own
// key in the shared state, beside the default one's, whether a host or the
// adapter wrote it; every host, including one that joins later, applies
// them all; a record whose name is not its key's, or a name that cannot be
// a key, is refused.
func TestNamedLMsInTheSharedState(t *testing.T) {
	s := startServer(t)
	a := newRemote(t, s.ClientURL(), remote.Options{})
	ctx := ctxT(t, 30*time.Second)
	configure := func(args string) error {
		return a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(args)})
	}

	// No host serves: the adapter writes the records itself.
	require.NoError(t, configure(`{"provider":"dummy","model":"default-1"}`))
	require.NoError(t, configure(`{"provider":"dummy","model":"alpha-1","name":"alpha"}`))
	for _, args := range []string{`{"provider":"dummy","name":"a.b"}`, `{"provider":"dummy","name":"a b"}`, `{"provider":"dummy","name":3}`} {
		err := configure(args)
		assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%s: %v", args, err)
	}

	_, first := serveMock(t, s.ClientURL(), remote.HostOptions{ID: "first"})
	def, names := hostLMs(t, first)
	assert.Equal(t, "default-1", def)
	assert.Equal(t, map[string]string{"alpha": "alpha-1"}, names, "the host replayed every name")

	// A host serves: it applies and records them.
	require.NoError(t, configure(`{"provider":"dummy","model":"beta-1","name":"beta"}`))
	require.NoError(t, configure(`{"provider":"dummy","model":"alpha-2","name":"alpha"}`))
	def, names = hostLMs(t, first)
	assert.Equal(t, "default-1", def, "a named LM leaves the default alone")
	assert.Equal(t, map[string]string{"alpha": "alpha-2", "beta": "beta-1"}, names)

	js, err := jetstream.New(connect(t, s.ClientURL()))
	require.NoError(t, err)
	kv, err := js.KeyValue(ctx, "dspgo_state")
	require.NoError(t, err)
	keys, err := kv.Keys(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"broadcast.configure_lm", "broadcast.configure_lm.alpha", "broadcast.configure_lm.beta"}, keys)

	// A record under one name's key holding another name is refused.
	_, err = kv.Put(ctx, "broadcast.configure_lm.gamma", []byte(`{"provider":"dummy","name":"delta","model":"forged"}`))
	require.NoError(t, err)

	_, late := serveMock(t, s.ClientURL(), remote.HostOptions{ID: "late"})
	def, names = hostLMs(t, late)
	assert.Equal(t, "default-1", def)
	assert.Equal(t, map[string]string{"alpha": "alpha-2", "beta": "beta-1"}, names, "the late host has every name, and no forged one")

	// Executions choose them through any host.
	execute := func(lm string) error {
		args := `{"spec":{"signature":{"inputs":[{"name":"q"}],"outputs":[{"name":"a"}]}},"inputs":{"q":"?"},"lm":"` + lm + `"}`
		_, err := a.Call(ctx, adapter.Request{Command: "execute_program", Args: json.RawMessage(args)})
		return err
	}
	for range 4 {
		require.NoError(t, execute("beta"))
	}
	err = execute("delta")
	assert.Equal(t, adapter.CodeNotFound, adapter.CodeOf(err), "%v", err)
	assert.ErrorContains(t, err, `LM "delta" is not configured`)
}

// TestCallerRecordsANamedLMForLaterHosts: a caller in its role may record
// a named LM configuration while no host serves (its key, beside the
// default one's), and the next host applies it; it still may write no
// other key.
func TestCallerRecordsANamedLMForLaterHosts(t *testing.T) {
	d := startAuthServer(t)
	ctx := ctxT(t, 30*time.Second)
	first, _ := d.serveAs(t, "host-a", "h1", remote.HostOptions{}) // a host creates the bucket: a caller cannot
	require.NoError(t, first.Close(ctx))
	a := d.callerAs(t, "alice")
	require.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","name":"fast","model":"recorded"}`)}))
	d.attackerAs(t, "bob").cannotPublish(t, "a key below a named LM's", "$KV.dspgo_state.broadcast.configure_lm.fast.x", []byte(`{}`))

	_, m := d.serveAs(t, "host-b", "h2", remote.HostOptions{})
	_, names := hostLMs(t, m)
	assert.Equal(t, map[string]string{"fast": "recorded"}, names)
}

// TestADeletedBroadcastRecordIsWrittenAgain: a caller may write the
// broadcasts' records, and so a delete marker of one (the bucket refuses
// rollups and purges only). A host that applied the record writes it
// again, so a host that joins later still gets it, as every running host
// has it.
func TestADeletedBroadcastRecordIsWrittenAgain(t *testing.T) {
	s := startServer(t)
	a := newRemote(t, s.ClientURL(), remote.Options{})
	ctx := ctxT(t, 30*time.Second)
	_, first := serveMock(t, s.ClientURL(), remote.HostOptions{ID: "first"})
	for _, args := range []string{`{"provider":"dummy","model":"default-1"}`, `{"provider":"dummy","model":"alpha-1","name":"alpha"}`} {
		require.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(args)}))
	}

	js, err := jetstream.New(connect(t, s.ClientURL()))
	require.NoError(t, err)
	kv, err := js.KeyValue(ctx, "dspgo_state")
	require.NoError(t, err)
	for _, key := range []string{"broadcast.configure_lm", "broadcast.configure_lm.alpha"} {
		require.NoError(t, kv.Delete(ctx, key), "a delete marker, as a caller may publish one")
	}
	testutil.WaitFor(t, "the records are back", func() bool {
		keys, err := kv.Keys(ctx)
		return err == nil && len(keys) == 2
	})
	for key, model := range map[string]string{"broadcast.configure_lm": "default-1", "broadcast.configure_lm.alpha": "alpha-1"} {
		e, err := kv.Get(ctx, key)
		require.NoError(t, err)
		assert.Contains(t, string(e.Value()), `"model":"`+model+`"`)
	}

	_, late := serveMock(t, s.ClientURL(), remote.HostOptions{ID: "late"})
	for _, m := range []*mock.Adapter{first, late} {
		def, names := hostLMs(t, m)
		assert.Equal(t, "default-1", def)
		assert.Equal(t, map[string]string{"alpha": "alpha-1"}, names)
	}
}
