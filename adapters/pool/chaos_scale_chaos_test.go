//go:build chaos

package pool_test

import "time"

// The full chaos run: go test -tags chaos (make chaos).
const (
	chaosDuration = 10 * time.Second
	chaosRestarts = 1000
	chaosFlood    = 20000
)
