package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/wait"
)

// Cases returns the table of cases, in the order they run.
func Cases() []Case {
	return append([]Case{
		{Name: "ping", Doc: "The adapter answers ping and describe.", Run: casePing},
		{Name: "capabilities_declared", Doc: "Every declared capability is implemented: Streaming is an adapter.Streamer, Broadcast an adapter.Broadcaster, each of Commands is described; a lie would only skip the cases that test it.", Run: caseCapabilitiesDeclared},
		{Name: "round_trip_explicit_id", Doc: "create, get, list, execute and delete a program with an explicit id.", Run: caseRoundTripExplicit},
		{Name: "round_trip_generated_id", Doc: "A program created without an id gets a unique generated one.", Run: caseRoundTripGenerated},
		{Name: "typed_outputs", Doc: "Outputs of every type come back as their declared Go types.", Run: caseTypedOutputs},
		{Name: "dummy_lm_reference", Doc: "The dummy LM gives the reference outputs: identical for identical inputs, different for different ones; it reports no token usage.", Run: caseDummyReference},
		{Name: "chain_of_thought", Doc: "chain_of_thought adds a reasoning output.", Run: caseChainOfThought},
		{Name: "not_found", Doc: "Unknown programs are CodeNotFound for get, execute and delete.", Run: caseNotFound},
		{Name: "already_exists", Doc: "Creating an id twice is CodeAlreadyExists and leaves the first program intact.", Run: caseAlreadyExists},
		{Name: "invalid_argument", Doc: "Missing, unknown and mistyped inputs and bad signatures are CodeInvalidArgument, from the client and from the backend.", Run: caseInvalidArgument},
		{Name: "optional_input_left_out", Doc: "An Optional input may be left out, from the client and from the backend, and stays out: the outputs are the dummy LM's for the inputs without it, not for a null; any other input left out is CodeInvalidArgument.", Run: caseOptionalLeftOut},
		{Name: "pydantic_models", Doc: "Fields whose types name the signature's pydantic models (an object input, list and Optional outputs, a nested model) give the dummy LM's outputs, from the client and from the backend; a value without a required field and a bad model are CodeInvalidArgument.", Run: caseModels},
		{Name: "field_defaults", Doc: "Inputs and models' fields left out take their defaults, from the client and from the backend: the outputs are the dummy LM's for the inputs with the defaults given; an unknown input beside them and a default of another type are CodeInvalidArgument.", Run: caseDefaults},
		{Name: "unimplemented", Doc: "An unknown command is CodeUnimplemented.", Run: caseUnimplemented},
		{Name: "canceled", Doc: "A cancelled context gives CodeCanceled.", Run: caseCanceled},
		{Name: "deadline_exceeded", Doc: "A deadline gives CodeDeadlineExceeded promptly, and the adapter stays usable.", Run: caseDeadline},
		{Name: "concurrent_64", Doc: "64 goroutines executing at once each get their own correct outputs.", Run: caseConcurrent},
		{Name: "unicode_round_trip", Doc: "Unicode instructions and inputs reach the backend byte for byte.", Run: caseUnicode},
		{Name: "payload_1mib", Doc: "A 1 MiB input reaches the backend intact.", Run: caseLargePayload},
		{Name: "payload_over_frame_limit", Doc: "A payload over the frame limit fails cleanly with CodeResourceExhausted, and the adapter stays usable.", Skip: needFrameLimit, Run: caseOverLimit},
		{Name: "hostile_inputs", Doc: "10,000-key objects run; numbers beyond a double's range and nesting past the limit are refused with CodeInvalidArgument, never left unanswered.", Run: caseHostileInputs},
		{Name: "spec_resent", Doc: "A backend that lost a compiled spec is sent it again: programs are never lost.", Run: caseSpecResent},
		{Name: "session_isolation", Doc: "Programs of a session are invisible to other sessions and the default scope.", Run: caseSessionIsolation},
		{Name: "session_close", Doc: "Closing a session deletes its programs and fails its later calls.", Run: caseSessionClose},
		{Name: "configure_lm", Doc: "configure_lm before execute; bad LM configurations are CodeInvalidArgument.", Run: caseConfigureLM},
		{Name: "named_lms", Doc: "Named LM configurations live beside the default one; a program's LM, else its session handle's, chooses one; an unknown name is CodeNotFound, a bad one CodeInvalidArgument.", Run: caseNamedLMs},
		{Name: "named_lms_concurrent", Doc: "Programs of two named LMs executed at once each run with their own.", Skip: needTools, Run: caseNamedLMsConcurrent},
		{Name: "crash_recovery", Doc: "After a worker crash, calls fail with CodeUnavailable or succeed, and programs run again once it is back.", Skip: needFaults, Run: caseCrashRecovery},
		{Name: "stats_add_up", Doc: "The adapter's call and failure counters add up.", Skip: needStats, Run: caseStats},
		{Name: "close_idempotent", Doc: "Close is idempotent and every call after it is ErrClosed.", Run: caseClose},
		{Name: "close_leaves_no_goroutine", Doc: "No goroutine survives Close.", Run: caseNoLeak},
	}, append(append(append(append(streamCases(), requestCases()...), commandCases()...), hardeningCases()...), demoCases()...)...)
}

