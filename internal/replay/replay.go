// Package replay keeps the broadcasts (configure_lm…) a backend replays to
// every worker it starts later, so that no worker runs with another
// configuration than the others. The port and pool adapters use it.
package replay

import (
	"bytes"
	"errors"
	"slices"
	"sync"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/program"
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
			break
		}
	}
	l.list = append(l.list, req)
	l.ver++
	return u
}

// Restore takes back a Record whose broadcast the workers refused: the
// broadcast it replaced goes back (or none, when it replaced none), unless
// a later broadcast replaced it meanwhile.
func (l *Log) Restore(u Undo) {
	for i, b := range l.list {
		if b.Command == u.req.Command && bytes.Equal(b.Args, u.req.Args) {
			if u.prev != nil {
				l.list[i] = *u.prev
			} else {
				l.list = slices.Delete(l.list, i, i+1)
			}
			return
		}
	}
}

// Replay sends the log's broadcasts to a new worker with send, in order,
// again until no broadcast was recorded meanwhile; mu is the mutex that
// guards the log. A broadcast the worker refuses (send's error holds the
// worker's own error, an *adapter.Error with Remote: a new worker refuses
// it as every other would, such as one recorded while no worker could
// check it) is taken
// out of the log and passed to refused, and the replay goes on: it must
// not keep every later worker from starting. Replay returns send's first
// other error with mu not held; on success it returns with mu held, so
// that the caller can put the worker in service before another broadcast
// is recorded.
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
			switch {
			case err == nil:
			case refusedByWorker(err):
				mu.Lock()
				l.Restore(Undo{req: req})
				mu.Unlock()
				refused(req, err)
			default:
				return err
			}
		}
		done = ver
	}
}

// refusedByWorker reports whether err holds a worker's answer: an
// *adapter.Error with Remote, anywhere in its chain of wrapped errors.
func refusedByWorker(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if e, ok := err.(*adapter.Error); ok && e.Remote != nil {
			return true
		}
	}
	return false
}

// List returns a copy of the recorded broadcasts, oldest first.
func (l *Log) List() []adapter.Request { return slices.Clone(l.list) }
