package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/config"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/registry"
)

type runFlags struct {
	signature, program, module, inputsFile, output, instructions, kind, metricsAddr string
	inputs                                                                          []string
	concurrency                                                                     int
}

func (a *app) runCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a program on inputs and print its outputs as JSON lines",
		Long: `Run a program, given by --signature or a spec file (--program), on one row of
inputs (--input name=value, repeatable: a str or Literal input takes the
text as it is, any other the text read as JSON) or on JSON lines (--inputs
FILE, or stdin; a program of no inputs, "-> joke", runs one row of none
without them, as does one whose inputs are all Optional, which a row may
leave out). Each row prints one JSON line, in input order, as soon as it
and the rows before it are done (the input is read as the rows run, a
few rows ahead, so a batch of any length, or a pipe that stays open,
prints as it goes): {"row": N, "outputs": {...}}, or {"row": N, "error":
{"code", "message"}} saying why the row failed; N is the row's line
number in the input (blank lines count; 1 for --input). A failed row
never stops the others; a line over 64 MiB ends the batch there, bad
usage, after the rows before it. --output json prints one JSON array of
the same objects, --output table a table with the row number first, both
once every row is done. The backend runs the configured LM
(lm.*); one line on stderr says which adapter and LM answered, and why
those. Exit status: 0 when every row succeeded, 1 when some failed, 2 for
bad usage, which a bad --input is (a name or value the program does not
take: no row is printed, and the message names the --input flags it
takes).`,
		Example: `  dspgo run --signature "question -> answer" --input question="What is Go?"
  dspgo run --module rag --program rag.json --signature "question -> answer" --input question=Why --handlers my_project.dspgo_modules
  dspgo run --signature "question, n: int -> answers: list[str]" --input question=Why --input n=3
  dspgo run --program qa.yaml --inputs questions.jsonl --concurrency 8 --output table`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runProgram(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.signature, "signature", "", `the program's signature, e.g. "question, context: list[str] -> answer"; with a DSPy --program, its fields' names and types`)
	fl.StringVar(&f.program, "program", "", "a program spec file, YAML or JSON (id, signature, models, instructions, kind), or a DSPy program's module.save JSON")
	fl.StringVar(&f.module, "module", "", "run the custom dspy.Module a python.handlers module registered under this name (with --signature; --program is then its module.save JSON)")
	fl.StringVar(&f.instructions, "instructions", "", "instructions for the language model (with --signature)")
	fl.StringVar(&f.kind, "kind", "", "predict, chain_of_thought or react (with --signature; default predict)")
	fl.StringArrayVar(&f.inputs, "input", nil, "an input as name=value (repeatable): a str input's text as it is, others as JSON: n=3, tags='[\"a\"]'")
	fl.StringVar(&f.inputsFile, "inputs", "", `a file of JSON lines, one object of inputs per row ("-" for stdin)`)
	fl.IntVar(&f.concurrency, "concurrency", 4, "rows run at once")
	fl.StringVar(&f.output, "output", "jsonl", "output format: jsonl (a JSON line per row), json (one pretty JSON array) or table")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address (such as 127.0.0.1:9464) while the run lasts")
	return cmd
}

// row is one input row and its result.
type row struct {
	n      int
	inputs map[string]any
	flags  map[string]string // the texts of --input, read into inputs once the program is known
	err    error             // a row that could not be read
	out    map[string]any
}

