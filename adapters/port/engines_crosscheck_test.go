package port_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/lmtest"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/testutil"
)

// lmKeyEnv is the worker variable holding the test LM's API key. Each
// engine's worker gets its own key, so the server's records say which
// worker sent a request.
const lmKeyEnv = "DSPGOTEST_LM_KEY"

// The engines, and the keys their workers send.
var engineKeys = map[string]string{"native": "key-native", "dspy": "key-dspy"}

// newEngineClient starts a worker on the dspy test environment's
// interpreter whose language model is srv on the given engine, and closes
// it when the test ends.
func newEngineClient(tb testing.TB, srv *lmtest.Server, engine string, opts ...dspgo.Option) *dspgo.Client {
	tb.Helper()
	python := testutil.DSPyPython(tb)
	testutil.VerifyNoChildren(tb)
	a, err := port.New(context.Background(), port.Options{
		Name: engine, Python: python, WorkerDir: testutil.PythonDir(), Logger: quiet,
		Env: []string{lmKeyEnv + "=" + engineKeys[engine]},
	})
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, a.Close(context.Background())) })
	c := dspgo.NewClient(a, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(tb, c.ConfigureLM(ctx, dspgo.LMConfig{
		Provider: dspgo.ProviderOpenAI, Engine: engine, BaseURL: srv.URL(), Model: "test-model", APIKeyEnv: lmKeyEnv,
	}))
	return c
}

// expectedOutputs are the outputs the test LM's value rule gives a
// program's output fields, converted to the Go types Execute returns.
func expectedOutputs(t *testing.T, fields []dspgo.Field) map[string]any {
	t.Helper()
	want := map[string]any{}
	for _, f := range fields {
		v, err := lmtest.Value(f.Name, f.Type)
		require.NoError(t, err, f.Name)
		typ, err := program.ParseType(f.Type)
		require.NoError(t, err, f.Name)
		want[f.Name], err = typ.Convert(v, f.Name)
		require.NoError(t, err, f.Name)
	}
	return want
}

// crossTool is the react programs' tool: it echoes its arguments.
var crossTool = dspgo.WithTool("lookup", "Looks a topic up.",
	map[string]any{"type": "object", "properties": map[string]any{"topic": map[string]any{"type": "string"}}, "required": []string{"topic"}},
	func(_ context.Context, args json.RawMessage) (any, error) {
		return map[string]any{"found": json.RawMessage(args)}, nil
	})

// requestsOf returns the recorded requests sent with an engine's key.
func requestsOf(reqs []lmtest.Request, engine string) []lmtest.Request {
	var out []lmtest.Request
	for _, r := range reqs {
		if r.Authorization == "Bearer "+engineKeys[engine] {
			out = append(out, r)
		}
	}
	return out
}

// TestCrossCheckEngines runs 50 random programs (predict,
// chain_of_thought and react) on the native and on the dspy engine against
// one test LM server: the typed outputs are identical, and are those of
// the server's value rule; the prompts are identical (DSPy's
// ChatAdapter's, system message included; every request of dspy.ReAct's
// for react); react's trajectories are identical; streams end with the same outputs,
// each field's deltas in output order and concatenating to its value's
// text. The server's records prove that each engine's worker sent its own
// requests.
func TestCrossCheckEngines(t *testing.T) {
	crossCheckEngines(t, rand.New(rand.NewPCG(50, 51)), 50)
}

