// Package credit is the flow control of a stream: its producer takes one
// unit of credit per chunk, waiting while none is left, and its consumer's
// side grants more as chunks are consumed. Nothing is ever buffered beyond
// what was granted.
package credit

import (
	"context"
	"math"
	"sync"
)

// Window is the credit of one stream. It is safe for concurrent use.
type Window struct {
	mu   sync.Mutex
	left int
	wake chan struct{} // closed and replaced when credit arrives
}

// New returns a window holding n units, the stream's initial credit.
func New(n int) *Window { return &Window{left: n, wake: make(chan struct{})} }

// Add grants n more units and wakes a producer waiting for them. The
// credit saturates at math.MaxInt: a consumer's grants never wrap it
// around to none.
func (w *Window) Add(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n > math.MaxInt-w.left {
		w.left = math.MaxInt
	} else {
		w.left += n
	}
	close(w.wake)
	w.wake = make(chan struct{})
}

// Take takes one unit, waiting for it until ctx ends.
func (w *Window) Take(ctx context.Context) error {
	for {
		w.mu.Lock()
		if w.left > 0 {
			w.left--
			w.mu.Unlock()
			return nil
		}
		wake := w.wake
		w.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Grants is the consumer's side of a stream's credit: it counts the
// chunks taken and says when to grant them back, in batches of half the
// window, so that the producer is never more than a window ahead and
// credit costs one message per half window. The zero value grants every
// chunk at once.
type Grants struct {
	batch int
	owed  int
}

// NewGrants returns the grants of a stream whose initial credit is window.
func NewGrants(window int) Grants { return Grants{batch: max(1, window/2)} }

// Took records one chunk taken and returns the credit to grant now; zero
// means none yet.
func (g *Grants) Took() int {
	if g.owed++; g.owed < g.batch {
		return 0
	}
	n := g.owed
	g.owed = 0
	return n
}
