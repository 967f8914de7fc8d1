//go:build !chaos

package pool_test

import "time"

// The short chaos run, part of make test.
const (
	chaosDuration = time.Second
	chaosRestarts = 50
	chaosFlood    = 2000
)
