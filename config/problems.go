package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with the configuration.
type Problem struct {
	// Err is the kind of problem: ErrUnknownKey, ErrUnknownEnvironment or
	// ErrInvalid (a value that does not convert to its key's type, or
	// that is out of its range).
	Err error
	// Key is the dotted key at fault, such as "pool.size".
	Key string
	// Source is the layer to change (see Config.Source): the one that set
	// Key, or, for a key that another key's value requires, the one that
	// set that other key. A default is never blamed for another key's
	// value.
	Source string
	// Message says what is wrong, with the key and its source.
	Message string
}

func (p Problem) String() string { return p.Message }

// Error lists every problem that Load or Validate found, in one pass:
// unknown keys, values that do not convert and values out of range
// together. errors.Is matches each kind of problem it holds.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Message
	}
	if len(msgs) == 1 {
		return "config: " + msgs[0]
	}
	return fmt.Sprintf("config: %d problems: %s", len(msgs), strings.Join(msgs, "; "))
}

// Unwrap returns the kinds of the problems, each once.
func (e *Error) Unwrap() []error {
	var kinds []error
	for _, p := range e.Problems {
		if !containsErr(kinds, p.Err) {
			kinds = append(kinds, p.Err)
		}
	}
	return kinds
}

func containsErr(list []error, err error) bool {
	for _, e := range list {
		if errors.Is(e, err) {
			return true
		}
	}
	return false
}

// problems collects the problems of one load. A key whose own value is
// invalid is marked, so that the checks relating it to other keys are
// skipped instead of reporting a cascade.
type problems struct {
	unknown []Problem // unknown keys and environments, sorted at the end
	invalid []Problem // in the order found: type errors, then range errors
	bad     map[string]bool
}

func (p *problems) addUnknown(q Problem) { p.unknown = append(p.unknown, q) }

// addInvalid records an invalid value of key and marks the key.
func (p *problems) addInvalid(key, source, msg string) {
	if p.bad == nil {
		p.bad = map[string]bool{}
	}
	p.bad[key] = true
	p.invalid = append(p.invalid, Problem{Err: ErrInvalid, Key: key, Source: source, Message: msg})
}

// valid reports whether none of keys holds an invalid value.
func (p *problems) valid(keys ...string) bool {
	for _, k := range keys {
		if p.bad[k] {
			return false
		}
	}
	return true
}

// err returns the problems as an *Error, or nil when there are none.
func (p *problems) err() error {
	if len(p.unknown)+len(p.invalid) == 0 {
		return nil
	}
	sort.SliceStable(p.unknown, func(i, j int) bool {
		a, b := p.unknown[i], p.unknown[j]
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Message < b.Message
	})
	return &Error{Problems: append(append([]Problem(nil), p.unknown...), p.invalid...)}
}

// envName is the DSPGO_* variable that sets key.
func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
}
