// Package sessionmap is the bounded map from a session to the worker (or
// host) that serves it, for the backends' session affinity.
package sessionmap

// Cap is how many sessions a Map binds at most: binding one more forgets
// an arbitrary binding first. Affinity is an optimisation, never needed
// for correctness, so a forgotten session only loses its warm worker.
const Cap = 1 << 16

// Map binds sessions to values of V (a worker, a host id). It is not safe
// for concurrent use: its owner guards it. The zero value is an empty map.
type Map[V comparable] struct {
	m map[string]V
}

// Get returns the session's value and whether it is bound.
func (s *Map[V]) Get(session string) (V, bool) {
	v, ok := s.m[session]
	return v, ok
}

// Bind binds the session to v; when Cap sessions are bound and this one
// is not, an arbitrary binding is forgotten first.
func (s *Map[V]) Bind(session string, v V) {
	if s.m == nil {
		s.m = map[string]V{}
	}
	if _, ok := s.m[session]; !ok && len(s.m) >= Cap {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[session] = v
}

// Forget unbinds the session.
func (s *Map[V]) Forget(session string) { delete(s.m, session) }

// ForgetIf unbinds the session when it is bound to v.
func (s *Map[V]) ForgetIf(session string, v V) {
	if x, ok := s.m[session]; ok && x == v {
		delete(s.m, session)
	}
}

// Unbind forgets every session bound to v.
func (s *Map[V]) Unbind(v V) {
	for k, x := range s.m {
		if x == v {
			delete(s.m, k)
		}
	}
}

// Len returns how many sessions are bound.
func (s *Map[V]) Len() int { return len(s.m) }
