package pool

import (
	"context"
	"sync"
	"time"

	"github.com/dspgo/dspgo/internal/proc"
)

// janitor retires workers by age, idleness and memory, reaps idle
// overflow workers, and runs the health checks, until Close.
func (p *Pool) janitor() {
	defer p.bg.Done()
	tick := p.janitorTick()
	t := time.NewTicker(tick)
	defer t.Stop()
	lastHealth := time.Now()
	for {
		select {
		case <-p.life.Done():
			return
		case now := <-t.C:
			p.retireDue(now)
			if h := p.opts.HealthInterval; h > 0 && now.Sub(lastHealth) >= h {
				lastHealth = now
				p.checkHealth()
			}
		}
	}
}

// janitorTick is half the shortest period the janitor watches, at least
// 5 ms.
func (p *Pool) janitorTick() time.Duration {
	tick := time.Duration(0)
	consider := func(d time.Duration) {
		if d > 0 && (tick == 0 || d < tick) {
			tick = d
		}
	}
	consider(p.opts.HealthInterval)
	consider(p.opts.Recycle.MaxAge / 2)
	consider(p.opts.Recycle.MaxIdle / 2)
	if p.opts.MaxOverflow > 0 {
		consider(p.opts.OverflowIdle / 2)
	}
	if tick == 0 {
		tick = time.Second
	}
	return max(tick, 5*time.Millisecond)
}

// retireDue retires the workers whose time has come.
func (p *Pool) retireDue(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.opts.Recycle
	for _, w := range append([]*worker(nil), p.workers...) {
		if w.state != ready {
			continue
		}
		idle := w.inFlight == 0 && now.Sub(w.lastUsed) >= 0
		switch {
		case w.maxAge > 0 && now.Sub(w.startedAt) >= w.maxAge:
			p.retireLocked(w, "max_age")
		case r.MaxIdle > 0 && idle && now.Sub(w.lastUsed) >= r.MaxIdle:
			p.retireLocked(w, "max_idle")
		case w.overflow && idle && now.Sub(w.lastUsed) >= p.opts.OverflowIdle:
			p.retireLocked(w, "overflow_idle")
		case r.MaxRSSBytes > 0 && w.rss.Load() > r.MaxRSSBytes:
			p.retireLocked(w, "max_rss")
		}
	}
}

// checkHealth pings every ready worker on its control path (the worker
// answers ping on its reading thread, and the port never queues it behind
// calls) and kills those that fail; their port restarts them. It also
// reads each worker's resident memory for Recycle.MaxRSSBytes.
func (p *Pool) checkHealth() {
	p.mu.Lock()
	var targets []*worker
	for _, w := range p.workers {
		if w.state == ready && w.p.Ready() {
			targets = append(targets, w)
		}
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info := w.p.Worker()
			w.rss.Store(proc.RSS(info.PID))
			ctx, cancel := context.WithTimeout(p.life, p.opts.HealthTimeout)
			defer cancel()
			if err := w.p.Ping(ctx); err != nil && p.life.Err() == nil && w.p.Ready() && w.p.Worker().PID == info.PID {
				p.opts.Logger.Warn("worker failed its health check; killing it", "pool", p.opts.Name, "worker", w.id, "error", err)
				p.mu.Lock()
				p.st.healthFailures++
				p.mu.Unlock()
				w.p.Kill()
			}
		}()
	}
	wg.Wait()
}
