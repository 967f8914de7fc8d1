package port

// The worker's life: starting it, replaying the broadcasts, supervising
// it, restarting it with backoff after a crash, and handing callers the
// live conn.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/dspgoenv"
	"github.com/dspgo/dspgo/internal/wait"
)

// start starts one worker and completes its handshake within
// StartTimeout, replaying the recorded broadcasts.
func (a *Adapter) start(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.StartTimeout)
	defer cancel()
	var w worker
	if a.opts.Handler != nil {
		m, err := startMemory(a.opts.Handler(), a.opts.MaxFrameBytes, a.opts.MaxConcurrency)
		if err != nil {
			return nil, &adapter.Error{Code: adapter.CodeUnavailable, Op: "start", Adapter: a.opts.Name,
				Message: "cannot start the in-memory worker", Err: err}
		}
		w = m
	} else {
		dir := a.opts.WorkerDir
		if dir == "" {
			// The embedded files, at every start: verified, marked in use,
			// and rewritten if anything removed them since the last one.
			var err error
			if dir, err = PrepareWorkerDir(ctx, a.python, a.opts.CacheDir); err != nil {
				return nil, &adapter.Error{Code: adapter.CodeFailedPrecondition, Op: "start", Adapter: a.opts.Name, Err: err}
			}
		}
		r := currentRun()
		args := append(a.args(), "--run-id", r.id)
		p, err := startProcess(a.starter, a.python, args, append(a.env(dir), dspgoenv.RunID+"="+r.id), a.opts.Dir, a.opts.StderrTail,
			a.opts.Logger.With("adapter", a.opts.Name, "worker_id", a.opts.WorkerID), r)
		if err != nil {
			return nil, &adapter.Error{Code: adapter.CodeUnavailable, Op: "start", Adapter: a.opts.Name,
				Message: fmt.Sprintf("cannot start %s", a.python), Err: err}
		}
		w = p
	}
	c := newConn(a.opts.Name, w, a.opts.MaxFrameBytes, a.opts.WriteTimeout, a.dropConn)
	err := c.handshake(ctx)
	if err == nil {
		err = a.replay(ctx, c) // leaves a.mu held on success
	}
	if err != nil {
		c.fail("start failed")
		<-w.exited()
		c.release()
		return nil, err
	}
	return c, nil
}

func (a *Adapter) args() []string {
	args := []string{"-m", "dspgo_worker", "--worker-id", a.opts.WorkerID,
		"--max-concurrency", strconv.Itoa(a.opts.MaxConcurrency),
		"--max-frame-bytes", strconv.Itoa(a.opts.MaxFrameBytes)}
	if a.opts.Diagnostics {
		args = append(args, "--diagnostics")
	}
	// The worker logs only what the host's logger would keep.
	level := "error"
	for _, l := range []struct {
		level slog.Level
		name  string
	}{{slog.LevelDebug, "debug"}, {slog.LevelInfo, "info"}, {slog.LevelWarn, "warning"}} {
		if a.opts.Logger.Enabled(context.Background(), l.level) {
			level = l.name
			break
		}
	}
	args = append(args, "--log-level", level)
	for _, h := range a.opts.Handlers {
		args = append(args, "--handlers", h)
	}
	return append(args, a.opts.Args...)
}

// env is the worker's minimal environment: what it needs to find its
// package, the variables named in PassEnv, and Options.Env. A PYTHONPATH
// among those (where handler modules are) comes after the worker's
// directory instead of replacing it.
func (a *Adapter) env(dir string) []string {
	env := []string{"PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8", "PYTHONUNBUFFERED=1"}
	environ := a.opts.Environ
	if environ == nil {
		environ = os.Environ
	}
	host := environ()
	for _, name := range a.opts.PassEnv {
		for _, kv := range host {
			if strings.HasPrefix(kv, name+"=") {
				env = append(env, kv)
			}
		}
	}
	env = append(env, a.opts.Env...)
	path := dir
	kept := env[:0]
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PYTHONPATH="); ok {
			if p != "" {
				path = dir + string(os.PathListSeparator) + p // the last one, as exec would keep it
			}
			continue
		}
		kept = append(kept, kv)
	}
	return append([]string{"PYTHONPATH=" + path}, kept...)
}

// replay sends the recorded broadcasts to a new worker, in order, until
// no broadcast arrived meanwhile. On success it returns with a.mu held, so
// the caller can put the worker in service before another broadcast is
// recorded.
func (a *Adapter) replay(ctx context.Context, c *conn) error {
	return a.broadcasts.Replay(&a.mu, func(req adapter.Request) error {
		if _, err := c.call(ctx, req); err != nil {
			return fmt.Errorf("replaying %s to the new worker: %w", req.Command, err)
		}
		return nil
	}, func(req adapter.Request, err error) {
		a.opts.Logger.Warn("the new worker refused a recorded broadcast; dropped", "worker", a.opts.WorkerID, "command", req.Command, "error", err)
	})
}

