package remote

// The shared state: broadcasts replayed and watched, program specs kept.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/wait"
)

// openState opens the shared state bucket and replays its broadcasts,
// within ctx or, when it has no deadline, 30 s.
func (h *Host) openState(ctx context.Context, replicas int) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	var kv jetstream.KeyValue
	var old string
	err := retry(ctx, h.nc, func(ctx context.Context) (err error) {
		kv, old, err = openBucket(ctx, h.nc, h.subj, replicas)
		return err
	})
	if err != nil {
		return stateError(Name, "serve", err)
	}
	if old != "" {
		h.log.Warn("the shared state bucket was made by an earlier version: "+old+
			"; delete it while no host runs (nats kv rm "+h.subj.bucket()+"), and a host makes it anew", "bucket", h.subj.bucket())
	}
	h.kv = kv
	var w jetstream.KeyWatcher
	err = retry(ctx, h.nc, func(context.Context) (err error) { w, err = kv.Watch(h.callCtx, "broadcast.>"); return err })
	if err != nil {
		return stateError(Name, "serve", fmt.Errorf("watching the state bucket %q: %w", h.subj.bucket(), err))
	}
	h.watcher = w
	// The recorded broadcasts come first, then nil: apply them before
	// serving, so no call ever meets an older configuration.
	tooMany := 0
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return h.unavailable("serve", errors.New("the state watch ended"))
			}
			if e == nil {
				if tooMany > 0 {
					h.log.Error("the shared state holds more named LMs than a worker keeps; skipped", "skipped", tooMany, "kept", program.MaxNamedLMs)
				}
				h.watching = true
				go h.watch()
				return nil
			}
			if err := h.applyEntry(ctx, e); err != nil {
				if !refused(err) {
					return err
				}
				// A broadcast recorded without a host to check it
				// (see Adapter.Broadcast) may be invalid: it must not
				// keep every host from starting. Named LMs past the
				// workers' limit are counted, not each logged.
				if adapter.CodeOf(err) == adapter.CodeResourceExhausted {
					tooMany++
					continue
				}
				h.log.Error("a recorded broadcast was refused; skipped", "key", e.Key(), "revision", e.Revision(), "err", err)
			}
		case <-ctx.Done():
			return adapter.Wrap(ctx.Err(), Name, "serve")
		}
	}
}

// retry runs op, a request to JetStream on nc, until it succeeds, fails
// for a reason other than JetStream being briefly unable to answer (a
// stream still electing its leader, a server of the cluster lost), or
// ctx ends. Each attempt gets a context of its own that ends after
// attemptTimeout: a JetStream request whose answer is lost (no leader yet
// to answer it) waits until its context ends, and must not take the whole
// of ctx with it. An attempt that failed while the server refused nc a
// publish to JetStream's API ends the retries with *stateRefused; an
// attempt still waiting refusalGrace after such a refusal ends then, not
// at attemptTimeout (a refused request is never answered). A nil nc is
// never found refused.
func retry(ctx context.Context, nc *nats.Conn, op func(context.Context) error) error {
	backoff := 25 * time.Millisecond
	for {
		var before error
		if nc != nil {
			before = nc.LastError()
		}
		attempt, cancel := context.WithTimeout(ctx, attemptTimeout)
		refused := endWhenRefused(nc, before, cancel)
		err := op(attempt)
		cancel()
		if s := refused(); err != nil && s != "" && ctx.Err() == nil {
			return &stateRefused{subject: s, err: err}
		}
		if err == nil || !transient(err) {
			return err
		}
		if s := refusedJetStream(nc, before); s != "" {
			return &stateRefused{subject: s, err: err}
		}
		if ctx.Err() != nil {
			return err
		}
		if !wait.Sleep(ctx, backoff) {
			return errors.Join(err, ctx.Err())
		}
		backoff = min(2*backoff, time.Second)
	}
}

// attemptTimeout bounds one attempt of retry: JetStream's own default
// time-out of a request.
const attemptTimeout = 5 * time.Second

// transient reports a JetStream failure that a moment may cure; a
// deadline here is JetStream's own time-out of one request (retry stops
// when its own context ends).
func transient(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, context.DeadlineExceeded)
}

