package replay

import (
	"context"
	"sync"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/program"
)

// Turns lets one broadcast of each program.BroadcastKey run at a time:
// two broadcasts of one key (two configure_lm of one LM name) sent at
// once then reach the record and every worker in one order. Without it
// each worker applies them in the order its own send happened to run,
// and the workers end with different configurations, none of them sure
// to be the one the record replays. Broadcasts of different keys still
// run at once.
//
// The zero value is ready to use; a Turns is safe for concurrent use.
type Turns struct {
	mu sync.Mutex
	// busy holds, for each key whose turn is taken, a channel closed when
	// it is given back.
	busy map[string]chan struct{}
}

// Take waits until no other broadcast of req's key runs, and returns the
// func that ends req's turn, which the caller must call once req's
// broadcast has reached every worker or been taken back. The wait ends
// with ctx's error when ctx ends first.
func (t *Turns) Take(ctx context.Context, req adapter.Request) (done func(), err error) {
	key := program.BroadcastKey(req.Command, req.Args)
	for {
		t.mu.Lock()
		held, ok := t.busy[key]
		if !ok {
			if t.busy == nil {
				t.busy = map[string]chan struct{}{}
			}
			mine := make(chan struct{})
			t.busy[key] = mine
			t.mu.Unlock()
			return func() {
				t.mu.Lock()
				delete(t.busy, key)
				t.mu.Unlock()
				close(mine)
			}, nil
		}
		t.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
