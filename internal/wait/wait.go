// Package wait polls a condition until it holds or a context ends, for the
// drains of Close that count calls in flight.
package wait

import (
	"context"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 5 * time.Millisecond

// Until checks cond every Interval until it holds (true) or ctx ends
// (false).
func Until(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}
