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