func needFrameLimit(env *Env) string {
	if env.Adapter.Capabilities().MaxFrameBytes <= 0 {
		return "the adapter declares no frame limit (Capabilities.MaxFrameBytes)"
	}
	return ""
}

func needFaults(env *Env) string {
	if env.Harness.Faults == nil || env.Harness.Faults.Crash == nil {
		return "the harness injects no crash (Harness.Faults.Crash)"
	}
	return ""
}

func needStats(env *Env) string {
	if _, ok := adapter.StatsOf(env.Adapter); !ok {
		return "the adapter reports no stats (adapter.Statser or adapter.StatsReporter)"
	}
	return ""
}

// requireCode fails t unless err has the code.
func requireCode(t TB, want adapter.Code, err error, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	require.Equal(t, want.String(), adapter.CodeOf(err).String(), "error: %v", err)
}

func create(t TB, env *Env, sig string, opts ...func(*dspgo.ProgramSpec)) *dspgo.Program {
	t.Helper()
	spec := dspgo.ProgramSpec{Signature: dspgo.MustParseSignature(sig)}
	for _, o := range opts {
		o(&spec)
	}
	p, err := env.Client.CreateProgram(env.Ctx, spec)
	require.NoError(t, err)
	return p
}

func withID(id string) func(*dspgo.ProgramSpec) { return func(s *dspgo.ProgramSpec) { s.ID = id } }

// expected returns the reference outputs of the dummy LM, typed as the
// client returns them.
func expected(t TB, p *dspgo.Program, inputs map[string]any) map[string]any {
	t.Helper()
	c, err := program.Compile(command.Spec{Signature: p.Spec.Signature, Instructions: p.Spec.Instructions, Kind: p.Spec.Kind, Demos: p.Spec.Demos,
		Module: p.Spec.Module, State: p.Spec.State, StepInstructions: p.Spec.StepInstructions, StepDemos: p.Spec.StepDemos})
	require.NoError(t, err)
	in, err := c.Inputs(inputs)
	require.NoError(t, err)
	raw, err := c.DummyOutputs(in)
	require.NoError(t, err)
	// Through JSON, as a backend's outputs travel.
	b, err := json.Marshal(raw)
	require.NoError(t, err)
	var decoded map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&decoded))
	out, err := c.Outputs(decoded)
	require.NoError(t, err)
	return out
}

func casePing(t TB, env *Env) {
	require.NoError(t, env.Client.Ping(env.Ctx))
	resp, err := env.Adapter.Call(env.Ctx, adapter.Request{Command: command.Describe})
	require.NoError(t, err)
	var d struct {
		Commands []struct{ Name string } `json:"commands"`
	}
	require.NoError(t, json.Unmarshal(resp.Result, &d))
	var names []string
	for _, c := range d.Commands {
		names = append(names, c.Name)
	}
	assert.Subset(t, names, []string{command.Ping, command.Describe, command.ConfigureLM, command.CreateProgram, command.ExecuteProgram, command.DeleteProgram, command.GetStats, command.Reset, command.Shutdown, command.Cancel})
}

func caseRoundTripExplicit(t TB, env *Env) {
	ctx, c := env.Ctx, env.Client
	p := create(t, env, "question -> answer", withID("qa"))
	assert.Equal(t, "qa", p.ID)
	assert.Len(t, p.Hash, 64)

	got, err := c.GetProgram(ctx, "qa")
	require.NoError(t, err)
	assert.Equal(t, p, got)
	list, err := c.ListPrograms(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "qa", list[0].ID)

	in := map[string]any{"question": "What is Go?"}
	out, err := c.Execute(ctx, "qa", in)
	require.NoError(t, err)
	assert.Equal(t, expected(t, p, in), out)

	require.NoError(t, c.DeleteProgram(ctx, "qa"))
	_, err = c.GetProgram(ctx, "qa")
	requireCode(t, adapter.CodeNotFound, err)
	_, err = c.Execute(ctx, "qa", in)
	requireCode(t, adapter.CodeNotFound, err)
	list, err = c.ListPrograms(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)
}

