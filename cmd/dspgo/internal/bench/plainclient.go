package bench

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/protocol"
)

// plainClient is the second baseline of the rows with several calls in
// flight per worker (the pool's, and ping at 16 in flight): a plain client
// whose calls return to the goroutine that made them, as a Go client's
// do, and that does nothing else. Each caller writes its own request under
// a lock and waits on a channel of its own; one goroutine per worker reads
// the replies with blocking reads and hands each to its caller. It has no
// contexts, deadlines, supervision or pool. Where the raw baseline (one
// goroutine per worker, no callers) measures what the workers can serve,
// this one measures a client that hands replies to separate goroutines,
// on the same machine at the same moment.
type plainClient struct {
	workers []*callerWorker
}

// callerWorker is one raw worker driven by plainClient.
type callerWorker struct {
	rw       *rawWorker
	wmu      sync.Mutex // one frame at a time
	mu       sync.Mutex // waiting and rw.nextID
	waiting  map[uint64]chan protocol.Response
	inFlight atomic.Int32
	stopID   atomic.Uint64 // the request whose reply ends the reader
	dead     chan struct{} // closed when the reader ends
}

var errReaderGone = errors.New("plain client: the reader ended")

// newPlainClient starts a reader for each worker; stop ends them. The
// workers take no other calls until stop returns.
func newPlainClient(raws []*rawWorker) *plainClient {
	pc := &plainClient{}
	for _, rw := range raws {
		cw := &callerWorker{rw: rw, waiting: map[uint64]chan protocol.Response{}, dead: make(chan struct{})}
		go cw.read()
		pc.workers = append(pc.workers, cw)
	}
	return pc
}

// read hands each reply to its caller until the stop request's reply or an
// error.
func (cw *callerWorker) read() {
	defer close(cw.dead)
	for {
		resp, err := cw.rw.r.ReadResponse()
		if err != nil || resp.ID == cw.stopID.Load() {
			return
		}
		cw.mu.Lock()
		ch := cw.waiting[resp.ID]
		delete(cw.waiting, resp.ID)
		cw.mu.Unlock()
		if ch != nil {
			ch <- resp // buffered
		}
	}
}

// call sends req to the worker with the fewest calls in flight and waits
// for its reply.
func (pc *plainClient) call(req protocol.Request) error {
	cw := pc.workers[0]
	for _, w := range pc.workers[1:] {
		if w.inFlight.Load() < cw.inFlight.Load() {
			cw = w
		}
	}
	cw.inFlight.Add(1)
	defer cw.inFlight.Add(-1)
	ch := make(chan protocol.Response, 1)
	cw.mu.Lock()
	cw.rw.nextID++
	req.ID = cw.rw.nextID
	cw.waiting[req.ID] = ch
	cw.mu.Unlock()
	cw.wmu.Lock()
	err := cw.rw.w.WriteRequest(&req)
	cw.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case resp := <-ch:
		if !resp.Success {
			return errors.New(resp.Error.Message)
		}
		return nil
	case <-cw.dead:
		return errReaderGone
	}
}

// stop ends the readers: each reads up to the reply to one last ping.
// No call may be in flight.
func (pc *plainClient) stop() {
	for _, cw := range pc.workers {
		cw.mu.Lock()
		cw.rw.nextID++
		last := protocol.Request{ID: cw.rw.nextID, Command: command.Ping}
		cw.mu.Unlock()
		cw.stopID.Store(last.ID)
		if err := cw.rw.w.WriteRequest(&last); err != nil {
			_ = cw.rw.out.Close() // the worker is gone: end the read
		}
		<-cw.dead
	}
}
