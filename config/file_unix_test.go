//go:build unix

package config_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/config"
)

// A config file without a size (a named pipe) is read up to the limit and
// no further: of the 50 MB its writer offers, Load takes about 1 MiB and
// refuses it.
func TestConfigFileReadIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dspgo.yaml")
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	const offered = 50 << 20
	written := make(chan int, 1)
	go func() {
		n := 0
		defer func() { written <- n }()
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer func() { _ = f.Close() }()
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = '#'
		}
		for n < offered {
			m, err := f.Write(chunk)
			n += m
			if err != nil {
				return // the reader is gone
			}
		}
	}()
	_, err := load(t, config.LoadOptions{Files: []string{path}})
	require.ErrorIs(t, err, config.ErrFileTooLarge)
	assert.Contains(t, err.Error(), "holds more than 1048576 bytes; the limit is 1048576 bytes (1 MiB, config.MaxFileBytes)")
	n := <-written
	assert.Less(t, n, 4*config.MaxFileBytes, "Load stopped reading at the limit (the rest is the pipe's buffer)")
}