// dropConn takes a dying conn out of service at once, so no call is
// routed to it while the supervisor restarts the worker.
func (a *Adapter) dropConn(c *conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == c {
		a.cur, a.ready = nil, make(chan struct{})
	}
}

// setConnLocked puts a started worker in service; the caller holds a.mu
// (from replay).
func (a *Adapter) setConnLocked(c *conn) {
	a.cur = c
	a.lastErr = nil
	close(a.ready)
}

// supervise waits for the worker to die and replaces it with backoff,
// until Close.
func (a *Adapter) supervise(c *conn) {
	defer a.sup.Done()
	for {
		select {
		case <-c.dead:
		case <-a.life.Done():
			return
		}
		err := c.failure("call")
		a.opts.Logger.Warn("worker died; restarting", "adapter", a.opts.Name, "error", err)
		if a.opts.OnCrash != nil {
			a.opts.OnCrash(err)
		}
		a.mu.Lock()
		a.lastErr = err
		a.mu.Unlock()
		<-c.w.exited() // killed by fail; reaped promptly
		c.release()

		for attempt := 0; ; attempt++ {
			if !a.wait(a.backoff(attempt)) {
				return
			}
			nc, err := a.start(a.life)
			if err == nil {
				a.restarts.Add(1)
				a.setConnLocked(nc)
				a.mu.Unlock()
				if a.opts.OnReady != nil {
					a.opts.OnReady()
				}
				c = nc
				break
			}
			if a.life.Err() != nil {
				return
			}
			a.opts.Logger.Warn("worker restart failed", "adapter", a.opts.Name, "attempt", attempt+1, "error", err)
			a.mu.Lock()
			a.lastErr = err
			a.mu.Unlock()
		}
	}
}

// backoff returns the delay before restart attempt n, and records the
// restart against the window.
func (a *Adapter) backoff(n int) time.Duration {
	r := a.opts.Restart
	d := r.Min << min(n, 30)
	if d > r.Max || d <= 0 {
		d = r.Max
	}
	now := time.Now()
	a.mu.Lock()
	keep := a.restartLog[:0]
	for _, t := range a.restartLog {
		if now.Sub(t) < r.Window {
			keep = append(keep, t)
		}
	}
	a.restartLog = append(keep, now)
	wasThrottled := a.throttled
	a.throttled = len(a.restartLog) > r.MaxRestarts
	if a.throttled {
		d = r.Max
		if !wasThrottled && a.cur == nil {
			// Callers waiting for the restart fail fast now, instead of
			// at their deadline.
			close(a.ready)
			a.ready = make(chan struct{})
		}
	}
	a.mu.Unlock()
	if r.Jitter > 0 {
		d = time.Duration(float64(d) * (1 + r.Jitter*(2*rand.Float64()-1)))
	}
	return d
}

// wait waits d unless the adapter closes first.
func (a *Adapter) wait(d time.Duration) bool { return wait.Sleep(a.life, d) }

// conn returns the live worker, waiting for a restart within ctx.
func (a *Adapter) conn(ctx context.Context, op string) (*conn, error) {
	for {
		a.mu.Lock()
		c, ready, closed, throttled, lastErr := a.cur, a.ready, a.closed, a.throttled, a.lastErr
		a.mu.Unlock()
		switch {
		case closed:
			return nil, adapter.Wrap(adapter.ErrClosed, a.opts.Name, op)
		case c != nil:
			return c, nil
		case throttled:
			return nil, &adapter.Error{Code: adapter.CodeUnavailable, Op: op, Adapter: a.opts.Name, Err: ErrNotSent,
				Message: fmt.Sprintf("the worker crashed more than %d times in %v; last: %v", a.opts.Restart.MaxRestarts, a.opts.Restart.Window, lastErr)}
		case a.opts.NoWait:
			return nil, &adapter.Error{Code: adapter.CodeUnavailable, Op: op, Adapter: a.opts.Name, Err: ErrNotSent,
				Message: fmt.Sprintf("the worker is restarting (down: %v)", lastErr)}
		}
		select {
		case <-ready:
		case <-a.closeDone:
		case <-a.life.Done():
		case <-ctx.Done():
			err := adapter.Wrap(ctx.Err(), a.opts.Name, op)
			if lastErr != nil {
				err.(*adapter.Error).Message = fmt.Sprintf("waiting for the worker to restart (down: %v)", lastErr)
			}
			return nil, err
		}
	}
}