func caseRoundTripGenerated(t TB, env *Env) {
	a := create(t, env, "question -> answer")
	b := create(t, env, "question -> answer")
	assert.NotEmpty(t, a.ID)
	assert.NotEqual(t, a.ID, b.ID, "generated ids are unique")
	assert.Equal(t, a.Hash, b.Hash, "same spec, same hash")
	out, err := env.Client.Execute(env.Ctx, b.ID, map[string]any{"question": "?"})
	require.NoError(t, err)
	assert.Contains(t, out, "answer")
	require.NoError(t, env.Client.DeleteProgram(env.Ctx, a.ID))
	_, err = env.Client.Execute(env.Ctx, b.ID, map[string]any{"question": "?"})
	require.NoError(t, err, "deleting one program leaves another with the same spec running")
}

func caseTypedOutputs(t TB, env *Env) {
	p := create(t, env, "x -> s: str, i: int, f: float, b: bool, l: list[int], d: dict[str, float], lit: Literal['red', 'green', 'blue'], nested: list[dict[str, list[str]]]")
	for i := range 8 {
		in := map[string]any{"x": fmt.Sprint("seed ", i)}
		out, err := env.Client.Execute(env.Ctx, p.ID, in)
		require.NoError(t, err)
		assert.Equal(t, expected(t, p, in), out)
		want := map[string]reflect.Type{
			"s": reflect.TypeFor[string](), "i": reflect.TypeFor[int64](), "f": reflect.TypeFor[float64](),
			"b": reflect.TypeFor[bool](), "l": reflect.TypeFor[[]int64](), "d": reflect.TypeFor[map[string]float64](),
			"lit": reflect.TypeFor[string](), "nested": reflect.TypeFor[[]map[string][]string](),
		}
		for name, typ := range want {
			assert.Equal(t, typ, reflect.TypeOf(out[name]), "output %s", name)
		}
		assert.Contains(t, []string{"red", "green", "blue"}, out["lit"])
	}
}

func caseDummyReference(t TB, env *Env) {
	p := create(t, env, "question, context: list[str] -> answer, confidence: float", func(s *dspgo.ProgramSpec) {
		s.Instructions = "Answer from the context."
	})
	in := map[string]any{"question": "Who?", "context": []string{"a", "b"}}
	run, err := env.Client.ExecuteDetailed(env.Ctx, p.ID, in)
	require.NoError(t, err)
	first := run.Outputs
	assert.Equal(t, expected(t, p, in), first)
	assert.Zero(t, run.Usage, "the dummy LM makes no LM call: no usage")
	again, err := env.Client.Execute(env.Ctx, p.ID, map[string]any{"question": "Who?", "context": []any{"a", "b"}})
	require.NoError(t, err)
	assert.Equal(t, first, again, "identical inputs, identical outputs")
	other, err := env.Client.Execute(env.Ctx, p.ID, map[string]any{"question": "Whom?", "context": []string{"a", "b"}})
	require.NoError(t, err)
	assert.NotEqual(t, first["answer"], other["answer"], "different inputs, different outputs")
}

func caseChainOfThought(t TB, env *Env) {
	p := create(t, env, "question -> answer", func(s *dspgo.ProgramSpec) { s.Kind = dspgo.KindChainOfThought })
	assert.Equal(t, []string{"reasoning", "answer"}, fieldNames(p.OutputFields()))
	in := map[string]any{"question": "Why?"}
	out, err := env.Client.Execute(env.Ctx, p.ID, in)
	require.NoError(t, err)
	assert.Equal(t, expected(t, p, in), out)
	assert.IsType(t, "", out["reasoning"])
}

func fieldNames(fields []dspgo.Field) []string {
	var names []string
	for _, f := range fields {
		names = append(names, f.Name)
	}
	return names
}

func caseNotFound(t TB, env *Env) {
	ctx, c := env.Ctx, env.Client
	_, err := c.GetProgram(ctx, "nope")
	requireCode(t, adapter.CodeNotFound, err)
	assert.ErrorIs(t, err, adapter.ErrNotFound)
	_, err = c.Execute(ctx, "nope", map[string]any{"q": "?"})
	requireCode(t, adapter.CodeNotFound, err)
	requireCode(t, adapter.CodeNotFound, c.DeleteProgram(ctx, "nope"))

	// The backend itself: delete_program of a spec it never compiled.
	_, err = env.Adapter.Call(ctx, adapter.Request{Command: command.DeleteProgram, Args: json.RawMessage(`{"spec_hash":"0000"}`)})
	requireCode(t, adapter.CodeNotFound, err)
}

func caseAlreadyExists(t TB, env *Env) {
	first := create(t, env, "question -> answer", withID("dup"))
	_, err := env.Client.CreateProgram(env.Ctx, dspgo.ProgramSpec{ID: "dup", Signature: dspgo.MustParseSignature("a -> b")})
	requireCode(t, adapter.CodeAlreadyExists, err)
	assert.ErrorIs(t, err, adapter.ErrAlreadyExists)
	got, err := env.Client.GetProgram(env.Ctx, "dup")
	require.NoError(t, err)
	assert.Equal(t, first, got, "never a silent overwrite")
}