func (a *app) runProgram(ctx context.Context, f runFlags) error {
	spec, err := programSpec(f)
	if err != nil {
		return err
	}
	switch f.output {
	case "jsonl", "json", "table":
	default:
		return usagef("use --output jsonl, json or table", "unknown output format %q", f.output)
	}
	if f.concurrency < 1 {
		return usagef("use --concurrency 1 or more", "--concurrency %d", f.concurrency)
	}
	source, err := a.rowSource(f, len(spec.Signature.Inputs) == 0, noneRequired(spec.Signature))
	if err != nil {
		return err
	}
	cfg, err := a.load(nil)
	if err != nil {
		return err
	}
	backend, res, err := a.open(ctx, cfg)
	if err != nil {
		return err
	}
	opened := backend
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), cfg.StopTimeout)
		defer cancel()
		_ = backend.Close(closeCtx)
	}()
	if f.metricsAddr != "" {
		stop, instrumented, err := a.serveMetrics(f.metricsAddr, backend)
		if err != nil {
			return err
		}
		defer stop()
		backend = instrumented
	}
	client := dspgo.NewClient(backend) // its LM is configured: Open applied lm.*
	prog, err := client.CreateProgram(ctx, spec)
	if err != nil {
		if adapter.CodeOf(err) == adapter.CodeInvalidArgument {
			return usagef("check the signature and the types of its fields", "%v", err)
		}
		return err // the backend failed (unavailable, timed out): not the command line's fault
	}
	in, err := source()
	if err != nil {
		return err
	}
	defer in.close()

	rep := &reporter{a: a, format: f.output}
	if in.fromFlags {
		// One row from the command line: a bad input is bad usage.
		rw, _ := in.next()
		rw.inputs = flagInputs(prog, rw.flags)
		rw.out, rw.err = client.Execute(ctx, prog.ID, rw.inputs)
		if adapter.CodeOf(rw.err) == adapter.CodeInvalidArgument {
			fix := "check the program (--program, --module) and its state"
			if strings.Contains(rw.err.Error(), "input ") { // the Go client's and the workers' words for an input
				fix = inputFix(prog)
			}
			return usagef(fix, "%v", rw.err)
		}
		rep.emit(rw)
	} else {
		err = a.execute(ctx, client, prog.ID, in.next, f.concurrency, rep.emit)
	}
	if rerr := rep.finish(); err == nil {
		err = rerr
	}
	if rep.succeeded {
		a.answeredBy(ctx, opened, cfg, res)
	}
	return err
}

// answeredBy says in one line on stderr which backend and LM answered,
// and why each: the adapter and the layer that chose it, the LM Open
// applied (or, when it applied none, worker hosts keeping theirs, the one
// a worker reports in get_stats) and the layer that set lm.provider.
// The caller says it only when a row succeeded: else the failures say why.
func (a *app) answeredBy(ctx context.Context, backend adapter.Adapter, cfg *config.Config, res registry.Resolution) {
	chosen := "set by " + res.Source
	if res.Requested != res.Name {
		chosen += fmt.Sprintf(", as %q", res.Requested)
	}
	if res.Environment != "" {
		chosen += fmt.Sprintf(", in environment %q", res.Environment)
	}
	provider, model, why := res.LM, cfg.LM.Model, "lm.provider set by "+res.LMSource
	if res.LM == "" {
		provider, model = workerLM(ctx, backend)
		why = "the workers' own; no lm.* key is set here"
	}
	var lm string
	switch provider {
	case dspgo.ProviderDummy:
		lm = fmt.Sprintf("the offline dummy LM (%s); set lm.provider to use a real model", why)
	case "":
		lm = fmt.Sprintf("an LM the workers do not name (%s)", why)
	default:
		lm = fmt.Sprintf("LM %s", provider)
		if model != "" {
			lm += fmt.Sprintf(" model %q", model)
		}
		lm += fmt.Sprintf(" (%s)", why)
	}
	fmt.Fprintf(a.stderr, "dspgo: answered by adapter %q (%s) with %s\n", res.Name, chosen, lm)
}

// workerLM returns the provider and model a worker of the backend runs,
// from its get_stats; "" when it does not say.
func workerLM(ctx context.Context, backend adapter.Adapter) (provider, model string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := backend.Call(ctx, adapter.Request{Command: command.GetStats})
	if err != nil {
		return "", ""
	}
	var stats command.StatsResult
	if json.Unmarshal(resp.Result, &stats) != nil {
		return "", ""
	}
	return stats.LM.Provider, stats.LM.Model
}

func inputFix(p *dspgo.Program) string {
	var parts []string
	for _, in := range p.Spec.Signature.Inputs {
		parts = append(parts, "--input "+in.Name+"=…")
	}
	return "the program takes " + strings.Join(parts, " ")
}

