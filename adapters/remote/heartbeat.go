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

// A host answers callers' discover requests at once while they come no
// faster than one per announceGap on average, with bursts of up to
// announceBurst (callers starting together); past that, the requests of
// one gap share one announcement at its end. A flood of them then costs
// the host, and every caller that hears it, one announcement per gap.
const (
	announceGap   = 100 * time.Millisecond
	announceBurst = 64
)

// discovered answers a caller's discover request (see announceGap).
func (h *Host) discovered() {
	h.annMu.Lock()
	defer h.annMu.Unlock()
	if h.annPending || h.annStopped {
		return
	}
	now := time.Now()
	if h.annRefill.IsZero() {
		h.annTokens = announceBurst
	} else {
		h.annTokens = min(announceBurst, h.annTokens+float64(now.Sub(h.annRefill))/float64(announceGap))
	}
	h.annRefill = now
	if h.annTokens >= 1 {
		h.annTokens--
		h.announce(false)
		return
	}
	h.annPending = true
	h.annTimer = time.AfterFunc(time.Duration((1-h.annTokens)*float64(announceGap)), func() {
		h.annMu.Lock()
		defer h.annMu.Unlock()
		h.annPending, h.annTokens, h.annRefill = false, 0, time.Now()
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
