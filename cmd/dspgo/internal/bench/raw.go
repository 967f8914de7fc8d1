package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/protocol"
)

// rawWorker is the baseline: the same Python worker driven with the
// protocol codec directly, with no adapter, no reader goroutine and no
// supervision, reading with blocking system calls — the least a host can
// do.
type rawWorker struct {
	cmd    *exec.Cmd
	in     *os.File
	out    *os.File
	w      *protocol.Writer
	r      *protocol.Reader
	nextID uint64
}

// startRaw starts a worker and completes its init ping.
func startRaw(python, dir string, args ...string) (*rawWorker, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	// Blocking reads, outside the runtime's poller: the fastest way for one
	// goroutine to wait for its reply.
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		return nil, err
	}
	outR, outW := os.NewFile(uintptr(fds[0]), "|0"), os.NewFile(uintptr(fds[1]), "|1")
	cmd := exec.Command(python, append([]string{"-m", "dspgo_worker", "--log-level", "error"}, args...)...)
	cmd.Env = []string{"PYTHONPATH=" + dir, "PYTHONDONTWRITEBYTECODE=1"}
	cmd.Stdin, cmd.Stdout = inR, outW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	_ = inR.Close()
	_ = outW.Close()
	rw := &rawWorker{cmd: cmd, in: inW, out: outR, w: protocol.NewWriter(inW, 0), r: protocol.NewReader(outR, 0)}
	if _, err := rw.call(&protocol.Request{ID: protocol.InitID, Command: command.Ping, Args: protocol.InitPingArgs}); err != nil {
		rw.stop()
		return nil, fmt.Errorf("raw worker: init: %w", err)
	}
	return rw, nil
}

// call sends one request and reads its response: one call in flight.
func (rw *rawWorker) call(req *protocol.Request) (protocol.Response, error) {
	if err := rw.w.WriteRequest(req); err != nil {
		return protocol.Response{}, err
	}
	resp, err := rw.r.ReadResponse()
	if err == nil && !resp.Success {
		err = errors.New(resp.Error.Message)
	}
	return resp, err
}

// window keeps k requests in flight until ctx ends: each response read
// lets one more request go. It records each call's latency.
func (rw *rawWorker) window(ctx context.Context, k int, req protocol.Request) (lat []time.Duration, errs int, err error) {
	var mu sync.Mutex
	sent := map[uint64]time.Time{}
	send := func() error {
		rw.nextID++
		req.ID = rw.nextID
		mu.Lock()
		sent[req.ID] = time.Now()
		mu.Unlock()
		return rw.w.WriteRequest(&req)
	}
	for range k {
		if err := send(); err != nil {
			return nil, 0, err
		}
	}
	outstanding := k
	for outstanding > 0 {
		resp, err := rw.r.ReadResponse()
		if err != nil {
			return lat, errs, err
		}
		mu.Lock()
		start := sent[resp.ID]
		delete(sent, resp.ID)
		mu.Unlock()
		if resp.Success {
			lat = append(lat, time.Since(start))
		} else {
			errs++
		}
		outstanding--
		if ctx.Err() == nil {
			if err := send(); err != nil {
				return lat, errs, err
			}
			outstanding++
		}
	}
	return lat, errs, nil
}

func (rw *rawWorker) pid() int { return rw.cmd.Process.Pid }

// stop ends the worker: end of stdin, then SIGKILL to its group.
func (rw *rawWorker) stop() {
	_ = rw.in.Close()
	done := make(chan struct{})
	go func() { _ = rw.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		_ = syscall.Kill(-rw.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	_ = syscall.Kill(-rw.cmd.Process.Pid, syscall.SIGKILL)
	_ = rw.out.Close()
}

// rawMeasure drives workers, each with a window of k, for d, and returns
// the figures as Measure does.
func rawMeasure(name string, workers []*rawWorker, k int, d time.Duration, req protocol.Request) Result {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	lats := make([][]time.Duration, len(workers))
	errs := make([]int, len(workers))
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			lats[i], errs[i], err = w.window(ctx, k, req)
			if err != nil {
				once.Do(func() { firstErr = err })
			}
		}()
	}
	wg.Wait()
	return summarize(name, k*len(workers), time.Since(start), lats, errs, firstErr)
}

// valueArgs returns echo's arguments with a string value of size bytes.
func valueArgs(size int) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"value": strings.Repeat("x", size)})
	return b
}
