package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/wait"
)

// streamCases are the cases of streams and of calls to host tools.
func streamCases() []Case {
	return []Case{
		{Name: "stream_chunks", Doc: "A streamed execution yields every chunk in order, exactly the dummy LM's chunks, then the typed outputs.", Skip: needStreaming, Run: caseStreamChunks},
		{Name: "stream_cancel", Doc: "Leaving a stream early cancels it on the worker, and the adapter serves on.", Skip: needStreaming, Run: caseStreamCancel},
		{Name: "stream_deadline", Doc: "A deadline passing mid-stream ends it with CodeDeadlineExceeded, last and once.", Skip: needStreaming, Run: caseStreamDeadline},
		{Name: "stream_producer_error", Doc: "A producer that fails after some chunks ends the stream with its error, last and once.", Skip: needStreaming, Run: caseStreamProducerError},
		{Name: "stream_slow_consumer", Doc: "A consumer slower than the producer gets every chunk: the producer waits for credit instead of overrunning it.", Skip: needStreaming, Run: caseStreamSlowConsumer},
		{Name: "streams_32_concurrent", Doc: "32 concurrent streams each get their own complete chunks and outputs.", Skip: needStreaming, Run: caseStreamsConcurrent},
		{Name: "react_tools", Doc: "A react program calls Go tools; results, errors (with their code), unknown tools and panics become observations.", Skip: needTools, Run: caseReactTools},
		{Name: "tool_outlives_deadline", Doc: "A tool still running at the execution's deadline is cancelled, and the execution ends with CodeDeadlineExceeded.", Skip: needTools, Run: caseToolDeadline},
	}
}

func needStreaming(env *Env) string {
	if why := lacksStreaming(env); why != "" {
		return why
	}
	if _, ok := env.Adapter.(adapter.Streamer); !ok {
		// Not a need a harness may accept: capabilities_declared fails.
		return "the adapter declares Capabilities.Streaming but is not an adapter.Streamer"
	}
	return ""
}

func lacksStreaming(env *Env) string {
	if !env.Adapter.Capabilities().Streaming {
		return "the adapter does not stream (Capabilities.Streaming, adapter.Streamer)"
	}
	return ""
}

func needTools(env *Env) string {
	if !env.Adapter.Capabilities().Tools {
		return "workers cannot call host tools (Capabilities.Tools)"
	}
	return ""
}

// manyOutputs is a signature of 20 str outputs: 60 chunks from the dummy LM.
func manyOutputs() string {
	outs := make([]string, 20)
	for i := range outs {
		outs[i] = fmt.Sprintf("o%02d", i)
	}
	return "question -> " + strings.Join(outs, ", ")
}

// collect ranges over a stream and checks its shape: parts, then the
// outputs last; or an error last.
func collect(t TB, seq func(yield func(dspgo.StreamPart, error) bool)) (parts []dspgo.StreamPart, final *dspgo.StreamPart, err error) {
	t.Helper()
	for part, perr := range seq {
		require.Nil(t, final, "nothing comes after the outputs")
		require.NoError(t, err, "nothing comes after an error")
		switch {
		case perr != nil:
			err = perr
		case part.Outputs != nil:
			final = &part
		default:
			parts = append(parts, part)
		}
	}
	return parts, final, err
}

// wantChunks returns the dummy LM's chunks of the program's outputs.
func wantChunks(t TB, p *dspgo.Program, inputs map[string]any) []command.Delta {
	t.Helper()
	c, err := program.Compile(command.Spec{Signature: p.Spec.Signature, Instructions: p.Spec.Instructions, Kind: p.Spec.Kind})
	require.NoError(t, err)
	in, err := c.Inputs(inputs)
	require.NoError(t, err)
	out, err := c.DummyOutputs(in)
	require.NoError(t, err)
	chunks, err := c.DummyChunks(out)
	require.NoError(t, err)
	return chunks
}

