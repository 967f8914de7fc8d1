package remote

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/internal/wire"
	"github.com/dspgo/dspgo/protocol"
)

// Defaults shared by the adapter and the host.
const (
	// DefaultPrefix is the subject prefix when none is configured.
	DefaultPrefix = "dspgo"
	// DefaultQueueGroup is the hosts' queue group when none is configured.
	DefaultQueueGroup = "dspgo-workers"
	// DefaultHeartbeat is the period of a host's heartbeats when none is
	// configured.
	DefaultHeartbeat = time.Second
	// ServiceName is the name worker hosts register under with NATS
	// micro: "$SRV.PING.dspgo" reaches every host.
	ServiceName = "dspgo"
	// missedBeats is how many heartbeat periods a caller waits without
	// hearing from the host before it probes the host, and then again for
	// the host to answer each probe.
	missedBeats = 3
	// maxProbes is how many probes a silent host may leave unanswered
	// before the caller gives the call up: a host that the server still
	// counts (its machine vanished without closing its connection, or it
	// is cut off) cannot answer, but neither can one a loaded machine has
	// not scheduled for a while.
	maxProbes = 3
	// DeadlineMargin is how late past its context's deadline (or its
	// cancellation, or Close) a call of the remote adapter may return,
	// whatever the hosts, the NATS servers and the connection do: nothing
	// on a call's way waits on the network without also waiting on the
	// context, so the margin is only the scheduling of the caller's own
	// goroutines, on a machine with a CPU to spare. Where more goroutines
	// want a CPU than there are CPUs, they wait for one like any others
	// (docs/reliability.md, "Remote soak figures").
	DeadlineMargin = 100 * time.Millisecond
)

// Message headers. A request's body is its JSON arguments; a success
// reply's body is the result; a failure's is a protocol error object.
const (
	hdrCommand  = "Dspgo-Command"
	hdrSession  = "Dspgo-Session"
	hdrDeadline = "Dspgo-Deadline-Ms"  // time left, relative, so clocks need not agree
	hdrStateRev = "Dspgo-State-Rev"    // request: state the host must have applied; reply: state written
	hdrBcast    = "Dspgo-Broadcast"    // request: apply on every host
	hdrHost     = "Dspgo-Host"         // the host that answers
	hdrWorker   = "Dspgo-Worker"       // the worker that served, on a success
	hdrStatus   = "Dspgo-Status"       // statusAccepted or statusWorking: not the final reply
	hdrError    = "Dspgo-Error"        // the error code of a failure
	hdrBeatMs   = "Dspgo-Heartbeat-Ms" // on a heartbeat: the host's period
	hdrNATS     = "Status"             // NATS's own status header: "503" means no responders

	hdrStream  = "Dspgo-Stream" // request: stream with this credit
	hdrSeq     = "Dspgo-Seq"    // chunk: its number, from 0
	hdrChunks  = "Dspgo-Chunks" // final reply of a stream: chunks sent
	hdrCredit  = "Dspgo-Credit" // credit: chunks granted
	hdrReplyTo = "Dspgo-Reply"  // credit: the stream's reply subject
	hdrTools   = "Dspgo-Tools"  // request: where the host calls the caller's tools
	hdrTool    = "Dspgo-Tool"   // tool call: the tool's name
	hdrProbe   = "Dspgo-Probe"  // probe: the reply subject of the call asked about

	statusAccepted = "accepted"
	statusWorking  = "working"
	statusChunk    = "chunk"
	statusUnknown  = "unknown" // a probe's answer: the host has no such call

	// toolPrefix marks a call's tool subject on the caller's inbox:
	// reply tokens are lowercase base 36, so they never start with it.
	toolPrefix = "T"
	// probePrefix marks the inbox token on which a host answers a probe
	// of a call, as toolPrefix does.
	probePrefix = "P"
)

// probeSubject is the subject on which the caller of the call with reply
// subject reply takes the answers to its probes: the reply's last token,
// on the same inbox, marked with probePrefix.
func probeSubject(reply string) string {
	i := strings.LastIndexByte(reply, '.')
	return reply[:i+1] + probePrefix + reply[i+1:]
}

// toolToken is the inbox token on which the host calls the tools of the
// call with reply token token.
func toolToken(token string) string { return toolPrefix + token }