func caseInvalidArgument(t TB, env *Env) {
	ctx, c := env.Ctx, env.Client
	p := create(t, env, "question, n: int -> answer")
	bad := []struct {
		inputs map[string]any
		names  string
	}{
		{map[string]any{"question": "?"}, `"n"`},
		{map[string]any{"question": "?", "n": 1, "extra": 2}, `"extra"`},
		{map[string]any{"question": "?", "n": "one"}, "input n"},
		{map[string]any{"question": []any{"a", 3}, "n": 1}, "input question[1]"},
	}
	for _, b := range bad {
		_, err := c.Execute(ctx, p.ID, b.inputs)
		requireCode(t, adapter.CodeInvalidArgument, err)
		assert.Contains(t, err.Error(), b.names)
	}
	for _, sig := range []string{"question answer", "question -> ", "a, a -> b", "a: tensor -> b"} {
		_, err := dspgo.ParseSignature(sig)
		requireCode(t, adapter.CodeInvalidArgument, err, sig)
	}
	_, err := c.CreateProgram(ctx, dspgo.ProgramSpec{ID: "bad id!", Signature: dspgo.MustParseSignature("a -> b")})
	requireCode(t, adapter.CodeInvalidArgument, err)

	// The backend validates too, for callers that bypass the client.
	calls := map[string]string{
		command.CreateProgram:  `{"spec":{"signature":{"inputs":[{"name":"a","type":"str","description":""}],"outputs":[]},"instructions":"","kind":"predict"}}`,
		command.ExecuteProgram: `{"spec_hash":"` + p.Hash + `","spec":{"signature":{"inputs":[{"name":"q","type":"str","description":""}],"outputs":[{"name":"a","type":"str","description":""}]},"instructions":"","kind":"predict"},"inputs":{"q":"?"}}`,
		command.ConfigureLM:    `{"provider":"dummy","temperature":9}`,
	}
	for cmd, args := range calls {
		_, err := env.Adapter.Call(ctx, adapter.Request{Command: cmd, Args: json.RawMessage(args)})
		requireCode(t, adapter.CodeInvalidArgument, err, cmd)
	}
}

func caseOptionalLeftOut(t TB, env *Env) {
	ctx, c := env.Ctx, env.Client
	p := create(t, env, "question, hint: Optional[str] -> answer, n: int")
	left := map[string]any{"question": "What is Go?"}
	got, err := c.Execute(ctx, p.ID, left)
	require.NoError(t, err)
	assert.Equal(t, expected(t, p, left), got)
	null := map[string]any{"question": "What is Go?", "hint": nil}
	gotNull, err := c.Execute(ctx, p.ID, null)
	require.NoError(t, err)
	assert.Equal(t, expected(t, p, null), gotNull)
	assert.NotEqual(t, got, gotNull, "an input left out is not sent as a null")
	_, err = c.Execute(ctx, p.ID, map[string]any{"hint": "Go is a language."})
	requireCode(t, adapter.CodeInvalidArgument, err)
	assert.Contains(t, err.Error(), `input "question" is missing`)

	// The backend takes it too, for callers that bypass the client.
	spec := command.Spec{Signature: p.Spec.Signature, Instructions: p.Spec.Instructions, Kind: p.Spec.Kind}
	outputs, err := executeRaw(env, p.Hash, spec, `{"question":"What is Go?"}`)
	require.NoError(t, err)
	want, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(outputs))
}

// executeRaw executes spec on inputs (JSON) through the adapter itself,
// as a caller that bypasses the client, and returns the outputs' JSON.
func executeRaw(env *Env, hash string, spec command.Spec, inputs string) (json.RawMessage, error) {
	args, err := json.Marshal(command.ExecuteArgs{SpecHash: hash, Spec: &spec, Inputs: json.RawMessage(inputs)})
	if err != nil {
		return nil, err
	}
	resp, err := env.Adapter.Call(env.Ctx, adapter.Request{Command: command.ExecuteProgram, Args: args})
	if err != nil {
		return nil, err
	}
	var res command.ExecuteResult
	if err := json.Unmarshal(resp.Result, &res); err != nil {
		return nil, err
	}
	return res.Outputs, nil
}

