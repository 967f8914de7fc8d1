// Package dspgoenv is the one list of the DSPGO_ environment variables that
// dspgo sets or reads for itself and that are not configuration keys.
// Whoever sets one uses its constant from here, and config ignores every
// name listed here when it reads the DSPGO_* configuration variables, so a
// dspgo process started by another (a worker, a host's child) never fails
// on a variable its parent set. Test-only variables use the DSPGOTEST_
// prefix instead and are not listed.
package dspgoenv

import "slices"

// RunID carries a host run's id to the Python workers it starts (see
// adapters/port); with the worker's command line it identifies a worker
// left behind by a dead host.
const RunID = "DSPGO_RUN_ID"

// reserved is the list; add a variable here when dspgo starts setting or
// reading it, and document it in docs/configuration.md.
var reserved = []string{RunID}

// Reserved returns the reserved names, sorted.
func Reserved() []string {
	out := slices.Clone(reserved)
	slices.Sort(out)
	return out
}

// IsReserved reports whether name is one of the reserved variables.
func IsReserved(name string) bool { return slices.Contains(reserved, name) }
