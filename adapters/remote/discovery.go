package remote

// The hosts a caller knows alive, from their announcements.

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// hostSeen is a host's last announcement and when it came.
type hostSeen struct {
	Announcement
	at time.Time
}

// Hosts returns the last announcement of every host alive: heard from
// within three of its heartbeat periods and not gone, sorted by id. A
// host is listed from its first announcement after New, which comes
// within one period.
func (a *Adapter) Hosts() []Announcement {
	now := time.Now()
	a.hostsMu.Lock()
	defer a.hostsMu.Unlock()
	list := make([]Announcement, 0, len(a.hosts))
	for id, h := range a.hosts {
		if now.Sub(h.at) > missedBeats*time.Duration(h.HeartbeatMs)*time.Millisecond {
			delete(a.hosts, id)
			continue
		}
		list = append(list, h.Announcement)
	}
	slices.SortFunc(list, func(x, y Announcement) int { return strings.Compare(x.Host, y.Host) })
	return list
}

func (a *Adapter) onAnnounce(m *nats.Msg) {
	var ann Announcement
	if json.Unmarshal(m.Data, &ann) != nil || ann.Host == "" {
		return
	}
	a.hostsMu.Lock()
	defer a.hostsMu.Unlock()
	if ann.Gone {
		delete(a.hosts, ann.Host)
		return
	}
	if ann.HeartbeatMs <= 0 {
		ann.HeartbeatMs = a.beat.Milliseconds()
	}
	a.hosts[ann.Host] = hostSeen{Announcement: ann, at: time.Now()}
}
