package remote

import (
	"fmt"
	"time"

	"github.com/dspgo/dspgo/command"
)

// Role is what a NATS user of a deployment may do. A server that
// authenticates its clients gives each user the permissions of one role
// (see Permissions): package embedded does, and docs/scale-out.md shows
// the same permissions in a nats-server configuration.
type Role string

// The roles of a deployment.
const (
	// RoleHost is a worker host ("dspgo workers", Serve): it takes the
	// calls through the queue group, answers the callers' inboxes, and
	// reads and writes the shared state.
	RoleHost Role = "host"
	// RoleCaller is a process using the remote adapter (New): it sends
	// calls, cancels and credit to the hosts, reads its own inbox and the
	// hosts' announcements, answers the tool calls of its own calls, and
	// of the shared state may only record the configure_lm broadcast
	// (which every host checks against its own LM allowlist).
	RoleCaller Role = "caller"
)

// Roles lists the roles, host first.
func Roles() []Role { return []Role{RoleHost, RoleCaller} }

// InboxRoot is the first token of every inbox: a user's inbox is
// "_INBOX.<user>" (see InboxPrefix), so that hosts may answer any
// caller's inbox ("_INBOX.>") while each caller reads only its own.
const InboxRoot = "_INBOX"

// CallerResponseTTL is how long after a host's tool call reaches a caller
// the caller may answer it (Grants.ResponseTTL of RoleCaller): a tool
// that runs longer cannot answer.
const CallerResponseTTL = time.Hour

// Grants are the NATS permissions of one user: every subject not listed
// is refused, with a permissions violation.
type Grants struct {
	// Publish lists the subjects the user may publish to.
	Publish []string
	// Subscribe lists the subjects the user may subscribe to. An entry
	// "subject queue" allows only a queue subscription in that group.
	Subscribe []string
	// ResponseTTL, when positive, lets the user answer each request it
	// receives once, within this time, whatever the reply subject (NATS's
	// allow_responses). Zero means no such answers.
	ResponseTTL time.Duration
}

// InboxPrefix is the inbox prefix of the NATS user named user: its
// connections must use it (nats.CustomInboxPrefix; Dial does with
// DialOptions.InboxPrefix) and its permissions let it read no other.
func InboxPrefix(user string) string { return InboxRoot + "." + user }

// Permissions returns the permissions of the user named user in role, in
// the deployment of subject prefix prefix and hosts' queue group
// queueGroup (empty means DefaultPrefix and DefaultQueueGroup). user must
// be a subject token (letters, digits, '_' and '-'; an NKEY user's
// public key is one): it names the user's inbox, the only one the user
// may read.
//
// A host may: take "<prefix>.call" only in the queue group; take its
// own subjects "<prefix>.host.<id>.call|cancel|credit" and
// "<prefix>.discover"; answer NATS micro's "$SRV" requests; publish to
// any inbox (replies, heartbeats, chunks, tool calls), to
// "<prefix>.announce" and to "<prefix>.host.<id>.call" (to check that its
// id is free); and create, read, write and watch the state bucket
// "<prefix>_state" through JetStream's API, but no other stream.
//
// A caller may: publish calls ("<prefix>.call", "<prefix>.host.*.call"),
// cancels, credit and "<prefix>.discover"; read its own inbox and
// "<prefix>.announce"; answer the tool calls hosts send it; read the
// state bucket's stream information and put "broadcast.configure_lm" and
// "broadcast.configure_lm.<name>" in it (the broadcasts it makes when no
// host serves: the default LM and named ones). It cannot take calls, join
// the queue group, read another inbox, read the state, or write any other
// key.
func Permissions(role Role, prefix, queueGroup, user string) (Grants, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if queueGroup == "" {
		queueGroup = DefaultQueueGroup
	}
	if err := checkPrefix(prefix); err != nil {
		return Grants{}, err
	}
	if !tokenRE.MatchString(queueGroup) {
		return Grants{}, fmt.Errorf("queue group %q may hold only letters, digits, '_' and '-'", queueGroup)
	}
	if !tokenRE.MatchString(user) {
		return Grants{}, fmt.Errorf("user %q must be a subject token (letters, digits, '_' and '-'): it names the user's inbox", user)
	}
	s := subjects{prefix}
	bucket := s.bucket()
	stream := "KV_" + bucket
	inbox := InboxPrefix(user) + ".>"
	anyHost := func(kind string) string { return prefix + ".host.*." + kind }
	switch role {
	case RoleHost:
		return Grants{
			Publish: []string{
				InboxRoot + ".>",
				s.announce(),
				anyHost("call"),
				"$JS.API.INFO",
				"$JS.API.STREAM.INFO." + stream,
				"$JS.API.STREAM.CREATE." + stream,
				"$JS.API.CONSUMER.CREATE." + stream,
				"$JS.API.CONSUMER.CREATE." + stream + ".>",
				"$JS.API.CONSUMER.DELETE." + stream + ".>",
				"$JS.API.CONSUMER.INFO." + stream + ".>",
				"$JS.API.DIRECT.GET." + stream + ".>",
				"$JS.API.STREAM.MSG.GET." + stream,
				"$JS.FC." + stream + ".>",
				"$KV." + bucket + ".>",
			},
			Subscribe: []string{
				s.call() + " " + queueGroup,
				anyHost("call"),
				anyHost("cancel"),
				anyHost("credit"),
				s.discover(),
				"$SRV.PING", "$SRV.INFO", "$SRV.STATS",
				"$SRV.*." + ServiceName, "$SRV.*." + ServiceName + ".*",
				inbox,
			},
		}, nil
	case RoleCaller:
		return Grants{
			Publish: []string{
				s.call(),
				anyHost("call"),
				anyHost("cancel"),
				anyHost("credit"),
				s.discover(),
				"$JS.API.STREAM.INFO." + stream,
				"$KV." + bucket + ".broadcast." + command.ConfigureLM,
				"$KV." + bucket + ".broadcast." + command.ConfigureLM + ".*", // a named LM
			},
			Subscribe:   []string{inbox, s.announce()},
			ResponseTTL: CallerResponseTTL,
		}, nil
	}
	return Grants{}, fmt.Errorf("role %q is unknown (known: host, caller)", role)
}