// refused reports an error that says the request itself is wrong, not
// that the host failed.
func refused(err error) bool {
	switch adapter.CodeOf(err) {
	case adapter.CodeInvalidArgument, adapter.CodeUnimplemented, adapter.CodeNotFound, adapter.CodeFailedPrecondition,
		adapter.CodeResourceExhausted:
		return true
	}
	return false
}

// The shared state bucket's bounds: a caller may write configure_lm
// records to it (broadcasts made while no host serves), which every new
// host replays before it serves, so neither their number nor their bytes
// may grow without bound. Past them, a write fails (the stream discards
// new messages), which a host logs; the records already there stay.
const (
	// StateMaxRecords is how many records the bucket holds: recorded
	// broadcasts and program specs.
	StateMaxRecords = 100_000
	// StateMaxBytes is how many bytes the bucket holds.
	StateMaxBytes = 1 << 30
)

// openBucket opens the deployment's shared state bucket, creating it with
// the given replicas when it does not exist. Its stream is a key-value
// bucket's (nats.go's CreateKeyValue) but for rollups and purges, which
// it refuses: a message with a Nats-Rollup header from a caller would
// otherwise erase every record; and it holds at most StateMaxRecords
// records and StateMaxBytes bytes. old says how a bucket made by an
// earlier version, which it opens as it is, falls short of that; "" when
// it does not.
func openBucket(ctx context.Context, nc *nats.Conn, subj subjects, replicas int) (kv jetstream.KeyValue, old string, err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, "", fmt.Errorf("JetStream: %w", err)
	}
	if replicas <= 0 {
		replicas = 1
	}
	bucket := subj.bucket()
	kv, err = js.KeyValue(ctx, bucket)
	if err == nil {
		if s, err := js.Stream(ctx, "KV_"+bucket); err == nil {
			if c := s.CachedInfo().Config; c.AllowRollup || !c.DenyPurge || c.MaxMsgs < 0 || c.MaxBytes < 0 {
				old = "it allows rollups and purges, or has no bounds, so a caller could erase or flood it"
			}
		}
	}
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "KV_" + bucket, Subjects: []string{"$KV." + bucket + ".>"}, Description: "dspgo state shared by every worker host",
			MaxMsgsPerSubject: 1, MaxMsgs: StateMaxRecords, MaxBytes: StateMaxBytes, MaxMsgSize: -1, MaxConsumers: -1,
			Replicas: replicas, Discard: jetstream.DiscardNew, Duplicates: 2 * time.Minute,
			AllowRollup: false, DenyDelete: true, DenyPurge: true, AllowDirect: true,
		})
		if err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("opening the state bucket %q: %w", bucket, err)
	}
	return kv, old, nil
}

// watch applies the broadcasts other hosts record, until Close.
func (h *Host) watch() {
	defer close(h.watchDone)
	for e := range h.watcher.Updates() {
		if e == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(h.callCtx, time.Minute)
		if err := h.applyEntry(ctx, e); err != nil {
			h.log.Error("applying a broadcast from the shared state failed", "key", e.Key(), "revision", e.Revision(), "err", err)
		}
		cancel()
	}
}

// applyEntry applies one recorded broadcast unless the host has applied
// a newer one of the same key, and records that the watch reached it.
func (h *Host) applyEntry(ctx context.Context, e jetstream.KeyValueEntry) error {
	defer h.advance(e.Revision())
	if e.Operation() != jetstream.KeyValuePut {
		return h.rewrite(ctx, e.Key())
	}
	h.bmu.Lock()
	defer h.bmu.Unlock()
	if h.applied[e.Key()] >= e.Revision() {
		return nil
	}
	return h.applyRecord(ctx, e)
}

