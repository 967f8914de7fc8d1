package adapter

// Affinity says how a backend with several workers (or hosts) routes the
// requests of a session (Request.Session). It is an optimisation, never a
// condition for correctness: programs and broadcasts reach every worker
// whatever the mode. The built-in backends read the empty value as
// AffinityPrefer.
type Affinity string

// Affinity modes.
const (
	// AffinityNone routes every request to the least-loaded worker.
	AffinityNone Affinity = "none"
	// AffinityPrefer sends a session back to the worker that served it
	// when that worker has room, and elsewhere otherwise.
	AffinityPrefer Affinity = "prefer"
	// AffinityStrict always sends a session to the worker that served it,
	// waiting for room there, and fails with CodeUnavailable if that
	// worker is gone; the session's next request binds it anew.
	AffinityStrict Affinity = "strict"
)

// Valid reports whether a is one of the modes; the empty value is not.
func (a Affinity) Valid() bool {
	return a == AffinityNone || a == AffinityPrefer || a == AffinityStrict
}