func deltas(parts []dspgo.StreamPart) []command.Delta {
	out := make([]command.Delta, len(parts))
	for i, p := range parts {
		out[i] = command.Delta{Field: p.Field, Delta: p.Delta}
	}
	return out
}

func caseStreamChunks(t TB, env *Env) {
	p := create(t, env, "question -> answer, n: int, tags: list[str]", func(s *dspgo.ProgramSpec) { s.Kind = dspgo.KindChainOfThought })
	in := map[string]any{"question": "What streams?"}
	parts, final, err := collect(t, env.Client.ExecuteStream(env.Ctx, p.ID, in))
	require.NoError(t, err)
	require.NotNil(t, final, "the stream ends with the outputs")
	assert.Equal(t, wantChunks(t, p, in), deltas(parts), "chunk for chunk, the dummy LM's")
	assert.Equal(t, expected(t, p, in), final.Outputs)

	// The adapter's own view: seq counts from 0 without a gap, and the
	// last element carries the result.
	args, _ := json.Marshal(map[string]any{"spec_hash": p.Hash, "spec": command.Spec{Signature: p.Spec.Signature, Kind: p.Spec.Kind}, "inputs": in})
	var seqs []uint64
	var last *adapter.Response
	for c, err := range env.Adapter.(adapter.Streamer).Stream(env.Ctx, adapter.Request{Command: command.ExecuteProgram, Args: args}) {
		require.NoError(t, err)
		if c.Response != nil {
			last = c.Response
			assert.Equal(t, uint64(len(seqs)), c.Seq, "the last element counts the chunks")
			continue
		}
		seqs = append(seqs, c.Seq)
	}
	require.NotNil(t, last)
	for i, s := range seqs {
		require.Equal(t, uint64(i), s)
	}
	assert.Len(t, seqs, len(parts))

	// A command that does not stream still ends its stream with its result.
	n := 0
	for c, err := range env.Adapter.(adapter.Streamer).Stream(env.Ctx, adapter.Request{Command: command.Ping}) {
		require.NoError(t, err)
		n++
		require.NotNil(t, c.Response)
	}
	assert.Equal(t, 1, n)
}

func caseStreamCancel(t TB, env *Env) {
	p := create(t, env, manyOutputs())
	ctx, cancel := context.WithCancel(env.Ctx)
	defer cancel()
	got := 0
	for _, err := range env.Client.ExecuteStream(ctx, p.ID, map[string]any{"question": "stop early"}) {
		require.NoError(t, err)
		got++
		if got == 2 {
			break // the consumer stops reading
		}
	}
	assert.Equal(t, 2, got)
	// The worker stopped the producer: nothing stays in flight, and the
	// adapter serves the next call.
	if _, ok := adapter.StatsOf(env.Adapter); ok {
		require.True(t, wait.Until(env.Ctx, func() bool { s, _ := adapter.StatsOf(env.Adapter); return s.InFlight == 0 }),
			"a cancelled stream leaves nothing in flight")
	}
	out, err := env.Client.Execute(env.Ctx, p.ID, map[string]any{"question": "next"})
	require.NoError(t, err)
	assert.Equal(t, expected(t, p, map[string]any{"question": "next"}), out)
}

func caseStreamDeadline(t TB, env *Env) {
	p := create(t, env, manyOutputs())
	var (
		parts []dspgo.StreamPart
		final *dspgo.StreamPart
		err   error
	)
	// A deadline that passes before the first part (a loaded machine)
	// proves nothing: the run goes again with a longer one.
	for _, deadline := range []time.Duration{150 * time.Millisecond, 600 * time.Millisecond, 2400 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(env.Ctx, deadline)
		parts, final, err = collect(t, func(yield func(dspgo.StreamPart, error) bool) {
			for part, err := range env.Client.ExecuteStream(ctx, p.ID, map[string]any{"question": "slow reader"}) {
				if !yield(part, err) {
					return
				}
				<-ctx.Done() // a consumer slower than the deadline: it passes after the first part
			}
		})
		cancel()
		if len(parts) > 0 {
			break
		}
	}
	assert.Nil(t, final, "no outputs after the deadline")
	requireCode(t, adapter.CodeDeadlineExceeded, err, "the stream ends with the deadline (after %d parts)", len(parts))
	assert.Len(t, parts, 1, "no part after the deadline")
}