// programSpec builds the spec from --signature or --program.
func programSpec(f runFlags) (dspgo.ProgramSpec, error) {
	if f.module != "" {
		return moduleSpec(f)
	}
	var data []byte // the --program file, read once
	if f.program != "" {
		var err error
		if data, err = readProgramFile(f.program); err != nil {
			return dspgo.ProgramSpec{}, err
		}
	}
	switch {
	case f.program != "" && isDSPyProgram(data):
		return loadDSPyProgram(f, data)
	case f.signature != "" && f.program != "":
		return dspgo.ProgramSpec{}, usagef("give one of them", "--signature and --program are both set")
	case f.signature != "":
		sig, err := dspgo.ParseSignature(f.signature)
		if err != nil {
			return dspgo.ProgramSpec{}, usagef(`write it like "question, context: list[str] -> answer"`, "--signature: %v", err)
		}
		switch f.kind {
		case "", dspgo.KindPredict, dspgo.KindChainOfThought, dspgo.KindReact:
		default:
			return dspgo.ProgramSpec{}, usagef("use --kind predict, chain_of_thought or react (a module: --module NAME)", "unknown --kind %q", f.kind)
		}
		return dspgo.ProgramSpec{Signature: sig, Instructions: f.instructions, Kind: f.kind}, nil
	case f.program != "":
		return loadSpec(f.program, data)
	}
	return dspgo.ProgramSpec{}, usagef(`add --signature "question -> answer" or --program FILE`, "no program given")
}

// specFile is the format of --program files.
type specFile struct {
	ID           string        `json:"id" yaml:"id"`
	Signature    string        `json:"signature" yaml:"signature"`
	Inputs       []dspgo.Field `json:"inputs" yaml:"inputs"`
	Outputs      []dspgo.Field `json:"outputs" yaml:"outputs"`
	Models       []dspgo.Model `json:"models" yaml:"models"`
	Instructions string        `json:"instructions" yaml:"instructions"`
	Kind         string        `json:"kind" yaml:"kind"`
}

// loadSpec reads data, the --program file at path, in the format of
// specFile: JSON when path ends in .json, YAML otherwise.
func loadSpec(path string, data []byte) (dspgo.ProgramSpec, error) {
	var sf specFile
	var err error
	if strings.EqualFold(filepath.Ext(path), ".json") {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		dec.UseNumber() // 0 is an int and 0.0 a float, as in the YAML and to Python (a constraint shows which)
		err = dec.Decode(&sf)
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		err = dec.Decode(&sf)
	}
	if err != nil {
		// yaml names the Go type of an unknown field's struct: not the reader's business.
		msg := strings.ReplaceAll(err.Error(), " in type main.specFile", "")
		return dspgo.ProgramSpec{}, usagef("the file holds id, signature (or inputs and outputs), models, instructions and kind", "--program %s: %s", path, msg)
	}
	spec := dspgo.ProgramSpec{ID: sf.ID, Instructions: sf.Instructions, Kind: sf.Kind,
		Signature: dspgo.Signature{Inputs: sf.Inputs, Outputs: sf.Outputs, Models: sf.Models}}
	if sf.Signature != "" {
		if spec.Signature, err = program.ParseSignatureModels(sf.Signature, sf.Models); err != nil {
			return dspgo.ProgramSpec{}, usagef(`write it like "question -> answer"`, "--program %s: %v", path, err)
		}
	}
	return spec, nil
}

// noneRequired reports whether every input of sig may be left out (is
// Optional).
func noneRequired(sig dspgo.Signature) bool {
	models, _ := program.CompileModels(sig.Models) // checked when the program is created
	for _, f := range sig.Inputs {
		if t, _ := models.ParseType(f.Type); t.Kind != program.Optional {
			return false
		}
	}
	return true
}

