// Package python carries the dspgo Python worker's source inside Go
// binaries, so that a program importing dspgo from another module can start
// workers with no checkout of this repository.
//
// The worker itself is the Python package dspgo_worker in this directory;
// run it as `python3 -m dspgo_worker` with this directory on PYTHONPATH.
// Its wire contract is docs/protocol.md.
package python

import "embed"

// Worker holds the dspgo_worker package's source files, under the path
// "dspgo_worker/".
//
//go:embed dspgo_worker/*.py
var Worker embed.FS

// Package is the name of the worker's Python package, as given to
// `python3 -m`.
const Package = "dspgo_worker"