// crossCheckEngines is TestCrossCheckEngines for n programs drawn with r.
func crossCheckEngines(t *testing.T, r *rand.Rand, n int) {
	srv := lmtest.New(t, lmtest.Options{})
	engines := []string{"native", "dspy"}
	clients := map[string]*dspgo.Client{}
	for _, e := range engines {
		clients[e] = newEngineClient(t, srv, e, crossTool)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	kinds := []string{dspgo.KindPredict, dspgo.KindChainOfThought, dspgo.KindReact}
	ran := map[string]int{}
	for i := range n {
		var in, out []string
		inputs := map[string]any{}
		for j := range 1 + r.IntN(3) {
			typ := crossTypes[r.IntN(len(crossTypes))]
			name := fmt.Sprintf("in%d", j)
			in = append(in, name+": "+typ)
			inputs[name] = randomInput(r, typ)
		}
		for j := range 1 + r.IntN(4) {
			// Names differ between programs, so the values do too.
			out = append(out, fmt.Sprintf("out%d_%d: %s", i, j, crossTypes[r.IntN(len(crossTypes))]))
		}
		spec := dspgo.ProgramSpec{
			ID:           fmt.Sprint("p", i),
			Signature:    dspgo.MustParseSignature(strings.Join(in, ", ") + " -> " + strings.Join(out, ", ")),
			Instructions: []string{"", "Answer briefly.", "Réponds — 简短 🎉"}[r.IntN(3)],
			Kind:         kinds[r.IntN(len(kinds))],
		}
		const stepInstructions = "Call the tool once.\n  Then finish — 简短."
		if spec.Kind == dspgo.KindReact && i%2 == 0 { // an optimizer's, without drawing: the draw stays as it was
			spec.StepInstructions = stepInstructions
			ran["react with step instructions"]++
		}
		if spec.Kind == dspgo.KindReact && i%3 != 1 { // BootstrapFewShot's demos, of the program's inputs
			trajectory, empty := "[[ ## thought_0 ## ]]\nLook it up.\n\n[[ ## tool_name_0 ## ]]\nlookup", ""
			spec.StepDemos = []dspgo.Demo{
				{Inputs: inputs, Trajectory: &empty, Outputs: map[string]any{"next_thought": "Look it up.", "next_tool_name": "lookup",
					"next_tool_args": map[string]any{"topic": "it"}}},
				{Inputs: inputs, Trajectory: &trajectory, Outputs: map[string]any{"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": map[string]any{}}},
			}
			spec.Demos = []dspgo.Demo{{Inputs: inputs, Trajectory: &trajectory, Reasoning: "The lookup answers it."}}
			ran["react with demos"]++
		}
		ran[spec.Kind]++
		what := fmt.Sprintf("program %d (%s %s, step instructions %q, %d step demos) with %v", i, spec.Kind, spec.Signature, spec.StepInstructions,
			len(spec.StepDemos), inputs)

		execs := map[string]*dspgo.Execution{}
		streams := map[string][]dspgo.StreamPart{}
		sent := map[string][][]lmtest.Message{}
		var fields []dspgo.Field
		for _, e := range engines {
			c := clients[e]
			p, err := c.CreateProgram(ctx, spec)
			require.NoError(t, err, what)
			fields = p.OutputFields()

			// ExecuteDetailed runs as Execute does, and gives react's
			// trajectory too.
			before := len(srv.Requests())
			execs[e], err = c.ExecuteDetailed(ctx, p.ID, inputs)
			require.NoError(t, err, "%s on %s", what, e)
			reqs := settled(t, ctx, srv)[before:]
			checkRequests(t, reqs, e, spec.Kind, false, what)
			for _, r := range reqs {
				sent[e] = append(sent[e], r.Messages)
			}

			before = len(srv.Requests())
			for part, err := range c.ExecuteStream(ctx, p.ID, inputs) {
				require.NoError(t, err, "%s streamed on %s", what, e)
				streams[e] = append(streams[e], part)
			}
			checkRequests(t, settled(t, ctx, srv)[before:], e, spec.Kind, true, what)
		}

		want := expectedOutputs(t, fields)
		assert.Equal(t, sent["dspy"], sent["native"], "%s: the engines' prompts, DSPy's ChatAdapter's (dspy.ReAct's for react)", what)
		assert.Equal(t, execs["native"].Outputs, execs["dspy"].Outputs, "%s: the engines' outputs", what)
		for _, e := range engines {
			assert.Equal(t, want, execs[e].Outputs, "%s on %s: the value rule's outputs", what, e)
			assert.NotZero(t, execs[e].Usage.Total, "%s on %s: the LM's usage", what, e)
		}
		if spec.Kind == dspgo.KindReact {
			assert.Equal(t, trajectoryValues(t, execs["native"].Trajectory), trajectoryValues(t, execs["dspy"].Trajectory),
				"%s: the engines' trajectories", what)
			assert.Len(t, execs["dspy"].Trajectory, 1, "%s: one tool call, then finish", what)
			for _, step := range sent["native"][:len(sent["native"])-1] {
				system := step[0].Content
				assert.Equal(t, spec.StepInstructions != "", strings.HasSuffix(system, "\n        Call the tool once.\n        Then finish — 简短."),
					"%s: a step's system message ends with the step instructions iff the program has some", what)
				assert.Equal(t, spec.StepInstructions == "", strings.Contains(system, "You are an Agent."), "%s: ReAct's own text otherwise", what)
				assert.Len(t, step, 2+2*len(spec.StepDemos), "%s: a step shows the step demos", what)
			}
			assert.Len(t, sent["native"][len(sent["native"])-1], 2+2*len(spec.Demos), "%s: the extraction shows the demos", what)
		}
		for _, e := range engines {
			checkStream(t, streams[e], fields, want, fmt.Sprintf("%s streamed on %s", what, e))
		}
	}
	t.Logf("programs by kind: %v", ran)
	for _, k := range append(kinds, "react with step instructions", "react with demos") {
		assert.NotZero(t, ran[k], "the draw includes %s programs", k)
	}
}

// settled returns the recorded requests once the server is done with
// every one of them: a record is completed after the reply's last byte,
// which the worker may have read before.
func settled(t *testing.T, ctx context.Context, srv *lmtest.Server) []lmtest.Request {
	t.Helper()
	reqs, err := srv.WaitDone(ctx, len(srv.Requests()))
	require.NoError(t, err)
	return reqs
}

// checkRequests checks the requests one execution made: all sent by the
// engine's worker, completed, in the format the server expects of it,
// streamed when the execution was.
func checkRequests(t *testing.T, reqs []lmtest.Request, engine, kind string, stream bool, what string) {
	t.Helper()
	require.NotEmpty(t, reqs, "%s on %s: the LM was called", what, engine)
	assert.Len(t, requestsOf(reqs, engine), len(reqs), "%s: every request came from the %s worker", what, engine)
	var formats []lmtest.Format
	for _, r := range reqs {
		formats = append(formats, r.Format)
		assert.True(t, r.Status == 200 && r.Completed && !r.Canceled, "%s on %s: request %d answered in full", what, engine, r.Seq)
	}
	last := reqs[len(reqs)-1]
	assert.Equal(t, stream, last.Stream, "%s on %s: the answer's request streams iff the execution does", what, engine)
	switch {
	case kind != dspgo.KindReact:
		assert.Equal(t, []lmtest.Format{lmtest.FormatChat}, formats, "%s on %s: one ChatAdapter request", what, engine)
	default:
		// dspy.ReAct, on either engine: two steps asking for next_thought,
		// next_tool_name and next_tool_args, then the ChainOfThought
		// extraction.
		assert.Equal(t, []lmtest.Format{lmtest.FormatChat, lmtest.FormatChat, lmtest.FormatChat}, formats,
			"%s on %s: dspy.ReAct's steps and extraction", what, engine)
		if len(reqs) == 3 {
			for _, r := range reqs[:2] {
				assert.Equal(t, []string{"next_thought", "next_tool_name", "next_tool_args"}, fieldNames(r.Fields), "%s on %s: a ReAct step", what, engine)
			}
			extract := fieldNames(reqs[2].Fields)
			assert.True(t, len(extract) > 0 && extract[0] == "reasoning", "%s on %s: the extraction is a ChainOfThought: %v", what, engine, extract)
		}
	}
}

func fieldNames(fields []lmtest.Field) []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return names
}

