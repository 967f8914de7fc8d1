package conformance

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
)

// Need names what some cases need from the adapter or from the harness.
// A case whose need is missing is skipped, saying which; Run fails when
// a case is skipped for a need that Harness.Lacks does not list.
type Need string

// Needs of the cases.
const (
	// NeedStreaming: Capabilities.Streaming, and adapter.Streamer.
	NeedStreaming Need = "streaming"
	// NeedTools: Capabilities.Tools (workers call Request.Tools).
	NeedTools Need = "tools"
	// NeedStats: adapter.Statser or adapter.StatsReporter.
	NeedStats Need = "stats"
	// NeedFrameLimit: Capabilities.MaxFrameBytes above zero.
	NeedFrameLimit Need = "frame_limit"
	// NeedFaults: Harness.Faults.Crash.
	NeedFaults Need = "faults"
)

// needs are the checks behind the Needs, in the order summaries list
// them. Each returns why the need is missing, or "".
var needs = []struct {
	need  Need
	check func(*Env) string
	fix   string
}{
	{NeedStreaming, lacksStreaming, "implement adapter.Streamer and declare Capabilities.Streaming"},
	{NeedTools, needTools, "serve Request.Tools and declare Capabilities.Tools"},
	{NeedStats, needStats, "implement adapter.Statser"},
	{NeedFrameLimit, needFrameLimit, "declare Capabilities.MaxFrameBytes"},
	{NeedFaults, needFaults, "set Harness.Faults.Crash"},
}

// missingNeeds returns each need env lacks, with why.
func missingNeeds(env *Env) map[Need]string {
	missing := map[Need]string{}
	for _, n := range needs {
		if why := n.check(env); why != "" {
			missing[n.need] = why
		}
	}
	return missing
}

// needOf returns the need a case was skipped for, from the reason it
// gave; "" when the reason is no need's (a declared capability that is
// not implemented, or a case's own reason).
func needOf(env *Env, reason string) Need {
	for need, why := range missingNeeds(env) {
		if why == reason {
			return need
		}
	}
	return ""
}

// skipLedger collects the skips of a Run, for its summary.
type skipLedger struct {
	missing map[Need]string   // the needs the adapter or harness lacks, with why
	cases   map[Need][]string // need → the cases skipped for it ("" for other reasons)
	reasons map[string]string // case → reason, for skips of no need
	total   int
}

func (l *skipLedger) add(env *Env, name, reason string) {
	if l.cases == nil {
		l.cases, l.reasons = map[Need][]string{}, map[string]string{}
	}
	need := needOf(env, reason)
	l.cases[need] = append(l.cases[need], name)
	if need == "" {
		l.reasons[name] = reason
	}
	l.total++
}

// problems returns what the summary fails for: skips of a need that
// lacks does not list, skips of no need, and needs that lacks lists but
// the adapter and harness have.
func (l *skipLedger) problems(lacks []Need, ran int) []string {
	var out []string
	for _, n := range needs {
		names := l.cases[n.need]
		if len(names) == 0 || slices.Contains(lacks, n.need) {
			continue
		}
		out = append(out, fmt.Sprintf("%d skipped for want of %s (%s): %s; %s, or list conformance.Need%s in Harness.Lacks to accept these skips",
			len(names), n.need, strings.Join(names, ", "), l.missing[n.need], n.fix, exportedName(n.need)))
	}
	others := l.cases[""]
	sort.Strings(others)
	for _, name := range others {
		out = append(out, fmt.Sprintf("%s skipped: %s", name, l.reasons[name]))
	}
	if l.missing != nil {
		for _, need := range lacks {
			if _, ok := l.missing[need]; !ok {
				out = append(out, fmt.Sprintf("Harness.Lacks lists %q, but the adapter and harness have it: remove it", need))
			}
		}
	}
	if len(out) > 0 {
		out = append([]string{fmt.Sprintf("%d of %d cases skipped, and go test hides skips without -v:", l.total, ran)}, out...)
	}
	return out
}

// exportedName spells a need as the name of its constant's suffix.
func exportedName(n Need) string {
	var b strings.Builder
	for _, part := range strings.Split(string(n), "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// caseCapabilitiesDeclared checks that every capability the adapter
// declares is there: a declared capability that is not implemented would
// otherwise only skip the cases that test it.
func caseCapabilitiesDeclared(t TB, env *Env) {
	caps := env.Adapter.Capabilities()
	if caps.Streaming {
		_, ok := env.Adapter.(adapter.Streamer)
		assert.True(t, ok, "%T declares Capabilities.Streaming but is not an adapter.Streamer (no Stream method)", env.Adapter)
	}
	if caps.Broadcast {
		_, ok := env.Adapter.(adapter.Broadcaster)
		assert.True(t, ok, "%T declares Capabilities.Broadcast but is not an adapter.Broadcaster (no Broadcast method)", env.Adapter)
	}
	if caps.MaxConcurrency < 0 || caps.MaxFrameBytes < 0 {
		t.Errorf("%T declares a negative limit: MaxConcurrency %d, MaxFrameBytes %d", env.Adapter, caps.MaxConcurrency, caps.MaxFrameBytes)
	}
	if len(caps.Commands) > 0 {
		resp, err := env.Adapter.Call(env.Ctx, adapter.Request{Command: command.Describe})
		require.NoError(t, err)
		var d struct {
			Commands []struct{ Name string } `json:"commands"`
		}
		require.NoError(t, json.Unmarshal(resp.Result, &d))
		described := map[string]bool{}
		for _, c := range d.Commands {
			described[c.Name] = true
		}
		for _, name := range caps.Commands {
			assert.True(t, described[name], "%T declares the command %q in Capabilities.Commands, but describe does not list it", env.Adapter, name)
		}
	}
}
