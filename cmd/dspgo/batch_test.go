package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/internal/testutil"
)

// TestBatchPrintsRowsAsTheyAreDone: the JSON lines of a batch come out
// as their rows are done, while the input is still being written (a
// pipeline, a batch of millions of rows), not once it has all been read.
func TestBatchPrintsRowsAsTheyAreDone(t *testing.T) {
	testutil.VerifyNoChildren(t)
	stdin, feed := io.Pipe()
	var out, errOut testutil.SyncBuffer
	no := false
	status := make(chan int, 1)
	go func() {
		status <- run(context.Background(), []string{"run", "--adapter", "mock", "--signature", "q -> a", "--concurrency", "2"},
			env{stdin: stdin, stdout: &out, stderr: &errOut, stdinIsTerminal: &no, stderrIsTerminal: &no, environ: func() []string { return nil }})
	}()
	for i := 1; i <= 3; i++ {
		_, err := fmt.Fprintf(feed, `{"q":"%d"}`+"\n", i)
		require.NoError(t, err)
		testutil.WaitFor(t, fmt.Sprintf("row %d printed before the input ends", i), func() bool {
			return strings.Count(out.String(), "\n") == i
		})
	}
	require.NoError(t, feed.Close())
	assert.Equal(t, 0, <-status, errOut.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, line := range lines {
		assert.Contains(t, line, fmt.Sprintf(`{"row":%d,"outputs":`, i+1))
	}
}

// TestRunPrintsTheRowsBeforeALineOverTheLimit: a line over the limit
// ends the batch there: the rows before it ran and were printed, and the
// run is bad usage naming the line.
func TestRunPrintsTheRowsBeforeALineOverTheLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	text := `{"question":"a"}` + "\n\n" + `{"question":"b"}` + "\n" + strings.Repeat("x", maxFileBytes+1) + "\n" + `{"question":"c"}` + "\n"
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	r := cli(t, "", nil, "run", "--adapter", "mock", "--signature", "question -> answer", "--inputs", path)
	assert.Equal(t, 2, r.status, r.stderr)
	assert.Contains(t, r.stderr, "dspgo: input line 4 holds more than the limit of one row")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2, r.stdout)
	assert.Contains(t, lines[0], `{"row":1,"outputs":`)
	assert.Contains(t, lines[1], `{"row":3,"outputs":`)
}

// runBatch hands every row on in input order, whatever order they finish
// in, reads no more than its window ahead of the row it waits for, and
// stops reading when its context ends, handing on the rows in flight.
func TestRunBatch(t *testing.T) {
	const total, concurrency = 500, 8
	window := max(4*concurrency, 16)
	var read, emitted atomic.Int64
	var mostAhead atomic.Int64
	next := func() (*row, error) {
		n := read.Add(1)
		if n > total {
			return nil, io.EOF
		}
		if ahead := n - emitted.Load(); ahead > mostAhead.Load() {
			mostAhead.Store(ahead)
		}
		rw := &row{n: int(n)}
		if n%7 == 0 {
			rw.err = errors.New("unreadable") // not run, still handed on in its place
		}
		return rw, nil
	}
	var ran atomic.Int64
	run := func(rw *row) {
		ran.Add(1)
		for range rand.IntN(2000) { // rows finish out of order
			_ = rand.Int()
		}
	}
	var order []int
	err := runBatch(t.Context(), next, concurrency, run, func(rw *row) {
		order = append(order, rw.n)
		emitted.Add(1)
	})
	require.NoError(t, err)
	require.Len(t, order, total)
	for i, n := range order {
		require.Equal(t, i+1, n, "in input order")
	}
	assert.Equal(t, int64(total-total/7), ran.Load(), "an unreadable row is not run")
	assert.LessOrEqual(t, mostAhead.Load(), int64(window+2), "rows read ahead: the window, the one read ahead and the one being read")

	ctx, cancel := context.WithCancel(t.Context())
	block := make(chan struct{})
	var handed []int
	count := 0
	err = runBatch(ctx, func() (*row, error) {
		count++
		return &row{n: count}, nil // endless rows
	}, 2, func(rw *row) {
		if rw.n == 3 {
			cancel()
			<-block
		}
	}, func(rw *row) {
		handed = append(handed, rw.n)
		if rw.n == 2 {
			close(block)
		}
	})
	assert.ErrorIs(t, err, context.Canceled)
	require.NotEmpty(t, handed)
	for i, n := range handed {
		assert.Equal(t, i+1, n, "the rows read before the end, in order")
	}
	assert.Contains(t, handed, 3, "the row in flight when the context ended is handed on")
}
