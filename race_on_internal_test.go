//go:build race

package dspgo

// raceEnabled reports a build with the race detector, under which
// sync.Pool drops items at random (allocation counts vary).
const raceEnabled = true
