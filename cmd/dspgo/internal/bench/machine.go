package bench

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Machine describes where and from what a report was measured, so that two
// reports can be compared knowing what differed besides the code.
type Machine struct {
	// CPUModel is the processor's model name ("model name" of
	// /proc/cpuinfo); empty when it cannot be read.
	CPUModel string `json:"cpu_model"`
	// CPUs is the number of logical CPUs the process may use.
	CPUs int `json:"cpus"`
	// GOMAXPROCS is the Go scheduler's processor count.
	GOMAXPROCS int `json:"gomaxprocs"`
	// GoVersion is the Go toolchain the binary was built with.
	GoVersion string `json:"go_version"`
	// Python is the resolved interpreter's path; PythonVersion its
	// sys.version's first word (empty when it cannot be run).
	Python        string `json:"python"`
	PythonVersion string `json:"python_version"`
	// OS is GOOS/GOARCH; Kernel the kernel's release
	// (/proc/sys/kernel/osrelease), empty when unknown.
	OS     string `json:"os"`
	Kernel string `json:"kernel"`
	// LoadAverage is the 1, 5 and 15 minute load averages when the run
	// started (/proc/loadavg); nil when unknown. A load above CPUs means
	// other work shared the machine.
	LoadAverage []float64 `json:"load_average"`
	// Commit is dspgo's commit: the binary's version control stamp, else
	// what git says of the working directory; empty when neither knows.
	// Modified reports uncommitted changes; CommitFrom says which source
	// answered ("build info" or "git").
	Commit     string `json:"commit,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	CommitFrom string `json:"commit_from,omitempty"`
	// Date is when the run started, in UTC.
	Date time.Time `json:"date"`
}

// ReadMachine describes this machine, python being the resolved
// interpreter; nothing it fails to read is an error, it is left empty.
func ReadMachine(ctx context.Context, python string) Machine {
	m := Machine{
		CPUModel:   cpuModel(),
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		Python:     python,
		OS:         runtime.GOOS + "/" + runtime.GOARCH,
		Date:       time.Now().UTC(),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.LoadAverage = loadAverage()
	if python != "" {
		out, err := exec.CommandContext(ctx, python, "-c", "import sys; print(sys.version.split()[0])").Output()
		if err == nil {
			m.PythonVersion = strings.TrimSpace(string(out))
		}
	}
	m.Commit, m.Modified, m.CommitFrom = commit(ctx)
	return m
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// loadAverage reads the three load averages of /proc/loadavg.
func loadAverage() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	fields := strings.Fields(string(b))
	if len(fields) < 3 {
		return nil
	}
	var out []float64
	for _, f := range fields[:3] {
		x, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil
		}
		out = append(out, x)
	}
	return out
}

// commit reads the binary's version control stamp; `go run` builds carry
// none, so it then asks git about the working directory, when that is a
// checkout of the binary's own module.
func commit(ctx context.Context) (rev string, modified bool, from string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", false, ""
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		return rev, modified, "build info"
	}
	git := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "git", args...).Output()
		return strings.TrimSpace(string(out)), err
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil || modulePath(filepath.Join(top, "go.mod")) != bi.Main.Path {
		return "", false, ""
	}
	if rev, err = git("rev-parse", "HEAD"); err != nil {
		return "", false, ""
	}
	status, err := git("status", "--porcelain", "--untracked-files=no")
	return rev, err == nil && status != "", "git"
}

// modulePath is the module path a go.mod declares, empty when it cannot
// be read.
func modulePath(goMod string) string {
	b, err := os.ReadFile(goMod)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
