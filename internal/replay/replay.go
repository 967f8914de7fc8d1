// Package replay keeps the broadcasts (configure_lm…) a backend replays to
// every worker it starts later, so that no worker runs with another
// configuration than the others. The port and pool adapters use it.
package replay

import (
	"bytes"
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
	list []adapter.Request
	// prev holds, for each broadcast of list (same index), the one it
	// replaced, or nil: what a replay that drops it puts back.
	prev []*adapter.Request
	ver  uint64
}

// Undo is what Record replaced, for Restore.
type Undo struct {
	req  adapter.Request
	prev *adapter.Request // the broadcast req replaced; nil when none
}

// Record adds req to the log (its arguments as program.Replayable makes
// them), replacing an earlier broadcast with the same
// program.BroadcastKey, and returns what Restore needs to take it back.
func (l *Log) Record(req adapter.Request) Undo {
	req.Args = program.Replayable(req.Command, req.Args)
	u := Undo{req: req}
	key := program.BroadcastKey(req.Command, req.Args)
	for i, b := range l.list {
		if program.BroadcastKey(b.Command, b.Args) == key {
			u.prev = &b
			l.list = slices.Delete(l.list, i, i+1)
			l.prev = slices.Delete(l.prev, i, i+1)
			break
		}
	}
	l.list = append(l.list, req)
	l.prev = append(l.prev, u.prev)
	l.ver++
	return u
}

// Restore takes back a Record whose broadcast the workers refused: the
// broadcast it replaced goes back (or none, when it replaced none), unless
// a later broadcast replaced it meanwhile.
func (l *Log) Restore(u Undo) {
	if i := l.index(u.req); i >= 0 {
		l.putBack(i, u.prev)
	}
}

// index returns the position of req in the log, or -1.
func (l *Log) index(req adapter.Request) int {
	return slices.IndexFunc(l.list, func(b adapter.Request) bool { return b.Command == req.Command && bytes.Equal(b.Args, req.Args) })
}

// putBack replaces the broadcast at i with prev, or removes it when prev
// is nil.
func (l *Log) putBack(i int, prev *adapter.Request) {
	if prev != nil {
		l.list[i], l.prev[i] = *prev, nil
		return
	}
	l.list = slices.Delete(l.list, i, i+1)
	l.prev = slices.Delete(l.prev, i, i+1)
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
		for _, req := range list {
			err := send(req)
			if err == nil {
				continue
			}
			if r := wire.Remote(err); r == nil || r.Code != adapter.CodeInvalidArgument {
				return err
			}
			mu.Lock()
			if i := l.index(req); i >= 0 {
				if l.prev[i] != nil {
					l.ver++ // replay again: the worker needs the one put back
				}
				l.putBack(i, l.prev[i])
			}
			mu.Unlock()
			refused(req, err)
		}
		done = ver
	}
}

// List returns a copy of the recorded broadcasts, oldest first.
func (l *Log) List() []adapter.Request { return slices.Clone(l.list) }