func caseModels(t TB, env *Env) {
	ctx, c := env.Ctx, env.Client
	sig := dspgo.Signature{
		Inputs:  []dspgo.Field{{Name: "doc", Type: "Document"}},
		Outputs: []dspgo.Field{{Name: "people", Type: "list[Person]"}, {Name: "best", Type: "Optional[Person]"}},
		Models: []dspgo.Model{
			{Name: "Person", Description: "A person the text names.", Fields: []dspgo.Field{{Name: "name"}, {Name: "age", Type: "int"},
				{Name: "home", Type: "Optional[Place]", Description: "Where they live"}}},
			{Name: "Place", Fields: []dspgo.Field{{Name: "city"}}},
			{Name: "Document", Fields: []dspgo.Field{{Name: "text"}, {Name: "lang", Type: "Optional[str]"}}},
		},
	}
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
	require.NoError(t, err)
	inputs := map[string]any{"doc": map[string]any{"text": "Ann lives in Oslo.", "extra": true}}
	got, err := c.Execute(ctx, p.ID, inputs)
	require.NoError(t, err)
	assert.Equal(t, expected(t, p, inputs), got)
	people, _ := got["people"].([]map[string]any)
	require.NotEmpty(t, people, "%#v", got["people"])
	assert.ElementsMatch(t, []string{"age", "home", "name"}, slices.Collect(maps.Keys(people[0])))

	// The backend takes the spec and the inputs as they are, for callers
	// that bypass the client.
	spec := command.Spec{Signature: sig}
	outputs, err := executeRaw(env, p.Hash, spec, `{"doc":{"text":"Ann lives in Oslo.","lang":null}}`)
	require.NoError(t, err)
	want, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(outputs), "a left-out Optional field is a null")
	_, err = executeRaw(env, p.Hash, spec, `{"doc":{"lang":"en"}}`)
	requireCode(t, adapter.CodeInvalidArgument, err)
	assert.Contains(t, err.Error(), `input doc: expected Document, got an object without "text"`)

	_, err = c.Execute(ctx, p.ID, map[string]any{"doc": "Ann lives in Oslo."})
	requireCode(t, adapter.CodeInvalidArgument, err)
	assert.Contains(t, err.Error(), `input doc: expected Document, got string "Ann lives in Oslo."`)
	bad := sig
	bad.Models = append(slices.Clone(sig.Models), dspgo.Model{Name: "Unused", Fields: []dspgo.Field{{Name: "x"}}})
	requireRefused(t, env, bad, `model "Unused" is not used by any field`)
}

// requireRefused checks that creating a program of sig is
// CodeInvalidArgument whose message holds want, from the client and from
// the backend (for callers that bypass the client).
func requireRefused(t TB, env *Env, sig dspgo.Signature, want string) {
	t.Helper()
	for _, via := range []string{"client", "backend"} {
		var err error
		if via == "client" {
			_, err = env.Client.CreateProgram(env.Ctx, dspgo.ProgramSpec{Signature: sig})
		} else {
			args, _ := json.Marshal(command.CreateArgs{ProgramID: "refused", Spec: command.Spec{Signature: sig}})
			_, err = env.Adapter.Call(env.Ctx, adapter.Request{Command: command.CreateProgram, Args: args})
		}
		requireCode(t, adapter.CodeInvalidArgument, err)
		assert.Contains(t, err.Error(), want, via)
	}
}

func caseDefaults(t TB, env *Env) {
	ctx, c := env.Ctx, env.Client
	sig := dspgo.Signature{
		Inputs: []dspgo.Field{{Name: "q"}, {Name: "n", Type: "int", Default: 3}, {Name: "tags", Type: "list[str]", Default: []string{"a"}},
			{Name: "doc", Type: "Doc", Default: map[string]any{"text": "none"}}},
		Outputs: []dspgo.Field{{Name: "answer"}, {Name: "score", Type: "float", Default: 0.5}},
		Models:  []dspgo.Model{{Name: "Doc", Fields: []dspgo.Field{{Name: "text"}, {Name: "lang", Default: "en"}}}},
	}
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
	require.NoError(t, err)
	full := map[string]any{"q": "?", "n": 3, "tags": []string{"a"}, "doc": map[string]any{"text": "none", "lang": "en"}}
	given, err := c.Execute(ctx, p.ID, full)
	require.NoError(t, err)
	assert.Equal(t, expected(t, p, full), given)
	got, err := c.Execute(ctx, p.ID, map[string]any{"q": "?"})
	require.NoError(t, err)
	assert.Equal(t, given, got, "inputs left out take their defaults")

	want, err := json.Marshal(given)
	require.NoError(t, err)
	spec := command.Spec{Signature: sig}
	for _, inputs := range []string{`{"q":"?"}`, `{"q":"?","doc":{"text":"none"}}`, `{"q":"?","n":3,"tags":["a"],"doc":{"lang":"en","text":"none"}}`} {
		outputs, err := executeRaw(env, p.Hash, spec, inputs)
		require.NoError(t, err, inputs)
		assert.JSONEq(t, string(want), string(outputs), "the backend fills in the defaults of %s", inputs)
	}
	_, err = c.Execute(ctx, p.ID, map[string]any{"q": "?", "bogus": 1})
	requireCode(t, adapter.CodeInvalidArgument, err)
	assert.Contains(t, err.Error(), `input "bogus" is not in the signature`)
	_, err = executeRaw(env, p.Hash, spec, `{"q":"?","bogus":1}`)
	requireCode(t, adapter.CodeInvalidArgument, err)
	assert.Contains(t, err.Error(), `input "bogus" is not in the signature`, "from the backend")

	bad := sig
	bad.Inputs = append(slices.Clone(sig.Inputs), dspgo.Field{Name: "k", Type: "int", Default: "three"})
	requireRefused(t, env, bad, `input field "k" default: expected int, got string "three"`)
}

