package remote_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/remote"
	"github.com/dspgo/dspgo/adapters/remote/embedded"
	"github.com/dspgo/dspgo/internal/wait"
)

// startCluster runs a three-node embedded NATS cluster with JetStream.
func startCluster(t *testing.T) []*embedded.Server {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	// JetStream in a cluster needs every member's routes up front.
	var ports, routes []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ports = append(ports, l.Addr().String())
		routes = append(routes, "nats://"+l.Addr().String())
		require.NoError(t, l.Close())
	}
	nodes := make([]*embedded.Server, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		_, port, _ := net.SplitHostPort(ports[i])
		n, _ := strconv.Atoi(port)
		opts := embedded.Options{Port: -1, StoreDir: t.TempDir(), NoAuth: true, ServerName: fmt.Sprintf("n%d", i+1),
			Cluster: embedded.Cluster{Name: "dspgo-test", Port: n, Routes: routes}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := embedded.Start(ctx, opts)
			assert.NoError(t, err)
			nodes[i] = s
		}()
	}
	wg.Wait()
	for _, s := range nodes {
		if s != nil {
			t.Cleanup(s.Shutdown)
		}
	}
	require.False(t, t.Failed())
	for _, s := range nodes {
		require.NoError(t, s.WaitClusterReady(ctx, 2))
	}
	return nodes
}

// urls lists the nodes' client URLs, the given one first.
func urls(nodes []*embedded.Server, first int) string {
	list := []string{nodes[first].ClientURL()}
	for i, s := range nodes {
		if i != first {
			list = append(list, s.ClientURL())
		}
	}
	return strings.Join(list, ",")
}

// TestClusterSurvivesNodeLoss runs two hosts and a caller on a
// three-node cluster, with the shared state replicated three times, and
// shuts down the node that the caller and one host are connected to
// while calls go on. Calls in flight on that node may fail with
// CodeUnavailable; none hangs; calls succeed again once the clients have
// reconnected; the state written before the loss is intact and a
// broadcast after it reaches a host that joins later.
func TestClusterSurvivesNodeLoss(t *testing.T) {
	nodes := startCluster(t)
	ctx := ctxT(t, 90*time.Second)
	h1, _ := serveMock(t, urls(nodes, 0), remote.HostOptions{ID: "h1", Replicas: 3})
	serveMock(t, urls(nodes, 1), remote.HostOptions{ID: "h2", Replicas: 3})
	a := newRemote(t, urls(nodes, 0), remote.Options{})
	// The nodes tell each other of new subscriptions a moment later: until
	// the caller hears both hosts, a call may find no host on its node, or
	// a host's replies may find no caller on the host's (seen under load).
	require.True(t, wait.Until(ctx, func() bool { return len(a.Hosts()) == 2 }), "the caller hears both hosts")
	require.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"before-loss"}`)}))
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("q -> a")})
	require.NoError(t, err)

	var ok, unavailable atomic.Int64
	var lost atomic.Bool
	var okAfter atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				callCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
				after := lost.Load()
				_, err := c.Execute(callCtx, p.ID, map[string]any{"q": fmt.Sprint(i, "/", j)})
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
					if after {
						okAfter.Add(1)
					}
				case adapter.CodeOf(err) == adapter.CodeUnavailable:
					unavailable.Add(1)
				default:
					t.Errorf("caller %d: %v", i, err)
				}
			}
		}()
	}
	require.True(t, wait.Until(ctx, func() bool { return ok.Load() >= 200 }))
	nodes[0].Shutdown()
	lost.Store(true)
	require.True(t, wait.Until(ctx, func() bool { return okAfter.Load() >= 500 }), "calls go on after the node loss")
	close(stop)
	wg.Wait()
	t.Logf("%d calls succeeded (%d after the loss), %d CodeUnavailable", ok.Load(), okAfter.Load(), unavailable.Load())

	// The shared state survived: a broadcast works with two nodes of
	// three, and a host joining now replays it and finds the program.
	require.NoError(t, a.Broadcast(ctx, adapter.Request{Command: "configure_lm", Args: json.RawMessage(`{"provider":"dummy","model":"after-loss"}`)}))
	require.NoError(t, h1.Close(ctx))
	h3, _ := serveMock(t, urls(nodes, 2), remote.HostOptions{ID: "h3", Replicas: 3})
	args, _ := json.Marshal(map[string]any{"program_id": p.ID, "spec_hash": p.Hash, "inputs": map[string]any{"q": "x"}})
	seen := map[string]bool{}
	require.True(t, wait.Until(ctx, func() bool {
		resp, err := a.Call(ctx, adapter.Request{Command: "execute_program", Args: args})
		require.NoError(t, err)
		seen[host(resp.Worker)] = true
		return seen[h3.ID()]
	}), "the late host serves the program from the replicated state")
	resp, err := a.Call(ctx, adapter.Request{Command: "get_stats", Session: "stats"})
	require.NoError(t, err)
	var stats struct{ LM struct{ Model string } }
	require.NoError(t, json.Unmarshal(resp.Result, &stats))
	assert.Equal(t, "after-loss", stats.LM.Model)
}