// applyRecord applies the broadcast e records, as the host's checks allow
// it, and notes it applied; h.bmu is held.
func (h *Host) applyRecord(ctx context.Context, e jetstream.KeyValueEntry) error {
	cmd, _, _ := strings.Cut(strings.TrimPrefix(e.Key(), "broadcast."), ".")
	args, err := h.checkBroadcast(cmd, e.Value())
	if err != nil {
		return err
	}
	if key := broadcastKey(cmd, args); key != e.Key() {
		// A named LM under another name's key: applying it would
		// configure a name the record does not say.
		err := errorf(adapter.CodeInvalidArgument, Name, cmd, "the shared state holds under %q a broadcast whose key is %q", e.Key(), key)
		h.log.Warn("refused a broadcast", "command", cmd, "err", err)
		return err
	}
	if name, named := strings.CutPrefix(e.Key(), namedLMKeys); named && h.namedLMs >= program.MaxNamedLMs {
		if _, known := h.applied[e.Key()]; !known {
			return program.TooManyLMs(name) // the workers would refuse it: not asked
		}
	}
	if err := h.applyLocal(ctx, adapter.Request{Command: cmd, Args: args}); err != nil {
		return err
	}
	h.noteApplied(e.Key(), e.Revision(), e.Value())
	h.log.Debug("applied a broadcast from the shared state", "command", cmd, "revision", e.Revision())
	return nil
}

// namedLMKeys is the prefix of the shared state's keys of named LMs.
var namedLMKeys = broadcastKey(command.ConfigureLM, nil) + "."

// noteApplied records that the host applied record, the broadcast of key,
// at rev; h.bmu is held.
func (h *Host) noteApplied(key string, rev uint64, record []byte) {
	if _, known := h.applied[key]; !known && strings.HasPrefix(key, namedLMKeys) {
		h.namedLMs++
	}
	h.applied[key] = rev
	h.records[key] = record
}

// rewrite writes again the record of key that a delete marker took out
// of the shared state. A caller may write the broadcasts' records, and so
// a delete marker too (a rollup or a purge the bucket refuses): without
// its record, a host that joins later or restores after a reset would
// lose the broadcast every running host keeps. A record is changed by
// writing another, never by deleting it.
func (h *Host) rewrite(ctx context.Context, key string) error {
	h.bmu.Lock()
	record, ok := h.records[key]
	h.bmu.Unlock()
	if !ok {
		return nil // never applied here: nothing to write back
	}
	h.log.Warn("a broadcast's record was deleted from the shared state; writing it again", "key", key)
	return retry(ctx, h.nc, func(ctx context.Context) error { _, err := h.kv.Put(ctx, key, record); return err })
}

// restoreShared gives the host's workers back, after a caller's reset
// dropped it, what every caller shares: the host's own configuration
// (HostOptions.Restore), then each broadcast the host has applied, as the
// shared state now holds it (applyRecord; one it refuses is skipped). Only compiled specs and counters stay
// dropped. It runs to its end whatever becomes of the caller's ctx (a
// caller that gave up on its reset must not leave every caller's LM
// dropped), within restoreTimeout.
func (h *Host) restoreShared(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	h.bmu.Lock()
	defer h.bmu.Unlock()
	if h.restore != nil {
		if err := h.restore(ctx); err != nil {
			return adapter.Wrap(err, Name, command.Reset)
		}
	}
	keys := make([]string, 0, len(h.applied))
	for key := range h.applied {
		keys = append(keys, key)
	}
	slices.Sort(keys) // the default LM, "broadcast.configure_lm", before the named ones
	for _, key := range keys {
		var e jetstream.KeyValueEntry
		err := retry(ctx, h.nc, func(ctx context.Context) (err error) { e, err = h.kv.Get(ctx, key); return err })
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return stateError(Name, command.Reset, fmt.Errorf("restoring %q after a reset: %w", key, err))
		}
		if err := h.applyRecord(ctx, e); err != nil && !refused(err) {
			return adapter.Wrap(err, Name, command.Reset)
		}
	}
	return nil
}

// restoreTimeout bounds restoreShared, as the watch bounds applying one
// broadcast.
const restoreTimeout = time.Minute

