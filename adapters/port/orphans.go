package port

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/dspgo/dspgo/internal/dspgoenv"
	"github.com/dspgo/dspgo/internal/proc"
)

// run is this host process's record of the workers it started, kept in a
// state file so that the next host can reap them if this one dies without
// stopping them (SIGKILL, power loss of a container's init…). The
// parent-death signal already ends direct workers; the file catches what
// it cannot: a worker that escaped its process group, or a worker whose
// signal was lost. The run's id travels to each worker in the variable
// DSPGO_RUN_ID (dspgoenv.RunID, which configuration loading ignores) and on
// its command line: with them a worker left behind by a dead host is told
// from any other process.
type run struct {
	id   string
	dir  string // the state directory; "" when none could be made
	mu   sync.Mutex
	pids []int
}

var (
	thisRun     *run
	thisRunOnce sync.Once
)

// state is the content of a run's state file.
type state struct {
	HostPID   int    `json:"host_pid"`
	HostStart uint64 `json:"host_start"` // the host's start time in clock ticks since boot, against pid reuse
	Workers   []int  `json:"workers"`
}

// currentRun returns this process's run, creating its id once and
// reaping the workers of dead runs on first use.
func currentRun() *run {
	thisRunOnce.Do(func() {
		var b [8]byte
		_, _ = rand.Read(b[:])
		thisRun = &run{id: hex.EncodeToString(b[:]), dir: stateDir(os.Getenv)}
		if thisRun.dir != "" {
			_, _ = reapOrphans(thisRun.dir)
		}
	})
	return thisRun
}

// stateDir returns the per-user directory of run state files:
// $XDG_RUNTIME_DIR/dspgo/runs, or the user cache directory's dspgo/runs;
// it is created 0700. A directory of their own: reapOrphans removes the
// files there, and $XDG_RUNTIME_DIR/dspgo holds other files (an embedded
// NATS server's local credentials). getenv reads the environment. It
// returns "" when neither can be made.
func stateDir(getenv func(string) string) string {
	var dir string
	if x := getenv("XDG_RUNTIME_DIR"); x != "" {
		dir = filepath.Join(x, "dspgo", "runs")
	} else if c, err := os.UserCacheDir(); err == nil {
		dir = filepath.Join(c, "dspgo", "runs")
	} else {
		return ""
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	return dir
}

// add records a worker's pid; remove forgets it once it is reaped.
func (r *run) add(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pids = append(r.pids, pid)
	r.saveLocked()
}

func (r *run) remove(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pids = slices.DeleteFunc(r.pids, func(p int) bool { return p == pid })
	r.saveLocked()
}

// saveLocked writes the state file, or removes it when no worker is left.
// Failures are ignored: the file is a safety net, never a condition.
func (r *run) saveLocked() {
	if r.dir == "" {
		return
	}
	path := filepath.Join(r.dir, r.id+".json")
	if len(r.pids) == 0 {
		_ = os.Remove(path)
		return
	}
	start, _ := proc.StartTime(os.Getpid())
	data, _ := json.Marshal(state{HostPID: os.Getpid(), HostStart: start, Workers: r.pids})
	tmp := path + ".tmp"
	if os.WriteFile(tmp, data, 0o600) == nil {
		_ = os.Rename(tmp, path)
	}
}

// reapOrphans kills the workers of dead runs recorded in dir and removes
// their state files; it returns the pids it killed. A run whose host is
// alive (same pid and start time) is left alone, and a process is killed
// only when its command line runs dspgo_worker and its environment carries
// that run's id: never on a pid alone.
func reapOrphans(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var killed []int
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !isRunID(id) {
			continue // not a run's state file: never touched
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var st state
		if json.Unmarshal(data, &st) != nil {
			_ = os.Remove(path) // unreadable: nothing can be verified from it
			continue
		}
		if start, err := proc.StartTime(st.HostPID); err == nil && start == st.HostStart {
			continue // the host lives: its workers are its own
		}
		for _, pid := range st.Workers {
			if isWorkerOf(pid, id) {
				_ = syscall.Kill(-pid, syscall.SIGKILL) // its group, if it leads one
				_ = syscall.Kill(pid, syscall.SIGKILL)
				killed = append(killed, pid)
			}
		}
		_ = os.Remove(path)
	}
	return killed, nil
}

// isRunID reports whether s is a run's id: 16 lower-case hex digits.
func isRunID(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// isWorkerOf reports whether pid is a dspgo worker of the run: its
// command line runs dspgo_worker and its environment holds the run id.
func isWorkerOf(pid int, runID string) bool {
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
	if err != nil || !bytes.Contains(cmdline, []byte("dspgo_worker")) {
		return false
	}
	environ, err := os.ReadFile(filepath.Join(proc, "environ"))
	if err != nil {
		return false
	}
	want := dspgoenv.RunID + "=" + runID
	return slices.ContainsFunc(bytes.Split(environ, []byte{0}), func(kv []byte) bool { return string(kv) == want })
}
