package port

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dspgo/dspgo/python"
)

// ResolvePython returns the real path of an interpreter: the executable
// that `name -c 'import sys; print(sys.executable)'` reports. A bare name
// is looked up on PATH; an absolute path is returned as given, unchecked.
// Resolving once spares every later start the cost of a shim (pyenv's
// python3 is a shell script that adds tens of milliseconds).
func ResolvePython(ctx context.Context, name string) (string, error) {
	if filepath.IsAbs(name) {
		return name, nil
	}
	path, _, err := CheckPython(ctx, name)
	return path, err
}

// CheckPython runs an interpreter, a bare name looked up on PATH or a
// path, and returns the executable it reports and its version; an error
// when it cannot be found or run, or is older than Python 3.9.
func CheckPython(ctx context.Context, name string) (path, version string, err error) {
	path = name
	if !filepath.IsAbs(name) {
		if path, err = exec.LookPath(name); err != nil {
			return "", "", fmt.Errorf("the Python interpreter %q was not found on PATH: install Python 3.9 or newer, set the interpreter option, or use the mock adapter", name)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-c", "import sys; print(sys.executable); print(sys.version.split()[0]); sys.exit(0 if sys.version_info >= (3, 9) else 3)")
	cmd.WaitDelay = time.Second // the pipes close even if a grandchild holds them
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	exe, version, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return "", "", fmt.Errorf("%s did not answer within 30s", path)
	case errors.As(err, &exit) && exit.ExitCode() == 3:
		return "", "", fmt.Errorf("%s is Python %s, older than 3.9, which dspgo's worker needs", path, version)
	case err != nil:
		if last := lastLine(stderr.String()); last != "" {
			err = fmt.Errorf("%w: %s", err, last)
		}
		return "", "", fmt.Errorf("running %s: %w", path, err)
	}
	if exe = strings.TrimSpace(exe); exe == "" {
		exe = path
	}
	return exe, strings.TrimSpace(version), nil
}

// lastLine is the last non-empty line of text.
func lastLine(text string) string {
	text = strings.TrimSpace(text)
	return strings.TrimSpace(text[strings.LastIndexByte(text, '\n')+1:])
}

// embeddedWorkerDir writes the worker files embedded in this binary to a
// content-addressed directory under cacheDir (empty means
// os.UserCacheDir()/dspgo) and returns the directory to put on
// PYTHONPATH. The directory is created 0700; an existing one is used only
// when its files match the embedded ones byte for byte, and is rewritten
// otherwise.
func embeddedWorkerDir(cacheDir string) (string, error) {
	files, sum, err := embeddedFiles()
	if err != nil {
		return "", err
	}
	if cacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory for the worker files (set CacheDir or WorkerDir): %w", err)
		}
		cacheDir = filepath.Join(base, "dspgo")
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return "", err
	}
	dir := filepath.Join(cacheDir, "worker-"+sum[:16])
	if matches(dir, files) {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // in use: not stale for other versions' pruning
		return dir, nil
	}
	pruneStale(cacheDir, dir)
	tmp, err := os.MkdirTemp(cacheDir, ".worker-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for name, data := range files {
		path := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return "", err
		}
	}
	_ = os.RemoveAll(dir) // a stale or tampered copy
	if err := os.Rename(tmp, dir); err != nil && !matches(dir, files) {
		return "", fmt.Errorf("installing the worker files in %s: %w", dir, err)
	}
	return dir, nil
}

// PrepareWorkerDir writes the worker files embedded in this binary to a
// content-addressed directory under cacheDir (empty means
// os.UserCacheDir()/dspgo), private (0700) and verified byte for byte,
// and returns the directory to put on PYTHONPATH, with the worker's
// bytecode compiled once by python, in checked-hash mode (Python checks it
// against the source at each import): workers then start faster and use
// about a megabyte less each. Compilation is an optimisation; its failure
// is ignored.
func PrepareWorkerDir(ctx context.Context, python, cacheDir string) (string, error) {
	dir, err := embeddedWorkerDir(cacheDir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "dspgo_worker", "__pycache__")); err == nil {
		return dir, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", filepath.Join(dir, "dspgo_worker"))
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	_ = cmd.Run()
	return dir, nil
}

// staleAfter is how long an older version's worker directory is kept
// after its last use, for binaries of that version still running.
const staleAfter = 7 * 24 * time.Hour

// pruneStale removes the worker directories of other versions that have
// not been touched for staleAfter. Failures are ignored.
func pruneStale(cacheDir, keep string) {
	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		path := filepath.Join(cacheDir, e.Name())
		if !e.IsDir() || path == keep || !strings.HasPrefix(e.Name(), "worker-") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleAfter {
			_ = os.RemoveAll(path)
		}
	}
}

// embeddedFiles returns the embedded worker files by relative path and the
// hex SHA-256 over their names and contents.
func embeddedFiles() (map[string][]byte, string, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(python.Worker, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := python.Worker.ReadFile(path)
		files[path] = data
		return err
	})
	if err != nil {
		return nil, "", err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(files[name]))
		h.Write(files[name])
	}
	return files, hex.EncodeToString(h.Sum(nil)), nil
}

// matches reports whether dir holds exactly the files, and is private.
func matches(dir string, files map[string][]byte) bool {
	info, err := os.Stat(dir)
	if err != nil || !info.IsDir() || info.Mode().Perm()&0o077 != 0 {
		return false
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, data) {
			return false
		}
	}
	return true
}
