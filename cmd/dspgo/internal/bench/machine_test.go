package bench

import (
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReadMachine(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on PATH")
	}
	before := time.Now().UTC()
	m := ReadMachine(t.Context(), python)
	assert.Equal(t, runtime.NumCPU(), m.CPUs)
	assert.Equal(t, runtime.GOMAXPROCS(0), m.GOMAXPROCS)
	assert.Equal(t, runtime.Version(), m.GoVersion)
	assert.Equal(t, runtime.GOOS+"/"+runtime.GOARCH, m.OS)
	assert.Equal(t, python, m.Python)
	assert.Regexp(t, `^3\.\d+\.\d+`, m.PythonVersion)
	assert.WithinDuration(t, before, m.Date, time.Minute)
	assert.Equal(t, time.UTC, m.Date.Location())
	if runtime.GOOS == "linux" {
		assert.NotEmpty(t, m.CPUModel, "/proc/cpuinfo names the model")
		assert.NotEmpty(t, m.Kernel)
		require.Len(t, m.LoadAverage, 3)
		for _, l := range m.LoadAverage {
			assert.GreaterOrEqual(t, l, 0.0)
		}
	}
	// go test binaries carry no version control stamp: the commit, when
	// known, is what git says of this checkout.
	if m.Commit != "" {
		assert.Regexp(t, `^[0-9a-f]{40}$`, m.Commit)
		assert.Equal(t, "git", m.CommitFrom)
	}
}

func TestReadMachineWithoutPython(t *testing.T) {
	m := ReadMachine(t.Context(), "/nonexistent/python")
	assert.Empty(t, m.PythonVersion, "an interpreter that cannot run leaves the version empty")
	assert.Positive(t, m.CPUs)
}

func TestModulePath(t *testing.T) {
	assert.Equal(t, "github.com/dspgo/dspgo", modulePath("../../../../go.mod"))
	assert.Empty(t, modulePath("missing/go.mod"))
}