// trajectoryValues decodes a trajectory's JSON, so that two engines'
// spellings of the same JSON compare equal.
func trajectoryValues(t *testing.T, steps []dspgo.Step) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, s := range steps {
		var args, obs any
		require.NoError(t, json.Unmarshal(s.Args, &args))
		require.NoError(t, json.Unmarshal(s.Observation, &obs))
		out = append(out, map[string]any{"tool": s.Tool, "args": args, "observation": obs})
	}
	return out
}

// streamTexts returns the concatenated deltas of each field of a stream
// (its parts before the last) and the fields in the order their deltas
// came, a field listed again each time another field came between.
func streamTexts(t *testing.T, parts []dspgo.StreamPart, what string) (map[string]string, []string) {
	t.Helper()
	texts := map[string]string{}
	var order []string
	for _, p := range parts[:len(parts)-1] {
		require.Nil(t, p.Outputs, "%s: only the last part has the outputs", what)
		if len(order) == 0 || order[len(order)-1] != p.Field {
			order = append(order, p.Field)
		}
		texts[p.Field] += p.Delta
	}
	return texts, order
}

// checkStream checks a stream: its last part holds the expected outputs;
// before it, the deltas come field by field in output order, and each
// field's deltas concatenate to its value's text (a string value itself,
// any other value JSON text that decodes to it).
func checkStream(t *testing.T, parts []dspgo.StreamPart, fields []dspgo.Field, want map[string]any, what string) {
	t.Helper()
	require.NotEmpty(t, parts, what)
	assert.Equal(t, want, parts[len(parts)-1].Outputs, "%s: the final outputs", what)
	texts, order := streamTexts(t, parts, what)
	var names []string
	for _, f := range fields {
		names = append(names, f.Name)
	}
	assert.Equal(t, names, order, "%s: every field's deltas, in output order, each field once", what)
	for _, f := range fields {
		text, ok := texts[f.Name]
		if !assert.True(t, ok, "%s: deltas of %s", what, f.Name) {
			continue
		}
		typ, err := program.ParseType(f.Type)
		require.NoError(t, err)
		if typ.Kind == program.Str || typ.Kind == program.Literal {
			assert.Equal(t, want[f.Name], text, "%s: the deltas of %s", what, f.Name)
			continue
		}
		var decoded any
		if assert.NoError(t, json.Unmarshal([]byte(text), &decoded), "%s: the deltas of %s: %q", what, f.Name, text) {
			got, err := typ.Convert(decoded, f.Name)
			assert.NoError(t, err)
			assert.Equal(t, want[f.Name], got, "%s: the deltas of %s: %q", what, f.Name, text)
		}
	}
}