// rowSource checks where the input rows come from, before anything is
// started, and returns the function that opens them. A program of no
// inputs (noInputs) given none runs one row of none; so does one whose
// inputs may all be left out (noneRequired) given none and no rows on
// stdin (a terminal, or nothing piped in).
func (a *app) rowSource(f runFlags, noInputs, noneRequired bool) (func() (rows, error), error) {
	if len(f.inputs) > 0 || noInputs && f.inputsFile == "" {
		if f.inputsFile != "" {
			return nil, usagef("give one of them", "--input and --inputs are both set")
		}
		flags := map[string]string{}
		for _, kv := range f.inputs {
			name, value, ok := strings.Cut(kv, "=")
			if !ok || name == "" {
				return nil, usagef("write --input name=value", "--input %q has no name=", kv)
			}
			flags[name] = value
		}
		return func() (rows, error) { return oneRow(&row{n: 1, flags: flags}), nil }, nil
	}
	var open func() (io.ReadCloser, error)
	switch {
	case f.inputsFile != "" && f.inputsFile != "-":
		if _, err := os.Stat(f.inputsFile); err != nil {
			return nil, usagef("give an existing file", "--inputs: %v", err)
		}
		open = func() (io.ReadCloser, error) { return os.Open(f.inputsFile) }
	case f.inputsFile == "-" || !isTerminal(a.stdin, a.stdinIsTerminal):
		open = func() (io.ReadCloser, error) { return io.NopCloser(a.stdin), nil }
	case noneRequired:
		return func() (rows, error) { return oneRow(&row{n: 1, flags: map[string]string{}}), nil }, nil
	default:
		return nil, usagef("give --input name=value, --inputs FILE, or JSON lines on stdin", "no inputs")
	}
	return func() (rows, error) {
		r, err := open()
		if err != nil {
			return rows{}, err
		}
		next := jsonLines(r)
		first, err := next() // a file of no rows is told now, before a row runs
		switch {
		case errors.Is(err, io.EOF) && noneRequired && f.inputsFile == "":
			_ = r.Close()
			return oneRow(&row{n: 1, flags: map[string]string{}}), nil
		case errors.Is(err, io.EOF):
			_ = r.Close()
			return rows{}, usagef("give --input name=value, --inputs FILE, or JSON lines on stdin", "no input rows")
		case err != nil:
			_ = r.Close()
			return rows{}, err
		}
		return rows{next: func() (*row, error) {
			if rw := first; rw != nil {
				first = nil
				return rw, nil
			}
			return next()
		}, close: r.Close}, nil
	}, nil
}

// flagInputs reads the texts of --input for p's inputs: an input of type
// str or a Literal of strings takes the text itself (question=42 is the
// string "42"),
// and so does an Optional of one unless the text is null; any other input
// takes flagValue(text).
func flagInputs(p *dspgo.Program, flags map[string]string) map[string]any {
	types := make(map[string]program.Type, len(p.Spec.Signature.Inputs))
	models, _ := program.CompileModels(p.Spec.Signature.Models) // valid: the program was created
	for _, f := range p.Spec.Signature.Inputs {
		types[f.Name], _ = models.ParseType(f.Type)
	}
	inputs := make(map[string]any, len(flags))
	for name, text := range flags {
		t, known := types[name]
		if t.Kind == program.Optional && text != "null" {
			t = *t.Elem
		}
		if known && (t.Kind == program.Str || t.StrLiteral()) {
			inputs[name] = text
		} else {
			inputs[name] = flagValue(text)
		}
	}
	return inputs
}

// flagValue reads an --input value: JSON when it is valid JSON other than
// a bare string, the text itself otherwise; the client converts it to the
// field's declared type.
func flagValue(s string) any {
	var v any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&v); err == nil && !dec.More() {
		if _, isString := v.(string); !isString {
			return v
		}
	}
	return s
}

// execute runs the rows next reads with the given concurrency, handing
// each to emit in input order as it is done (runBatch), showing progress
// on a terminal. The error is the one that ended the reading early: a line
// over the limit (bad usage, which names it), or another saying after
// which row (ctx's end, a read that failed).
func (a *app) execute(ctx context.Context, c *dspgo.Client, id string, next func() (*row, error), concurrency int, emit func(*row)) error {
	progress := newProgress(a.stderr, isTerminal(a.stderr, a.stderrIsTerminal))
	defer progress.finish()
	counted := func() (*row, error) {
		rw, err := next()
		if errors.Is(err, io.EOF) {
			progress.ended()
		} else if err == nil {
			progress.read()
		}
		return rw, err
	}
	run := func(rw *row) { rw.out, rw.err = c.Execute(ctx, id, rw.inputs) }
	last := 0 // the number of the last row emitted
	err := runBatch(ctx, counted, concurrency, run, func(rw *row) {
		progress.done()
		last = rw.n
		emit(rw)
	})
	var usage *usageError
	if err == nil || errors.As(err, &usage) {
		return err
	}
	return fmt.Errorf("the rows after row %d did not run: %w", last, err)
}

// reporter prints a run's rows as --output asks: each JSON line as its
// row is done (jsonl), or every row at the end (json, table); and counts
// those that failed.
type reporter struct {
	a      *app
	format string
	rows   []*row // json's and table's, printed by finish
	// n counts the rows, failed those that failed; succeeded is set when
	// one did not.
	n, failed int
	succeeded bool
}

