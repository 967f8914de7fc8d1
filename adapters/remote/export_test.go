package remote

import "time"

// ReplySubject returns the subject of a's subscription to its replies.
func ReplySubject(a *Adapter) string { return a.replySubject() }

// SetStateWait sets how long h's calls wait for the shared state to reach
// the revision their callers name (a minute).
func SetStateWait(h *Host, d time.Duration) { h.stateWait.Store(int64(d)) }