func caseStreamProducerError(t TB, env *Env) {
	p := create(t, env, manyOutputs())
	in := map[string]any{"question": "fail midway"}
	configure := func(args string) {
		t.Helper()
		req := adapter.Request{Command: command.ConfigureLM, Args: json.RawMessage(args)}
		var err error
		if b, ok := env.Adapter.(adapter.Broadcaster); ok {
			err = b.Broadcast(env.Ctx, req)
		} else {
			_, err = env.Adapter.Call(env.Ctx, req)
		}
		require.NoError(t, err)
	}
	configure(`{"provider":"dummy","fail_after_chunks":4}`)
	defer configure(`{"provider":"dummy"}`)

	parts, final, err := collect(t, env.Client.ExecuteStream(env.Ctx, p.ID, in))
	assert.Nil(t, final, "no outputs from a failed producer")
	requireCode(t, adapter.CodeInternal, err, "the producer's error ends the stream")
	assert.Contains(t, err.Error(), "failed after 4 chunks")
	assert.Equal(t, wantChunks(t, p, in)[:4], deltas(parts), "the chunks before the failure, every one")

	// The same program without the fault streams to the end.
	configure(`{"provider":"dummy"}`)
	parts, final, err = collect(t, env.Client.ExecuteStream(env.Ctx, p.ID, in))
	require.NoError(t, err)
	require.NotNil(t, final)
	assert.Equal(t, wantChunks(t, p, in), deltas(parts))
}

func caseStreamSlowConsumer(t TB, env *Env) {
	p := create(t, env, manyOutputs())
	in := map[string]any{"question": "take your time"}
	var parts []dspgo.StreamPart
	var final *dspgo.StreamPart
	for part, err := range env.Client.ExecuteStream(env.Ctx, p.ID, in) {
		require.NoError(t, err)
		if part.Outputs != nil {
			final = &part
			continue
		}
		parts = append(parts, part)
		select { // slower than the producer: it must wait for credit
		case <-env.Ctx.Done():
		case <-time.After(2 * time.Millisecond):
		}
	}
	require.NotNil(t, final)
	assert.Equal(t, wantChunks(t, p, in), deltas(parts))
	assert.Equal(t, expected(t, p, in), final.Outputs)
}

func caseStreamsConcurrent(t TB, env *Env) {
	p := create(t, env, "question -> answer, words: list[str]")
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := map[string]any{"question": fmt.Sprintf("stream %d", i)}
			parts, final, err := collect(t, env.Client.ExecuteStream(env.Ctx, p.ID, in))
			if assert.NoError(t, err) && assert.NotNil(t, final) {
				assert.Equal(t, wantChunks(t, p, in), deltas(parts), "stream %d", i)
				assert.Equal(t, expected(t, p, in), final.Outputs, "stream %d", i)
			}
		}()
	}
	wg.Wait()
}