// emit takes the next row in input order.
func (r *reporter) emit(rw *row) {
	r.n++
	if rw.err != nil {
		r.failed++
	} else {
		r.succeeded = true
	}
	if r.format == "json" || r.format == "table" {
		r.rows = append(r.rows, rw)
		return
	}
	b, _ := json.Marshal(rw.result())
	fmt.Fprintln(r.a.stdout, string(b))
}

// finish prints what emit kept, and says on stderr how many rows failed.
// It returns errFailed when a row failed, and nil else.
func (r *reporter) finish() error {
	switch r.format {
	case "table":
		table := tabwriter.NewWriter(r.a.stdout, 0, 4, 2, ' ', 0)
		columns := tableColumns(r.rows)
		fmt.Fprintln(table, "row\t"+strings.Join(columns, "\t")+"\terror")
		for _, rw := range r.rows {
			cells := []string{fmt.Sprint(rw.n)}
			for _, col := range columns {
				cells = append(cells, cell(rw.out[col]))
			}
			errText := ""
			if rw.err != nil {
				errText = oneLine(rw.err)
			}
			fmt.Fprintln(table, strings.Join(append(cells, errText), "\t"))
		}
		_ = table.Flush()
	case "json":
		list := make([]any, 0, len(r.rows))
		for _, rw := range r.rows {
			list = append(list, rw.result())
		}
		b, _ := json.MarshalIndent(list, "", "  ")
		fmt.Fprintln(r.a.stdout, string(b))
	}
	if r.failed > 0 {
		fmt.Fprintf(r.a.stderr, "dspgo: %d of %d rows failed\n", r.failed, r.n)
		return errFailed
	}
	return nil
}

// rowResult is how a row prints as JSON.
type rowResult struct {
	Row     int            `json:"row"`
	Outputs map[string]any `json:"outputs,omitempty"`
	Error   *rowError      `json:"error,omitempty"`
}

type rowError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (rw *row) result() rowResult {
	if rw.err != nil {
		return rowResult{Row: rw.n, Error: &rowError{Code: adapter.CodeOf(rw.err).String(), Message: oneLine(rw.err)}}
	}
	out := rw.out
	if out == nil {
		out = map[string]any{} // a program with no outputs still says it ran
	}
	return rowResult{Row: rw.n, Outputs: out}
}

func tableColumns(rows []*row) []string {
	seen := map[string]bool{}
	var cols []string
	for _, rw := range rows {
		for k := range rw.out {
			if !seen[k] {
				seen[k] = true
				cols = append(cols, k)
			}
		}
	}
	sort.Strings(cols)
	return cols
}

func cell(v any) string {
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return strings.ReplaceAll(s, "\t", " ")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// progress draws a progress bar with rate and ETA on a terminal, once
// the rows number more than one; before the last row is read it knows
// only how many were read, and shows no ETA.
type progress struct {
	w     io.Writer
	on    bool
	start time.Time
	mu    sync.Mutex
	// n counts the rows done, total those read; all is set once every
	// row was read.
	n, total int
	all      bool
	last     time.Time
	drawn    bool
}

func newProgress(w io.Writer, on bool) *progress {
	return &progress{w: w, on: on, start: time.Now()}
}

// read counts a row read.
func (p *progress) read() {
	p.mu.Lock()
	p.total++
	p.mu.Unlock()
}

// ended says that every row was read.
func (p *progress) ended() {
	p.mu.Lock()
	p.all = true
	p.mu.Unlock()
}

// done counts a row done.
func (p *progress) done() {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if p.n < 2 {
		return // one row needs no bar
	}
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond || p.all && p.n == p.total {
		p.last = now
		p.draw()
	}
}

func (p *progress) draw() {
	p.drawn = true
	elapsed := time.Since(p.start).Seconds()
	rate := float64(p.n) / max(elapsed, 1e-9)
	if !p.all {
		fmt.Fprintf(p.w, "\r%d rows  %.1f rows/s ", p.n, rate)
		return
	}
	const width = 30
	eta := time.Duration(float64(p.total-p.n)/max(rate, 1e-9)) * time.Second
	filled := width * p.n / max(p.total, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d  %.1f rows/s  ETA %v ", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		p.n, p.total, rate, eta.Round(time.Second))
}

func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
