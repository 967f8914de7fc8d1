package registry_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/registry"
)

// TestLocalProgramLinksNoNATS: a program that opens mock, port or pool
// through config and the registry (testdata/local) links no NATS package;
// neither does the registry itself. The remote adapter comes with the
// package that registers it.
func TestLocalProgramLinksNoNATS(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	for _, pkg := range []string{"./testdata/local", "github.com/dspgo/dspgo/registry"} {
		out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", pkg).Output()
		require.NoError(t, err, "go list -deps %s", pkg)
		deps := strings.Fields(string(out))
		require.Contains(t, deps, "github.com/dspgo/dspgo/registry", "go list listed the dependencies of %s", pkg)
		for _, dep := range deps {
			assert.False(t, strings.HasPrefix(dep, "github.com/nats-io/") || strings.HasPrefix(dep, "github.com/dspgo/dspgo/adapters/remote"),
				"%s links %s", pkg, dep)
		}
	}
}

// A program that asks for the remote adapter without linking it is told
// how to include it.
func TestUnlinkedRemoteSaysHowToIncludeIt(t *testing.T) {
	r, err := registry.New(registry.Builtin()...)
	require.NoError(t, err)
	cfg, err := config.Load(config.LoadOptions{Environ: noEnv, Dir: t.TempDir(), Set: map[string]any{"adapter": "remote", "remote.url": "nats://127.0.0.1:4222"}})
	require.NoError(t, err, "remote.* keys are configuration whether or not the adapter is linked")
	a, _, err := r.Open(t.Context(), cfg)
	assert.Nil(t, a)
	require.ErrorIs(t, err, registry.ErrUnknownAdapter)
	assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err))
	var e *adapter.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, `adapter "remote" (set by option) is not registered: its package is not linked into this program `+
		`or not in this registry; import _ "github.com/dspgo/dspgo/adapters/remote/remoteconfig" and build the registry from registry.Builtin(); `+
		`known adapters: memory, mock, pool, port`, e.Message)
}

// Register refuses what New would: a factory without Open, a name taken.
func TestRegisterRefusesBadFactories(t *testing.T) {
	assert.PanicsWithError(t, `registry: invalid factory: factory "x" has no Open`, func() { registry.Register(registry.Factory{Name: "x"}) })
	mock := registry.Builtin()[0]
	assert.PanicsWithError(t, `registry: invalid factory: the name "mock" is registered twice`, func() { registry.Register(mock) })
	assert.Len(t, registry.Builtin(), 4, "nothing registered")
}
