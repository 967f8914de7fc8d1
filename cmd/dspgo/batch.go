package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/dspgo/dspgo/adapter"
)

// rows are the input rows of a run, read one at a time.
type rows struct {
	// next returns the next row; io.EOF after the last.
	next func() (*row, error)
	// close lets go of what the rows are read from.
	close func() error
	// fromFlags reports the one row of --input (or of none).
	fromFlags bool
}

// oneRow is rows of the single row rw.
func oneRow(rw *row) rows {
	given := false
	return rows{next: func() (*row, error) {
		if given {
			return nil, io.EOF
		}
		given = true
		return rw, nil
	}, close: func() error { return nil }, fromFlags: true}
}

// jsonLines returns the reader of r's rows, one JSON object per line; a
// malformed line becomes a failed row, never the end of the batch. Blank
// lines are skipped, and counted: a row's number is its line's. A line
// of more than maxFileBytes ends the rows with bad usage (readLine).
func jsonLines(r io.Reader) func() (*row, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n, ended := 0, false
	return func() (*row, error) {
		for !ended {
			n++
			line, err := readLine(br, n)
			var usage *usageError
			switch {
			case errors.As(err, &usage):
				ended = true
				return nil, err
			case errors.Is(err, io.EOF):
				ended = true
			case err != nil:
				ended = true
				return nil, fmt.Errorf("reading inputs: %w", err)
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			rw := &row{n: n}
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.UseNumber()
			if derr := dec.Decode(&rw.inputs); derr != nil || rw.inputs == nil {
				rw.err = adapter.Errorf(adapter.CodeInvalidArgument, "line %d is not a JSON object of inputs: %s", n, strings.TrimSpace(string(line)))
			}
			return rw, nil
		}
		return nil, io.EOF
	}
}

// runBatch runs the rows next reads, concurrency at a time (run is
// called for each row that was read as valid), and hands each row to emit
// in input order as soon as it and every row before it have run, so that
// a long batch prints as it goes and holds no more than a window of rows
// (4×concurrency, at least 16) read and not yet emitted. Reading stops at
// the end of the rows, at an error, which runBatch returns after every
// row read before it has run and been emitted, or when ctx ends (ctx's
// error, likewise). emit runs in the calling goroutine.
//
// The rows are read in a goroutine of their own, one row ahead; one left
// blocked in a read (a terminal's stdin when ctx ends) stays so until the
// read returns.
func runBatch(ctx context.Context, next func() (*row, error), concurrency int, run func(*row), emit func(*row)) error {
	window := max(4*concurrency, 16)
	type read struct {
		rw  *row
		err error
	}
	type item struct {
		i  int
		rw *row
	}
	readc, stop := make(chan read), make(chan struct{})
	defer close(stop)
	go func() {
		for {
			rw, err := next()
			select {
			case readc <- read{rw, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// done holds every row in flight, so that a worker never waits to hand
	// one back while this goroutine waits to give it the next.
	work, done := make(chan item), make(chan item, window)
	var wg sync.WaitGroup
	for range max(concurrency, 1) {
		wg.Go(func() {
			for it := range work {
				if it.rw.err == nil {
					run(it.rw)
				}
				done <- it
			}
		})
	}
	defer func() {
		close(work)
		wg.Wait()
	}()

	var readErr error
	pending := map[int]*row{} // rows run, waiting for one before them
	sent, emitted, inFlight := 0, 0, 0
	reads, ended := readc, ctx.Done() // nil once reading has stopped
	for reads != nil || inFlight > 0 {
		from := reads
		if inFlight == window {
			from = nil
		}
		select {
		case r := <-from:
			if r.err != nil {
				if !errors.Is(r.err, io.EOF) {
					readErr = r.err
				}
				reads = nil
				continue
			}
			work <- item{sent, r.rw}
			sent++
			inFlight++
		case it := <-done:
			pending[it.i] = it.rw
			for rw, ok := pending[emitted]; ok; rw, ok = pending[emitted] {
				delete(pending, emitted)
				emit(rw)
				emitted++
				inFlight--
			}
		case <-ended:
			readErr, reads, ended = ctx.Err(), nil, nil
		}
	}
	return readErr
}
