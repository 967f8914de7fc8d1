package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version is what dspgo --version prints: the module's version (a
// pseudo-version naming the commit when built from a checkout, "(devel)"
// when the build recorded none), the commit when the version does not
// name it (and "modified" for a work tree with changes), and the Go that
// built it.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build information), " + runtime.Version()
	}
	parts := []string{info.Main.Version}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" && !strings.Contains(info.Main.Version, rev[:min(12, len(rev))]) {
		commit := "commit " + rev[:min(12, len(rev))]
		if settings["vcs.modified"] == "true" {
			commit += " (modified)"
		}
		parts = append(parts, commit)
	}
	parts = append(parts, info.GoVersion)
	return strings.Join(parts, ", ")
}

// versionTemplate is cobra's template for --version.
const versionTemplate = "{{.Name}} {{.Version}}\n"