func caseUnimplemented(t TB, env *Env) {
	_, err := env.Adapter.Call(env.Ctx, adapter.Request{Command: "no_such_command"})
	requireCode(t, adapter.CodeUnimplemented, err)
	assert.ErrorIs(t, err, adapter.ErrUnimplemented)
	require.NoError(t, env.Client.Ping(env.Ctx), "still usable")
}

func caseCanceled(t TB, env *Env) {
	p := create(t, env, "question -> answer")
	ctx, cancel := context.WithCancel(env.Ctx)
	cancel()
	_, err := env.Adapter.Call(ctx, adapter.Request{Command: command.Ping})
	requireCode(t, adapter.CodeCanceled, err)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = env.Client.Execute(ctx, p.ID, map[string]any{"question": "?"})
	requireCode(t, adapter.CodeCanceled, err)
	_, err = env.Client.Execute(env.Ctx, p.ID, map[string]any{"question": "?"})
	require.NoError(t, err, "still usable")
}

func caseDeadline(t TB, env *Env) {
	p := create(t, env, "question -> answer")
	require.NoError(t, env.Client.ConfigureLM(env.Ctx, dspgo.LMConfig{Provider: dspgo.ProviderDummy, Delay: 30 * time.Second}))
	ctx, cancel := context.WithTimeout(env.Ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := env.Client.Execute(ctx, p.ID, map[string]any{"question": "slow"})
	requireCode(t, adapter.CodeDeadlineExceeded, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 10*time.Second, "the caller is not held by the slow backend")

	require.NoError(t, env.Client.ConfigureLM(env.Ctx, dspgo.LMConfig{Provider: dspgo.ProviderDummy}))
	in := map[string]any{"question": "fast"}
	out, err := env.Client.Execute(env.Ctx, p.ID, in)
	require.NoError(t, err, "the adapter stays usable")
	assert.Equal(t, expected(t, p, in), out, "and answers its own request, not the late one")
}

func caseConcurrent(t TB, env *Env) {
	p := create(t, env, "question, n: int -> answer, score: float")
	const n = 64
	outs := make([]map[string]any, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = env.Client.Execute(env.Ctx, p.ID, map[string]any{"question": fmt.Sprint("q", i), "n": i})
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "goroutine %d", i)
		assert.Equal(t, expected(t, p, map[string]any{"question": fmt.Sprint("q", i), "n": i}), outs[i], "goroutine %d got its own outputs", i)
	}
}

func caseUnicode(t TB, env *Env) {
	p := create(t, env, "text -> summary", func(s *dspgo.ProgramSpec) { s.Instructions = "Résumé — 要約 🎉 \"quoted\"\n\ttabs" })
	for _, text := range []string{"héllo wörld", "世界 🎉", "\u0000\u001f control", "<script>&amp;</script>", "\u2028\u2029", strings.Repeat("é", 1000)} {
		in := map[string]any{"text": text}
		out, err := env.Client.Execute(env.Ctx, p.ID, in)
		require.NoError(t, err)
		assert.Equal(t, expected(t, p, in), out, "%q", text)
	}
}

func caseLargePayload(t TB, env *Env) {
	p := create(t, env, "text -> summary")
	in := map[string]any{"text": strings.Repeat("dspgo 🎉 ", 1<<20/11)}
	out, err := env.Client.Execute(env.Ctx, p.ID, in)
	require.NoError(t, err)
	assert.Equal(t, expected(t, p, in), out, "the backend saw the 1 MiB input byte for byte")
}

func caseOverLimit(t TB, env *Env) {
	limit := env.Adapter.Capabilities().MaxFrameBytes
	p := create(t, env, "text -> summary")
	_, err := env.Client.Execute(env.Ctx, p.ID, map[string]any{"text": strings.Repeat("x", limit+1)})
	requireCode(t, adapter.CodeResourceExhausted, err)
	out, err := env.Client.Execute(env.Ctx, p.ID, map[string]any{"text": "small"})
	require.NoError(t, err, "the adapter stays usable")
	assert.Contains(t, out, "summary")
}

