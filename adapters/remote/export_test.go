package remote

// ReplySubject returns the subject of a's subscription to its replies.
func ReplySubject(a *Adapter) string { return a.replySubject() }