// TestCrossCheckEnginesDoubleBrackets streams values whose text holds "[["
// (a nested list's JSON, list[list[T]], which crossTypes leaves out) on both
// engines. DSPy 3.4.1's own StreamListener (ChatAdapter) cuts a field's text
// at its first "[[", taking it for the next "[[ ## field ## ]]" header; the
// dspy engine reads DSPy's raw LM stream with the native engine's reply
// streamer instead, so both engines' deltas are the values' text.
func TestCrossCheckEnginesDoubleBrackets(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	spec := dspgo.ProgramSpec{ID: "brackets", Signature: dspgo.MustParseSignature("question -> grid: list[list[int]], names: list[list[str]], note")}
	inputs := map[string]any{"question": "Which grid?"}

	texts := map[string]map[string]string{}
	for _, e := range []string{"native", "dspy"} {
		c := newEngineClient(t, srv, e)
		p, err := c.CreateProgram(ctx, spec)
		require.NoError(t, err)
		want := expectedOutputs(t, p.OutputFields())
		got, err := c.Execute(ctx, p.ID, inputs)
		require.NoError(t, err, e)
		assert.Equal(t, want, got, "%s: the value rule's outputs", e)
		var parts []dspgo.StreamPart
		for part, err := range c.ExecuteStream(ctx, p.ID, inputs) {
			require.NoError(t, err, e)
			parts = append(parts, part)
		}
		require.NotEmpty(t, parts, e)
		assert.Equal(t, want, parts[len(parts)-1].Outputs, "%s: the stream's outputs", e)
		checkStream(t, parts, p.OutputFields(), want, e)
		texts[e], _ = streamTexts(t, parts, e)
	}
	for _, r := range settled(t, ctx, srv) {
		assert.Equal(t, lmtest.FormatChat, r.Format, "no JSON fallback: the ChatAdapter reply parsed")
	}

	assert.NotEmpty(t, texts["native"]["grid"])
	assert.Equal(t, texts["native"], texts["dspy"], "the same deltas' text on both engines")
}

// TestCrossCheckEnginesEveryType runs one program whose inputs and outputs
// are of every type in crossTypes (Optional, Union, Any, tuples and
// dict[int, V] among them) on both engines: the typed outputs are the
// value rule's, run and streamed, and the same on both.
func TestCrossCheckEnginesEveryType(t *testing.T) {
	srv := lmtest.New(t, lmtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	r := rand.New(rand.NewPCG(19, 1))
	var in, out []string
	inputs := map[string]any{}
	for i, typ := range crossTypes {
		name := fmt.Sprintf("in%d", i)
		in = append(in, name+": "+typ)
		inputs[name] = randomInput(r, typ)
		out = append(out, fmt.Sprintf("out%d: %s", i, typ))
	}
	spec := dspgo.ProgramSpec{ID: "every", Signature: dspgo.MustParseSignature(strings.Join(in, ", ") + " -> " + strings.Join(out, ", "))}

	outputs := map[string]map[string]any{}
	for _, e := range []string{"native", "dspy"} {
		c := newEngineClient(t, srv, e)
		p, err := c.CreateProgram(ctx, spec)
		require.NoError(t, err)
		want := expectedOutputs(t, p.OutputFields())
		outputs[e], err = c.Execute(ctx, p.ID, inputs)
		require.NoError(t, err, e)
		assert.Equal(t, want, outputs[e], "%s: the value rule's outputs", e)
		var parts []dspgo.StreamPart
		for part, err := range c.ExecuteStream(ctx, p.ID, inputs) {
			require.NoError(t, err, e)
			parts = append(parts, part)
		}
		checkStream(t, parts, p.OutputFields(), want, e+" streamed")
	}
	assert.Equal(t, outputs["native"], outputs["dspy"])
	for _, r := range settled(t, ctx, srv) {
		assert.Equal(t, lmtest.FormatChat, r.Format, "no JSON fallback: the ChatAdapter reply parsed")
	}
}