func caseHostileInputs(t TB, env *Env) {
	ctx := env.Ctx
	p := create(t, env, "m: dict[str, int], n: float -> out")
	wide := make(map[string]any, 10_000)
	for i := range 10_000 {
		wide[fmt.Sprint("k", i)] = i
	}
	in := map[string]any{"m": wide, "n": 1.5}
	out, err := env.Client.Execute(ctx, p.ID, in)
	require.NoError(t, err, "a 10,000-key object")
	assert.Equal(t, expected(t, p, in), out)

	// Past the client, straight to the backend: each is answered, promptly.
	bounded, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	spec, err := json.Marshal(command.Spec{Signature: p.Spec.Signature, Kind: p.Spec.Kind})
	require.NoError(t, err)
	huge := json.RawMessage(`{"spec_hash":"` + p.Hash + `","spec":` + string(spec) + `,"inputs":{"m":{},"n":1e400}}`)
	_, err = env.Adapter.Call(bounded, adapter.Request{Command: command.ExecuteProgram, Args: huge})
	requireCode(t, adapter.CodeInvalidArgument, err, "a number beyond a double's range")
	assert.Contains(t, err.Error(), "n")

	deep := json.RawMessage(`{"spec_hash":"x","inputs":` + strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200) + `}`)
	_, err = env.Adapter.Call(bounded, adapter.Request{Command: command.ExecuteProgram, Args: deep})
	requireCode(t, adapter.CodeInvalidArgument, err, "nesting past the limit")
	require.NoError(t, env.Client.Ping(ctx), "still usable")
}

func caseSpecResent(t TB, env *Env) {
	p := create(t, env, "question -> answer")
	in := map[string]any{"question": "?"}
	before, err := env.Client.Execute(env.Ctx, p.ID, in)
	require.NoError(t, err)
	// Make the backend forget every compiled spec, as a restarted worker
	// would have.
	_, err = env.Adapter.Call(env.Ctx, adapter.Request{Command: command.Reset})
	require.NoError(t, err)
	after, err := env.Client.Execute(env.Ctx, p.ID, in)
	require.NoError(t, err)
	assert.Equal(t, before, after)
}

func caseSessionIsolation(t TB, env *Env) {
	ctx, c := env.Ctx, env.Client
	s1, s2 := c.Session("s1"), c.Session("s2")
	p1, err := s1.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: dspgo.MustParseSignature("question -> answer")})
	require.NoError(t, err)
	assert.Equal(t, "s1", p1.Session)

	_, err = c.GetProgram(ctx, "p")
	requireCode(t, adapter.CodeNotFound, err, "invisible to the default scope")
	_, err = s2.GetProgram(ctx, "p")
	requireCode(t, adapter.CodeNotFound, err, "invisible to another session")
	_, err = s2.Execute(ctx, "p", map[string]any{"question": "?"})
	requireCode(t, adapter.CodeNotFound, err)

	p2, err := s2.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: dspgo.MustParseSignature("text -> summary")})
	require.NoError(t, err, "the same id in another session")
	out1, err := s1.Execute(ctx, "p", map[string]any{"question": "?"})
	require.NoError(t, err)
	assert.Equal(t, expected(t, p1, map[string]any{"question": "?"}), out1)
	out2, err := s2.Execute(ctx, "p", map[string]any{"text": "?"})
	require.NoError(t, err)
	assert.Equal(t, expected(t, p2, map[string]any{"text": "?"}), out2)

	list, err := s1.ListPrograms(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 1)
	list, err = c.ListPrograms(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)
}

func caseSessionClose(t TB, env *Env) {
	ctx, c := env.Ctx, env.Client
	s := c.Session("closing")
	_, err := s.CreateProgram(ctx, dspgo.ProgramSpec{ID: "p", Signature: dspgo.MustParseSignature("question -> answer")})
	require.NoError(t, err)
	require.NoError(t, s.Close(ctx))
	require.NoError(t, s.Close(ctx), "idempotent")

	_, err = s.Execute(ctx, "p", map[string]any{"question": "?"})
	requireCode(t, adapter.CodeFailedPrecondition, err)
	assert.ErrorIs(t, err, dspgo.ErrSessionClosed)

	again := c.Session("closing")
	_, err = again.GetProgram(ctx, "p")
	requireCode(t, adapter.CodeNotFound, err, "the closed session's programs are gone")
	assert.Zero(t, c.Stats().Programs)
}