// checkBroadcast returns the arguments of a broadcast the host may apply:
// only the commands of broadcastCommands, and a configure_lm only as its
// LM policy allows. A refusal is logged here, wherever the broadcast came
// from.
func (h *Host) checkBroadcast(cmd string, args []byte) ([]byte, error) {
	if !slices.Contains(broadcastCommands, cmd) {
		err := errorf(adapter.CodeInvalidArgument, Name, cmd, "command %q cannot be broadcast (only %s)", cmd, strings.Join(broadcastCommands, ", "))
		h.log.Warn("refused a broadcast", "command", cmd, "err", err)
		return nil, err
	}
	return h.checkLM(cmd, args)
}

// checkLM returns the arguments of a configure_lm the host may apply (see
// lmPolicy.check), and logs a refusal; other commands pass unchanged.
func (h *Host) checkLM(cmd string, args []byte) ([]byte, error) {
	if cmd != command.ConfigureLM {
		return args, nil
	}
	if err := checkLMName(args); err != nil {
		h.log.Warn("refused a configure_lm", "err", err)
		return nil, err
	}
	out, err := h.lm.check(h.id, args)
	if err != nil {
		h.log.Warn("refused a configure_lm", "err", err)
		return nil, err
	}
	return out, nil
}

// applyLocal runs a broadcast on every local worker.
func (h *Host) applyLocal(ctx context.Context, req adapter.Request) error {
	if b, ok := h.a.(adapter.Broadcaster); ok {
		return b.Broadcast(ctx, req)
	}
	_, err := h.a.Call(ctx, req)
	return err
}

func (h *Host) advance(rev uint64) {
	h.revMu.Lock()
	defer h.revMu.Unlock()
	if rev > h.rev {
		h.rev = rev
		close(h.revSig)
		h.revSig = make(chan struct{})
	}
}

// stateWait bounds how long a call waits for the shared state to reach
// the revision its caller names, and stateCheck is when the host asks
// whether that revision was ever written. A caller's own broadcast
// reaches every host's watch in milliseconds, or, while the servers
// recover from losing one, in seconds; a revision that never comes must
// not hold the call's goroutine for ever.
const (
	stateWait  = time.Minute
	stateCheck = time.Second
)

// waitState waits until the watch has reached revision rev. After
// stateCheck it asks the bucket for its last revision: a revision past it
// was never written, CodeInvalidArgument. After stateWait,
// CodeUnavailable.
func (h *Host) waitState(ctx context.Context, rev uint64) error {
	limit := time.Duration(h.stateWait.Load())
	timer := time.NewTimer(limit)
	defer timer.Stop()
	check := time.NewTimer(stateCheck)
	defer check.Stop()
	for {
		h.revMu.Lock()
		cur, sig := h.rev, h.revSig
		h.revMu.Unlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-sig:
		case <-check.C:
			if last, ok := h.lastRevision(ctx); ok && rev > last {
				return &adapter.Error{Code: adapter.CodeInvalidArgument, Adapter: Name,
					Err: fmt.Errorf("the shared state has no revision %d (its last is %d): a caller names only revisions its broadcasts wrote", rev, last)}
			}
		case <-timer.C:
			return &adapter.Error{Code: adapter.CodeUnavailable, Adapter: Name,
				Err: fmt.Errorf("host %q: the shared state did not reach revision %d within %v (it is at %d)", h.id, rev, limit, cur)}
		case <-ctx.Done():
			return fmt.Errorf("waiting for the shared state to reach revision %d (at %d): %w", rev, cur, ctx.Err())
		}
	}
}

// lastRevision is the newest revision written to the shared state
// bucket; false when the servers do not say. The answer serves every call
// that asks within stateCheck, so that many calls waiting at once (a
// caller naming revisions never written) cost the servers one request.
func (h *Host) lastRevision(ctx context.Context) (uint64, bool) {
	h.lastMu.Lock()
	defer h.lastMu.Unlock()
	if !h.lastAt.IsZero() && time.Since(h.lastAt) < stateCheck {
		return h.last, h.lastOK
	}
	ctx, cancel := context.WithTimeout(ctx, stateCheck)
	defer cancel()
	// The answer is as new as the request: a call that began before it
	// (its caller's broadcast written before) may trust it, and a later
	// one, whose check comes a stateCheck after it began, asks anew.
	h.lastAt = time.Now()
	h.last, h.lastOK = 0, false
	if st, err := h.kv.Status(ctx); err == nil {
		if b, ok := st.(*jetstream.KeyValueBucketStatus); ok && b.StreamInfo() != nil {
			h.last, h.lastOK = b.StreamInfo().State.LastSeq, true
		}
	}
	return h.last, h.lastOK
}

