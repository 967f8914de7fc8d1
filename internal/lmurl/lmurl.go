// Package lmurl checks the base URL of an OpenAI-compatible LM endpoint
// (configure_lm's base_url, the configuration's lm.base_url) by the rules
// the Python worker applies too (dspgo_worker.lmconfig.base_url_problem);
// protocol/testdata/base_urls.json holds the cases both check.
package lmurl

import (
	"net/netip"
	"strings"
)

// Example is the base URL the messages show as the form to write.
const Example = "http://localhost:8000/v1"

// encodeCredentials is what a message about the port adds when an '@'
// follows the authority: a '/', '?' or '#' in credentials ended it early.
const encodeCredentials = "percent-encode any '/', '?', '#' or '@' in the URL's credentials"

// Problem returns what is wrong with raw as an LM endpoint's base URL,
// worded to follow its subject ("base_url has no host …"), or "" when it
// is fine. The text never quotes raw, which may hold credentials.
//
// A base URL is ASCII without spaces or control characters: http:// or
// https:// (either case); optional credentials, up to the last '@' of
// the authority (which ends at the first '/', '?' or '#'); a host, either
// a name or IPv4 address of letters, digits, '-', '.' and '_', or an IPv6
// address in brackets (its zone after '%' of letters, digits, '-', '.',
// '_' and '~'); an optional port after ':' from 1 to 65535; then any path.
func Problem(raw string) string {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c >= 0x80:
			return "holds a non-ASCII character (percent-encode it in the path; write an internationalized host name in its xn-- form)"
		case c <= ' ' || c == 0x7f:
			return "holds a space or a control character (write a space in the path as %20; remove any other)"
		}
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (!strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https")) {
		return "is not an http or https URL (write it whole, such as " + Example + ")"
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	hostport := authority[strings.LastIndexByte(authority, '@')+1:]
	var port string
	hasPort := false
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "has an IPv6 address without its closing ']' (write one as http://[::1]:8000/v1)"
		}
		if !isIPv6(hostport[1:end]) {
			return "has a host in brackets that is not an IPv6 address"
		}
		after := hostport[end+1:]
		if after != "" && after[0] != ':' {
			return "has something other than :port after the ']' of its IPv6 address"
		}
		if after != "" {
			port, hasPort = after[1:], true
		}
	} else {
		if strings.Count(hostport, ":") > 1 {
			return "has an IPv6 address outside brackets (write one as http://[::1]:8000/v1)"
		}
		var host string
		host, port, hasPort = strings.Cut(hostport, ":")
		if host == "" {
			return "has no host (write it whole, such as " + Example + ")"
		}
		if !isHostName(host) {
			return "has a host with characters other than letters, digits, '-', '.' and '_' (an IPv6 address goes in brackets)"
		}
	}
	if hasPort && !isPort(port) {
		if strings.Contains(rest[len(authority):], "@") { // credentials cut short, their rest read as the port
			return "has a port that is not a number from 1 to 65535 (" + encodeCredentials + ")"
		}
		return "has a port that is not a number from 1 to 65535"
	}
	return ""
}

// isIPv6 reports whether s, the text between a URL's brackets, is an IPv6
// address, with a zone or without one.
func isIPv6(s string) bool {
	addr, zone, hasZone := strings.Cut(s, "%")
	if hasZone && (zone == "" || !allOf(zone, "-._~")) {
		return false
	}
	a, err := netip.ParseAddr(addr)
	return err == nil && a.Is6()
}

// isHostName reports whether s is made of letters, digits, '-', '.' and
// '_': a host name or an IPv4 address.
func isHostName(s string) bool {
	return allOf(s, "-._")
}

// allOf reports whether every byte of s is an ASCII letter or digit or
// one of extra.
func allOf(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// isPort reports whether s is a port: 1 to 5 decimal digits, their value
// from 1 to 65535.
func isPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n >= 1 && n <= 65535
}