func caseConfigureLM(t TB, env *Env) {
	ctx, c := env.Ctx, env.Client
	require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Provider: dspgo.ProviderDummy}))
	p := create(t, env, "question -> answer")
	in := map[string]any{"question": "?"}
	out, err := c.Execute(ctx, p.ID, in)
	require.NoError(t, err)
	assert.Equal(t, expected(t, p, in), out)

	err = c.ConfigureLM(ctx, dspgo.LMConfig{Provider: "nonexistent"})
	requireCode(t, adapter.CodeInvalidArgument, err)
	assert.Contains(t, err.Error(), "nonexistent")
	temp := 3.0
	requireCode(t, adapter.CodeInvalidArgument, c.ConfigureLM(ctx, dspgo.LMConfig{Temperature: &temp}))
	requireCode(t, adapter.CodeInvalidArgument, c.ConfigureLM(ctx, dspgo.LMConfig{Engine: "tensorflow"}))
	// Every backend takes a DSPy adapter; the dummy ignores it.
	require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Provider: dspgo.ProviderDummy, DSPyAdapter: "json"}))
	out, err = c.Execute(ctx, p.ID, in)
	require.NoError(t, err)
	assert.Equal(t, expected(t, p, in), out)
	require.NoError(t, c.ConfigureLM(ctx, dspgo.LMConfig{Provider: dspgo.ProviderDummy}))
	// The dummy provider's test knobs are checked as strictly.
	for _, args := range []string{
		`{"provider":"dummy","fail_after_chunks":-1}`,
		`{"provider":"dummy","script":[{"tool":"t"}]}`,
		`{"provider":"dummy","script":[{"finish":false}]}`,
		`{"provider":"dummy","dspy_adapter":"yaml"}`,
		`{"provider":"dummy","engine":"native","dspy_adapter":"xml"}`,
	} {
		_, err := env.Adapter.Call(ctx, adapter.Request{Command: command.ConfigureLM, Args: json.RawMessage(args)})
		requireCode(t, adapter.CodeInvalidArgument, err, "%s", args)
	}
}

func caseCrashRecovery(t TB, env *Env) {
	ctx, f := env.Ctx, env.Harness.Faults
	p := create(t, env, "question -> answer")
	in := map[string]any{"question": "?"}
	before, err := env.Client.Execute(ctx, p.ID, in)
	require.NoError(t, err)

	require.NoError(t, f.Crash(ctx, env.Adapter))
	_, err = env.Client.Execute(ctx, p.ID, in)
	if err != nil {
		requireCode(t, adapter.CodeUnavailable, err, "a crash is CodeUnavailable")
	}
	if f.Recover != nil {
		require.NoError(t, f.Recover(ctx, env.Adapter))
	}
	// The adapter restarts its worker by itself, or was recovered: poll
	// until it serves again.
	var after map[string]any
	for {
		after, err = env.Client.Execute(ctx, p.ID, in)
		if err == nil || adapter.CodeOf(err) != adapter.CodeUnavailable {
			break
		}
		select {
		case <-ctx.Done():
			t.Errorf("the adapter did not come back before the case's deadline: %v", err)
			t.FailNow()
		case <-time.After(20 * time.Millisecond):
		}
	}
	require.NoError(t, err)
	assert.Equal(t, before, after, "the program survived the crash")
}

func caseStats(t TB, env *Env) {
	stats := func() adapter.Stats { s, _ := adapter.StatsOf(env.Adapter); return s }
	before := stats()
	for range 5 {
		_, err := env.Adapter.Call(env.Ctx, adapter.Request{Command: command.Ping})
		require.NoError(t, err)
	}
	for range 3 {
		_, err := env.Adapter.Call(env.Ctx, adapter.Request{Command: "no_such_command"})
		require.Error(t, err)
	}
	after := stats()
	assert.Equal(t, before.Calls+8, after.Calls, "calls")
	assert.Equal(t, before.Failures+3, after.Failures, "failures")
	assert.Zero(t, after.InFlight)
	// A remote adapter counts its hosts' workers from their announcements,
	// which arrive on their own: the figure may lag the calls.
	assert.True(t, wait.Until(env.Ctx, func() bool { return stats().Workers > 0 }), "workers: %d", stats().Workers)
	assert.Equal(t, env.Adapter.Name(), after.Adapter)

	resp, err := env.Adapter.Call(env.Ctx, adapter.Request{Command: command.GetStats})
	require.NoError(t, err)
	var ws map[string]any
	require.NoError(t, json.Unmarshal(resp.Result, &ws))
	assert.Contains(t, ws, "calls")
}

func caseClose(t TB, env *Env) {
	p := create(t, env, "question -> answer")
	require.NoError(t, env.Adapter.Close(env.Ctx))
	require.NoError(t, env.Adapter.Close(env.Ctx), "idempotent")
	_, err := env.Adapter.Call(env.Ctx, adapter.Request{Command: command.Ping})
	require.ErrorIs(t, err, adapter.ErrClosed)
	_, err = env.Client.Execute(env.Ctx, p.ID, map[string]any{"question": "?"})
	require.ErrorIs(t, err, adapter.ErrClosed)
	assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err))
}

func caseNoLeak(t TB, env *Env) {
	before := goleak.IgnoreCurrent()
	a, err := env.Harness.New(env.Ctx)
	require.NoError(t, err)
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(env.Ctx, dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("question -> answer")})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Execute(env.Ctx, p.ID, map[string]any{"question": fmt.Sprint(i)})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	require.NoError(t, a.Close(env.Ctx))
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines survived Close: %v", err)
	}
	_, err = a.Call(env.Ctx, adapter.Request{Command: command.Ping})
	assert.True(t, errors.Is(err, adapter.ErrClosed))
}