// broadcast applies req on this host's workers, then records it in the
// shared state for every other host; it returns the record's revision.
func (h *Host) broadcast(ctx context.Context, req adapter.Request) (uint64, error) {
	if !tokenRE.MatchString(req.Command) {
		return 0, errorf(adapter.CodeInvalidArgument, Name, req.Command, "command %q cannot be broadcast: its name may hold only letters, digits, '_' and '-'", req.Command)
	}
	args, err := h.checkBroadcast(req.Command, req.Args)
	if err != nil {
		return 0, err
	}
	req.Args = args
	h.bmu.Lock()
	defer h.bmu.Unlock()
	if err := h.applyLocal(ctx, req); err != nil {
		return 0, err
	}
	key := broadcastKey(req.Command, req.Args)
	var rev uint64
	recorded := program.Replayable(req.Command, req.Args)
	err = retry(ctx, h.nc, func(ctx context.Context) (err error) { rev, err = h.kv.Put(ctx, key, recorded); return err })
	if err != nil {
		return 0, stateError(Name, req.Command,
			fmt.Errorf("applied on host %q but not recorded in the shared state, so other hosts may not have it: %w", h.id, err))
	}
	h.noteApplied(key, rev, recorded)
	return rev, nil
}

type specArgs struct {
	SpecHash string          `json:"spec_hash"`
	Spec     json.RawMessage `json:"spec"`
}

// recordSpec keeps a created spec in the shared state, so that any host
// can run it later. A failure is logged: the client resends specs a
// worker lacks, so nothing breaks.
func (h *Host) recordSpec(ctx context.Context, args, result []byte) {
	var a specArgs
	var r command.CreateResult
	if json.Unmarshal(args, &a) != nil || json.Unmarshal(result, &r) != nil || len(a.Spec) == 0 || !tokenRE.MatchString(r.SpecHash) {
		return
	}
	if err := retry(ctx, h.nc, func(ctx context.Context) error { _, err := h.kv.Put(ctx, "spec."+r.SpecHash, a.Spec); return err }); err != nil {
		h.log.Warn("recording a program spec in the shared state failed", "spec_hash", r.SpecHash, "err", err)
	}
}

// fetchSpec returns args with the spec from the shared state added, or
// nil when the state does not hold it.
func (h *Host) fetchSpec(ctx context.Context, args []byte) []byte {
	var fields map[string]json.RawMessage
	var a specArgs
	if json.Unmarshal(args, &fields) != nil || json.Unmarshal(args, &a) != nil || len(a.Spec) > 0 || !tokenRE.MatchString(a.SpecHash) {
		return nil
	}
	var e jetstream.KeyValueEntry
	err := retry(ctx, h.nc, func(ctx context.Context) (err error) { e, err = h.kv.Get(ctx, "spec."+a.SpecHash); return err })
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			h.log.Warn("reading a program spec from the shared state failed", "spec_hash", a.SpecHash, "err", err)
		}
		return nil
	}
	fields["spec"] = e.Value()
	b, err := json.Marshal(fields)
	if err != nil {
		return nil
	}
	return b
}

func (h *Host) forgetSpec(ctx context.Context, args []byte) {
	var a specArgs
	if json.Unmarshal(args, &a) != nil || !tokenRE.MatchString(a.SpecHash) {
		return
	}
	if err := retry(ctx, h.nc, func(ctx context.Context) error { return h.kv.Delete(ctx, "spec."+a.SpecHash) }); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		h.log.Warn("deleting a program spec from the shared state failed", "spec_hash", a.SpecHash, "err", err)
	}
}

func isSpecNotFound(err error) bool {
	var e *adapter.Error
	return errors.As(err, &e) && e.Remote != nil && e.Remote.Type == command.SpecNotFoundType
}