// reactClient returns a client over the case's adapter with tools, and a
// react program.
func reactClient(t TB, env *Env, tools ...dspgo.Option) (*dspgo.Client, *dspgo.Program) {
	t.Helper()
	c := dspgo.NewClient(env.Adapter, tools...)
	p, err := c.CreateProgram(env.Ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer"), Kind: dspgo.KindReact})
	require.NoError(t, err)
	return c, p
}

func caseReactTools(t TB, env *Env) {
	type sum struct{ A, B float64 }
	c, p := reactClient(t, env,
		dspgo.WithTool("add", "Adds a and b.", map[string]any{"type": "object"}, func(_ context.Context, args json.RawMessage) (any, error) {
			var s sum
			if err := json.Unmarshal(args, &s); err != nil {
				return nil, adapter.Errorf(adapter.CodeInvalidArgument, "add: %v", err)
			}
			return s.A + s.B, nil
		}),
		dspgo.WithTool("fail", "Always fails.", nil, func(context.Context, json.RawMessage) (any, error) {
			return nil, adapter.Errorf(adapter.CodeFailedPrecondition, "the weather is bad")
		}),
		dspgo.WithTool("boom", "Panics.", nil, func(context.Context, json.RawMessage) (any, error) { panic("boom") }),
	)
	require.NoError(t, c.ConfigureLM(env.Ctx, dspgo.LMConfig{Script: []dspgo.ScriptStep{
		{Tool: "add", Args: map[string]any{"A": 1, "B": 2}},
		{Tool: "fail"},
		{Tool: "nope"},
		{Tool: "boom"},
		{Finish: true},
		{Tool: "add", Args: map[string]any{"A": 5, "B": 5}}, // after finish: never run
	}}))
	defer func() { assert.NoError(t, c.ConfigureLM(env.Ctx, dspgo.LMConfig{})) }()

	in := map[string]any{"question": "What is 1 + 2?"}
	e, err := c.ExecuteDetailed(env.Ctx, p.ID, in)
	require.NoError(t, err)
	assert.Equal(t, expected(t, p, in), e.Outputs)
	require.Len(t, e.Trajectory, 4)
	assert.Equal(t, "add", e.Trajectory[0].Tool)
	assert.JSONEq(t, `{"A":1,"B":2}`, string(e.Trajectory[0].Args))
	assert.JSONEq(t, `3`, string(e.Trajectory[0].Observation))
	assert.JSONEq(t, `{"error":{"code":"failed_precondition","message":"the weather is bad"}}`, string(e.Trajectory[1].Observation))
	assert.Contains(t, string(e.Trajectory[2].Observation), `"code":"not_found"`)
	assert.Contains(t, string(e.Trajectory[3].Observation), `"code":"internal"`)
	assert.Contains(t, string(e.Trajectory[3].Observation), "panicked")

	// max_iters bounds the loop.
	p2, err := c.CreateProgram(env.Ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer"), Kind: dspgo.KindReact, MaxIters: 1})
	require.NoError(t, err)
	e, err = c.ExecuteDetailed(env.Ctx, p2.ID, in)
	require.NoError(t, err)
	assert.Len(t, e.Trajectory, 1)

	// Without a script the loop answers at once.
	require.NoError(t, c.ConfigureLM(env.Ctx, dspgo.LMConfig{}))
	e, err = c.ExecuteDetailed(env.Ctx, p.ID, in)
	require.NoError(t, err)
	assert.Empty(t, e.Trajectory)
	assert.NotNil(t, e.Trajectory, "a react program always reports its trajectory")
}

func caseToolDeadline(t TB, env *Env) {
	stopped := make(chan error, 1)
	c, p := reactClient(t, env, dspgo.WithTool("block", "Waits for its context.", nil, func(ctx context.Context, _ json.RawMessage) (any, error) {
		<-ctx.Done()
		stopped <- ctx.Err()
		return nil, ctx.Err()
	}))
	require.NoError(t, c.ConfigureLM(env.Ctx, dspgo.LMConfig{Script: []dspgo.ScriptStep{{Tool: "block"}}}))
	ctx, cancel := context.WithTimeout(env.Ctx, 300*time.Millisecond)
	defer cancel()
	_, err := c.Execute(ctx, p.ID, map[string]any{"question": "wait"})
	requireCode(t, adapter.CodeDeadlineExceeded, err)
	select {
	case err := <-stopped:
		assert.Error(t, err, "the tool's context ended")
	case <-env.Ctx.Done():
		t.Errorf("the tool was never cancelled")
	}
	require.NoError(t, c.ConfigureLM(env.Ctx, dspgo.LMConfig{}))
	_, err = c.Execute(env.Ctx, p.ID, map[string]any{"question": "after"})
	assert.NoError(t, err, "the adapter serves on")
}
