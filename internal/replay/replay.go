// Package replay keeps the broadcasts (configure_lm…) a backend replays to
// every worker it starts later, so that no worker runs with another
// configuration than the others. The port and pool adapters use it.
package replay

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"sync"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/wire"
)

// Log is the ordered list of broadcasts to replay, one per
// program.BroadcastKey: a later broadcast of the same command (for
// configure_lm, of the same LM name) replaces the recorded one. It counts
// the broadcasts recorded, so a worker being started can tell that it
// missed one.
//
// A Log is not safe for concurrent use: its owner guards it with a mutex
// and passes that mutex to Replay. The zero value is an empty log.
type Log struct {
	list []entry
	ver  uint64
}

// entry is one recorded broadcast.
type entry struct {
	req adapter.Request
	// at is the version that recorded it: which Record it came from,
	// where two broadcasts may have the same arguments.
	at uint64
	// prev is the broadcast it replaced, or nil: what a Restore or a
	// replay that drops it puts back.
	prev *entry
}

// Undo is what Restore needs to take a Record back.
type Undo struct {
	req  adapter.Request
	at   uint64
	prev *entry // the broadcast req replaced; nil when none
}

// Record adds req to the log (its arguments as program.Replayable makes
// them), replacing an earlier broadcast with the same
// program.BroadcastKey, and returns what Restore needs to take it back.
func (l *Log) Record(req adapter.Request) Undo {
	req.Args = program.Replayable(req.Command, req.Args)
	l.ver++
	e := entry{req: req, at: l.ver}
	if i := l.indexOfKey(req); i >= 0 {
		prev := l.list[i]
		prev.prev = nil // what it replaced is not put back with it
		e.prev = &prev
		l.list = slices.Delete(l.list, i, i+1)
	}
	l.list = append(l.list, e)
	return Undo{req: req, at: e.at, prev: e.prev}
}

// Restore takes back a Record whose broadcast the workers refused: the
// broadcast it replaced goes back (or none, when it replaced none), unless
// a later broadcast replaced it meanwhile. It reports whether a worker
// that applied the refused broadcast may run another configuration than
// the log now holds: false only when the log holds, under its key, a
// broadcast with the same arguments (the same configure_lm sent again, or
// sent twice at once).
func (l *Log) Restore(u Undo) (changed bool) {
	if i := l.indexOf(u.at); i >= 0 {
		l.putBack(i, u.prev)
	}
	i := l.indexOfKey(u.req)
	return i < 0 || !sameArgs(l.list[i].req.Args, u.req.Args)
}

// indexOf returns the position of the broadcast recorded at version at,
// or -1.
func (l *Log) indexOf(at uint64) int {
	return slices.IndexFunc(l.list, func(e entry) bool { return e.at == at })
}

// indexOfKey returns the position of the broadcast with req's
// program.BroadcastKey, or -1.
func (l *Log) indexOfKey(req adapter.Request) int {
	key := program.BroadcastKey(req.Command, req.Args)
	return slices.IndexFunc(l.list, func(e entry) bool { return program.BroadcastKey(e.req.Command, e.req.Args) == key })
}

// putBack replaces the broadcast at i with prev, or removes it when prev
// is nil.
func (l *Log) putBack(i int, prev *entry) {
	if prev != nil {
		l.list[i] = *prev
		return
	}
	l.list = slices.Delete(l.list, i, i+1)
}

// sameArgs reports whether two broadcasts' arguments are the same JSON
// value, whatever the order of their keys (Replayable reorders those of a
// configure_lm it takes "verify" out of).
func sameArgs(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// Replay sends the log's broadcasts to a new worker with send, in order,
// again until no broadcast was recorded meanwhile; mu is the mutex that
// guards the log. A broadcast the worker refuses as invalid (send's error
// holds the worker's own CodeInvalidArgument: every worker refuses it
// alike, such as one recorded while no worker could check it) is taken
// out of the log, the broadcast it replaced put back in its place, and it
// is passed to refused; the replay goes on, and starts over when one was
// put back, so that the worker gets it: one bad broadcast must not keep
// every later worker from starting. Any other error (a refusal that may
// pass, such as a dspy that failed to import) ends the replay: Replay
// returns it with mu not held, and the worker's start is retried. On
// success Replay returns with mu held, so that the caller can put the
// worker in service before another broadcast is recorded.
func (l *Log) Replay(mu sync.Locker, send func(adapter.Request) error, refused func(adapter.Request, error)) error {
	var done uint64
	for {
		mu.Lock()
		if l.ver == done {
			return nil
		}
		list, ver := slices.Clone(l.list), l.ver
		mu.Unlock()
		for _, e := range list {
			err := send(e.req)
			if err == nil {
				continue
			}
			if r := wire.Remote(err); r == nil || r.Code != adapter.CodeInvalidArgument {
				return err
			}
			mu.Lock()
			if i := l.indexOf(e.at); i >= 0 {
				if l.list[i].prev != nil {
					l.ver++ // replay again: the worker needs the one put back
				}
				l.putBack(i, l.list[i].prev)
			}
			mu.Unlock()
			refused(e.req, err)
		}
		done = ver
	}
}

// List returns a copy of the recorded broadcasts, oldest first.
func (l *Log) List() []adapter.Request {
	out := make([]adapter.Request, len(l.list))
	for i, e := range l.list {
		out[i] = e.req
	}
	return out
}
