package python

import (
	_ "embed"
	"strings"
)

// requirementsDSPy is requirements-dspy.lock: the pinned Python test
// environment, dspy and its dependencies.
//
//go:embed requirements-dspy.lock
var requirementsDSPy string

// TestedDSPyVersion returns the dspy version dspgo's tests run against:
// X.Y.Z of the line "dspy==X.Y.Z" in requirements-dspy.lock, embedded at
// build time. It returns "" when the file pins no dspy.
func TestedDSPyVersion() string { return pinnedVersion(requirementsDSPy, "dspy") }

// pinnedVersion returns the version pinned for pkg ("pkg==version") in a
// requirements file, ignoring comments, case and blank lines; "" when
// there is none.
func pinnedVersion(requirements, pkg string) string {
	for _, line := range strings.Split(requirements, "\n") {
		line, _, _ = strings.Cut(line, "#")
		name, version, ok := strings.Cut(strings.TrimSpace(line), "==")
		if ok && strings.EqualFold(strings.TrimSpace(name), pkg) {
			version, _, _ = strings.Cut(strings.TrimSpace(version), ";") // an environment marker
			return strings.TrimSpace(version)
		}
	}
	return ""
}
