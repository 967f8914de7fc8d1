package dspgo_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/internal/testutil"
)

// archModule is the module path.
const archModule = "github.com/dspgo/dspgo"

// archRow is one row of the package table of docs/architecture.md.
type archRow struct {
	line       int
	pkg        string   // the package's path in the module; "" for the root
	deps       []string // "depends on": the module's packages, sorted
	thirdParty []string // "third-party": modules, sorted
}

// archName is how the table writes a package of the module: its path, or
// "dspgo" for the root.
func archName(pkg string) string {
	if pkg == "" {
		return "dspgo"
	}
	return pkg
}

// archTable parses the package table of docs/architecture.md: the rows
// after the header "| path | role | depends on | third-party |", in order.
// A path is written `adapters/pool/` (or `dspgo` (root) for the root); a
// list of names is comma-separated, "—" for none.
func archTable(t *testing.T, path string) []archRow {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var rows []archRow
	in := false
	for i, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "| path | role | depends on | third-party |") {
			in = true
			continue
		}
		if !in || strings.HasPrefix(line, "|---") {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		require.Len(t, cells, 4, "%s:%d: a row has four cells", path, i+1)
		pkg := strings.TrimSuffix(strings.Trim(strings.Fields(cells[0])[0], "`"), "/")
		if pkg == "dspgo" {
			pkg = ""
		}
		rows = append(rows, archRow{line: i + 1, pkg: pkg, deps: archList(cells[2]), thirdParty: archList(cells[3])})
	}
	require.NotEmpty(t, rows, "%s has the package table", path)
	return rows
}

// archList is a cell's comma-separated names, sorted; none for "—".
func archList(cell string) []string {
	cell = strings.TrimSpace(cell)
	if cell == "—" {
		return nil
	}
	var list []string
	for _, s := range strings.Split(cell, ",") {
		list = append(list, strings.TrimSuffix(strings.Trim(strings.TrimSpace(s), "`"), "/"))
	}
	slices.Sort(list)
	return list
}

// goPackage is what go list says of one package of the module.
type goPackage struct {
	deps       []string // the module's packages imported, by name
	thirdParty []string // modules imported from, other than the standard library
}

// modulePackages lists the module's packages with what each imports.
func modulePackages(t *testing.T, root string) map[string]goPackage {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	cmd := exec.CommandContext(t.Context(), goTool, "list", "-deps",
		"-f", "{{.ImportPath}}\t{{with .Module}}{{.Path}}{{end}}\t{{join .Imports \" \"}}", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", out)
	moduleOf := map[string]string{}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		moduleOf[f[0]] = f[1]
		imports[f[0]] = strings.Fields(f[2])
	}
	pkgs := map[string]goPackage{}
	for path, mod := range moduleOf {
		if mod != archModule {
			continue
		}
		var p goPackage
		for _, imp := range imports[path] {
			switch m := moduleOf[imp]; m {
			case archModule:
				p.deps = append(p.deps, archName(strings.TrimPrefix(strings.TrimPrefix(imp, archModule), "/")))
			case "": // the standard library
			default:
				if !slices.Contains(p.thirdParty, m) {
					p.thirdParty = append(p.thirdParty, m)
				}
			}
		}
		slices.Sort(p.deps)
		slices.Sort(p.thirdParty)
		pkgs[strings.TrimPrefix(strings.TrimPrefix(path, archModule), "/")] = p
	}
	return pkgs
}

// TestArchitectureTable: the package table of docs/architecture.md lists
// every package of the module once, with what it really imports (go
// list): the archModule's packages in "depends on", other modules in
// "third-party". Its order is the layering: a package imports only
// packages listed above it, adapters import no other adapter but pool
// the port, and nothing outside cmd/ imports cmd/.
func TestArchitectureTable(t *testing.T) {
	root := testutil.RepoRoot()
	doc := filepath.Join(root, "docs", "architecture.md")
	rows := archTable(t, doc)
	pkgs := modulePackages(t, root)

	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	show := func(list []string) string {
		if len(list) == 0 {
			return "—"
		}
		return strings.Join(list, ", ")
	}
	above := map[string]bool{}
	listed := map[string]bool{}
	for _, r := range rows {
		p, ok := pkgs[r.pkg]
		switch {
		case listed[r.pkg]:
			report("line %d: %s is listed twice", r.line, archName(r.pkg))
		case !ok:
			report("line %d: %s is not a package of the module (go list ./...)", r.line, archName(r.pkg))
		}
		listed[r.pkg] = true
		if !ok {
			continue
		}
		if !slices.Equal(r.deps, p.deps) {
			report("line %d: %s depends on\n\ttable: %s\n\tcode:  %s", r.line, archName(r.pkg), show(r.deps), show(p.deps))
		}
		if !slices.Equal(r.thirdParty, p.thirdParty) {
			report("line %d: %s third-party\n\ttable: %s\n\tcode:  %s", r.line, archName(r.pkg), show(r.thirdParty), show(p.thirdParty))
		}
		for _, d := range p.deps {
			switch {
			case !above[d]:
				report("line %d: %s imports %s, which is not listed above it", r.line, archName(r.pkg), d)
			case strings.HasPrefix(d, "cmd/") && !strings.HasPrefix(r.pkg, "cmd/"):
				report("line %d: %s imports %s: nothing imports cmd/", r.line, archName(r.pkg), d)
			case isAdapter(r.pkg) && isAdapter(d) && !(r.pkg == "adapters/pool" && d == "adapters/port"):
				report("line %d: adapter %s imports adapter %s: adapters import no other adapter but pool the port", r.line, archName(r.pkg), d)
			}
		}
		above[archName(r.pkg)] = true
	}
	var missing []string
	for pkg := range pkgs {
		if !listed[pkg] {
			missing = append(missing, archName(pkg))
		}
	}
	slices.Sort(missing)
	for _, pkg := range missing {
		p := pkgs[pkg]
		report("%s is missing from the table; its row would be:\n\t| `%s/` | … | %s | %s |", pkg, pkg, show(p.deps), show(p.thirdParty))
	}
	if len(problems) > 0 {
		t.Errorf("docs/architecture.md's package table does not match the code:\n%s", strings.Join(problems, "\n"))
	}
}

// isAdapter reports whether pkg is an adapter: a package under adapters/
// that is not part of another one (such as adapters/remote/embedded).
func isAdapter(pkg string) bool {
	return strings.HasPrefix(pkg, "adapters/") && strings.Count(pkg, "/") == 1
}
