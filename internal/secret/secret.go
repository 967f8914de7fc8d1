// Package secret hides credentials in text shown to people: the
// configuration's explanation, logs, error messages.
package secret

import "strings"

// Mask replaces what is hidden.
const Mask = "***"

// URL returns s with the credentials of its authority hidden: everything
// between "scheme://" (the start, without a scheme) and the last '@'
// becomes Mask, so "nats://user:pa%2Fss@host:4222" shows as
// "nats://***@host:4222". It hides a user name alone too (NATS takes a
// token there), and it does not parse s: credentials holding characters a
// URL may not hold raw ('/', '#', '?', '@', '"', '\', a bad %-escape), or
// encoded any way at all, are hidden whole all the same, where a parser
// would fail (and the URL be shown as it is) or end the authority early
// (and show the rest). A URL without '@' is returned as it is. An '@'
// after the host (in a path or a query) hides the host too: shown too
// little, never too much.
func URL(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	start := 0
	if i := strings.Index(s[:at], "://"); i >= 0 && isScheme(strings.TrimSpace(s[:i])) {
		start = i + len("://")
	}
	return s[:start] + Mask + s[at:]
}

// URLs is URL of each of comma-separated URLs (a NATS server list), which
// it keeps separated as they were.
func URLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = URL(p)
	}
	return strings.Join(parts, ",")
}

// isScheme reports whether s is a URL scheme: a letter, then letters,
// digits, '+', '-' and '.'.
func isScheme(s string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}