// isInbox reports whether subject is under InboxRoot: the only subjects a
// host answers.
func isInbox(subject string) bool { return strings.HasPrefix(subject, InboxRoot+".") }

// toolsSubject is the subject on which the caller of the request with
// reply subject reply takes its tool calls: the reply's last token, on the
// same inbox, marked with toolPrefix.
func toolsSubject(reply string) string {
	i := strings.LastIndexByte(reply, '.')
	return reply[:i+1] + toolToken(reply[i+1:])
}

// hostCredit is the subject on which host id takes stream credit.
func (s subjects) hostCredit(id string) string { return s.prefix + ".host." + id + ".credit" }

// subjects are the subjects of one deployment (one prefix).
type subjects struct {
	prefix string
}

// call is the subject every host serves through the queue group.
func (s subjects) call() string { return s.prefix + ".call" }

// hostCall is the subject only host id serves, for session affinity.
func (s subjects) hostCall(id string) string { return s.prefix + ".host." + id + ".call" }

// announce is the subject on which every host says, each heartbeat
// period, that it is alive and how many workers it has.
func (s subjects) announce() string { return s.prefix + ".announce" }

// discover is the subject on which a new caller asks every host to
// announce itself at once.
func (s subjects) discover() string { return s.prefix + ".discover" }

// hostCancel is the subject on which host id takes cancellations.
func (s subjects) hostCancel(id string) string { return s.prefix + ".host." + id + ".cancel" }

// bucket is the JetStream key-value bucket of the deployment's shared state.
func (s subjects) bucket() string {
	b := []byte(s.prefix + "_state")
	for i, c := range b {
		if c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

var (
	prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
	tokenRE  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// checkPrefix reports a prefix that is not a valid subject prefix.
func checkPrefix(prefix string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("subject prefix %q must be dot-separated tokens of letters, digits, '_' and '-'", prefix)
	}
	return nil
}

// Announcement is what a host publishes on "<prefix>.announce" every
// heartbeat period, and once more with Gone set when it stops.
type Announcement struct {
	// Host is the host's id.
	Host string `json:"host"`
	// Workers is the number of the host's workers able to serve.
	Workers int `json:"workers"`
	// InFlight is the number of calls the host is serving.
	InFlight int `json:"in_flight"`
	// Calls counts the calls the host has served.
	Calls uint64 `json:"calls"`
	// HeartbeatMs is the host's heartbeat period in milliseconds.
	HeartbeatMs int64 `json:"heartbeat_ms"`
	// Commands are the commands the host's backend accepts; empty when
	// it does not say.
	Commands []string `json:"commands,omitempty"`
	// Gone is set in a host's last announcement, when it drains.
	Gone bool `json:"gone,omitempty"`
}

// setDeadline sets the deadline header from d, the time left; it reports
// false when no time is left.
func setDeadline(h nats.Header, d time.Duration) bool {
	ms := d.Milliseconds()
	if ms <= 0 {
		return false
	}
	h.Set(hdrDeadline, strconv.FormatInt(ms, 10))
	return true
}

// headerUint reads an unsigned header; absent or malformed is 0.
func headerUint(h nats.Header, key string) uint64 {
	v := h.Get(key)
	if v == "" {
		return 0
	}
	n, _ := strconv.ParseUint(v, 10, 64)
	return n
}

// errorf returns an *adapter.Error of the adapter and operation, with a
// message formatted as by fmt.Sprintf.
func errorf(code adapter.Code, adapterName, op, format string, args ...any) error {
	e := adapter.Errorf(code, format, args...)
	e.Adapter, e.Op = adapterName, op
	return e
}

// setError makes m a failure reply: err as a protocol error object, its
// code in the error header.
func setError(m *nats.Msg, err error) {
	body := wire.Body(err)
	m.Data, _ = json.Marshal(body)
	m.Header.Set(hdrError, body.Code)
}

// replyError returns the error a failure reply carries (see setError), or
// nil for a success; from names the sender in a malformed reply's error.
func replyError(m *nats.Msg, adapterName, op, from string) error {
	if m.Header.Get(hdrError) == "" {
		return nil
	}
	var body protocol.ErrorBody
	if json.Unmarshal(m.Data, &body) != nil || body.Code == "" {
		return errorf(adapter.CodeInternal, adapterName, op, "malformed error reply from %s: %.200s", from, m.Data)
	}
	return wire.Error(adapterName, op, &body)
}
