package remote

// Heartbeats to the callers of long calls, and the host's announcements.

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dspgo/dspgo/adapter"
)

// heartbeats tells the callers of calls running longer than a period
// that the host is alive.
func (h *Host) heartbeats() {
	defer close(h.beatDone)
	t := time.NewTicker(h.beat)
	defer t.Stop()
	period := strconv.FormatInt(h.beat.Milliseconds(), 10)
	h.announce(false)
	for {
		select {
		case <-h.stopBeat:
			return
		case now := <-t.C:
			h.inFlightMu.Lock()
			var due []string
			for reply, c := range h.inFlight {
				if now.Sub(c.started) >= h.beat/2 {
					due = append(due, reply)
				}
			}
			h.inFlightMu.Unlock()
			for _, reply := range due {
				m := nats.NewMsg(reply)
				m.Header.Set(hdrStatus, statusWorking)
				m.Header.Set(hdrHost, h.id)
				m.Header.Set(hdrBeatMs, period)
				_ = h.nc.PublishMsg(m)
			}
			h.announce(false)
		}
	}
}

// announce publishes the host's announcement.
func (h *Host) announce(gone bool) {
	st := h.Stats()
	backend, _ := adapter.StatsOf(h.a)
	b, _ := json.Marshal(Announcement{Host: h.id, Workers: backend.Workers, InFlight: st.InFlight, Calls: st.Calls,
		HeartbeatMs: h.beat.Milliseconds(), Commands: h.a.Capabilities().Commands, Gone: gone})
	_ = h.nc.Publish(h.subj.announce(), b)
}

// announceGap is the least time between two announcements a host makes
// for callers' discover requests: each is answered within it, and a flood
// of them costs the host, and every caller that hears it, one
// announcement per gap.
const announceGap = 100 * time.Millisecond

// discovered answers a caller's discover request: the host's
// announcement at once, or, within announceGap of the last one, once at
// the gap's end for every request in it.
func (h *Host) discovered() {
	h.annMu.Lock()
	defer h.annMu.Unlock()
	if h.annPending || h.annStopped {
		return
	}
	wait := announceGap - time.Since(h.annLast)
	if wait <= 0 {
		h.annLast = time.Now()
		h.announce(false)
		return
	}
	h.annPending = true
	h.annTimer = time.AfterFunc(wait, func() {
		h.annMu.Lock()
		defer h.annMu.Unlock()
		h.annPending, h.annLast = false, time.Now()
		if !h.annStopped {
			h.announce(false)
		}
	})
}

// stopDiscovered ends the answers to discover requests: none goes out
// after it, so none follows the host's last announcement.
func (h *Host) stopDiscovered() {
	h.annMu.Lock()
	defer h.annMu.Unlock()
	h.annStopped = true
	if h.annTimer != nil {
		h.annTimer.Stop()
	}
}
