package dspgo

import (
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
)

// Runner creates and runs programs: a *Client, in its default scope, or a
// *Session (a handle from Session.WithLM too). NewTyped creates its
// program through one and runs it through the same one. The methods are
// those of Client.
type Runner interface {
	// CreateProgram creates a program (see Client.CreateProgram).
	CreateProgram(ctx context.Context, spec ProgramSpec) (*Program, error)
	// Execute runs a program (see Client.Execute).
	Execute(ctx context.Context, programID string, inputs map[string]any) (map[string]any, error)
	// ExecuteDetailed runs a program and returns its whole result (see
	// Client.ExecuteDetailed).
	ExecuteDetailed(ctx context.Context, programID string, inputs map[string]any) (*Execution, error)
	// ExecuteStream runs a program as a stream (see Client.ExecuteStream).
	ExecuteStream(ctx context.Context, programID string, inputs map[string]any) iter.Seq2[StreamPart, error]
}

var (
	_ Runner = (*Client)(nil)
	_ Runner = (*Session)(nil)
)

// ErrOutputType is the cause of a typed program's error when an output
// the backend returned, valid for the signature, does not fit its Go
// field: an int beyond an int8 field's range, a negative int for a uint
// field, a float beyond float32, a text that the field's UnmarshalText
// refuses. The error, an *adapter.Error with adapter.CodeInternal, names
// the output, the Go field and its type; test with errors.Is. Running the
// program again may give an output that fits.
var ErrOutputType = errors.New("dspgo: an output does not fit its Go field")

// Typed is a program whose inputs are the fields of the Go struct In and
// whose outputs are decoded into the Go struct Out (see NewTyped). It is
// safe for concurrent use. Client.Execute and map[string]any remain for
// programs whose fields are known only at run time.
type Typed[In, Out any] struct {
	r    Runner
	prog *Program
	in   *structCodec
	out  *structCodec
}

// NewTyped creates, in r (a *Client or a *Session), a program whose
// signature is derived from the struct types In and Out, and returns it.
// spec gives everything but the signature (ID, Instructions, Kind, …),
// which must be left empty; zero fields mean what they mean for
// Client.CreateProgram, whose errors apply. A struct type that NewTyped
// cannot map is adapter.CodeInvalidArgument naming the Go field and its
// type. Each struct type is derived once and cached.
//
// Each exported field of In is an input, and each of Out an output, in
// declaration order; the fields of an embedded struct are promoted, as
// encoding/json does. The `dspy` tag describes a field:
//
//	Question string `dspy:"question,desc=The question to answer"`
//	Level    string `dspy:"level,enum=low|mid|high"`
//	Answer   string `dspy:"answer,output"`
//	Internal string `dspy:"-"`
//
// The name, first, is the field's name in the signature; empty (or no
// tag) means the Go name in snake case ("UserID" is "user_id"). "-" skips
// the field, as do unexported fields. Options follow, after commas:
//
//   - desc=TEXT: the field's description for the language model. It runs
//     to the end of the tag, commas included, so it comes last. Without
//     it the field has no description.
//   - enum=A|B|C: the field's strings are a Literal['A', 'B', 'C'], or
//     its integers a Literal[1, 2, 3] (enum=1|2|3, each value from 0 and
//     one the Go type holds): the field itself, or the elements of a
//     slice or array, or the values of a map, through pointers.
//   - date, datetime: the field's time.Time is a datetime.date (an input
//     sends its day in its own location; an output is that day at
//     midnight UTC) or a datetime.datetime (an output without a zone is
//     in UTC): the field itself, or the elements of a slice or array, or
//     the values of a map, through pointers. Without either, a time.Time
//     is a text type, a str.
//   - default=VALUE: the field's Default (see Field): for a str, a
//     Literal of strings, a date or a datetime (or a pointer to one) the
//     text itself, else a JSON value (default=0.5, default=true,
//     default=[]). It ends at the next comma, so a list or object holds
//     none; a field that holds a struct takes no default= (give the
//     model's field its own). An output the language model leaves out
//     takes it (so does a struct's field the model's value leaves out);
//     an input takes it when it is left out, so on the In side (a
//     struct's fields included) default= is for a pointer tagged
//     omitempty: a nil one is left out and takes it.
//   - gt=N, ge=N, lt=N, le=N, multiple_of=N, min_length=N, max_length=N,
//     allow_inf_nan=BOOL: pydantic's constraints (Field.Constraints), in
//     the tag's order, as dspy.OutputField(ge=0, le=1) gives them: DSPy
//     shows them to the language model and checks no value against
//     them. N is a JSON number (0 is an int, 0.0 a float, as Python
//     prints them); a struct's fields (a model's) take none.
//   - omitempty: a nil pointer input is left out of the inputs, as DSPy
//     leaves out of the prompt an Optional input it is not given, instead
//     of sent as None (which the prompt shows as "None"). For a pointer
//     input only.
//   - input, output: the side a field belongs to when one struct is both
//     In and Out (NewTyped[QA, QA], like a class-based dspy.Signature): a
//     field marked output is not an input, and one marked input not an
//     output. Without either, a field is on its struct's side.
//
// Go types map to signature types so:
//
//	string                                   str
//	int, int8 … int64, uint, uint8 … uint64  int
//	float32, float64                         float
//	bool                                     bool
//	[]T                                      list[T]
//	[N]T                                     tuple[T, T, …], N times
//	map[K]V, K a string or text type         dict[str, V]
//	map[K]V, K an integer type               dict[int, V]
//	*T                                       Optional[T] (nil is None)
//	any (an empty interface)                 Any
//	json.RawMessage                          Any (empty is None)
//	a text type                              str (time.Time, netip.Addr, …)
//	time.Time with date, datetime            datetime.date, datetime.datetime
//	a string with enum=                      Literal['A', 'B', …]
//	an integer with enum=                    Literal[1, 2, …]
//	dspgo.History (an In field)              dspy.History
//	dspgo.Image (In fields)                  dspy.Image
//	dspgo.File (In fields)                   dspy.File
//	dspgo.Audio (In fields)                  dspy.Audio
//	a named struct type Person               the pydantic model Person
//
// A text type is one with MarshalText (for inputs; on T or *T) or whose
// pointer has UnmarshalText (for outputs), as encoding/json uses them; it
// takes precedence over the type's kind. A nil slice or map is an empty
// list or dict, not None; a pointer to it may be None. Inputs are then
// converted as Client.Execute converts them, and outputs decoded from the
// values it returns; an output that does not fit its field (300 for an
// int8) is ErrOutputType.
//
// A struct type in a field (Author Person, People []Person, Best *Person)
// is a pydantic model of the signature (Signature.Models), named as the
// Go type, its fields the struct's exported ones, named, typed and
// described as In's and Out's fields are (tags included); a pointer field
// is Optional, so it may be left out of a value. DSPy gives the language
// model its JSON schema and validates its answer with it. Refused: an
// anonymous struct (no name for the model), a generic one or one named as
// a type (Any), a struct that contains itself, two struct types of one
// name, and a struct with MarshalText or UnmarshalText but not both; the
// models' limits are Signature's (see Model). Refused too: []byte,
// channels, functions, complex numbers, uintptr, interfaces with methods
// and embedded pointers to exported struct types (an unexported one is
// skipped, as encoding/json does).
//
// For KindChainOfThought, an Out field named reasoning (a str) is left
// out of the signature, to which the kind adds its own: the field
// receives the reasoning. Without such a field, the reasoning is in
// ExecuteDetailed's Outputs.
func NewTyped[In, Out any](ctx context.Context, r Runner, spec ProgramSpec) (*Typed[In, Out], error) {
	invalid := func(msg string) error {
		return &adapter.Error{Code: adapter.CodeInvalidArgument, Op: command.CreateProgram, Message: msg}
	}
	if len(spec.Signature.Inputs) > 0 || len(spec.Signature.Outputs) > 0 || len(spec.Signature.Models) > 0 {
		return nil, invalid("NewTyped derives the signature from its struct types: leave ProgramSpec.Signature empty")
	}
	in, err := codecOf(reflect.TypeFor[In](), inputSide)
	if err != nil {
		return nil, invalid(err.Error())
	}
	out, err := codecOf(reflect.TypeFor[Out](), outputSide)
	if err != nil {
		return nil, invalid(err.Error())
	}
	if spec.Signature, err = typedSignature(in, out, spec.Kind); err != nil {
		return nil, invalid(err.Error())
	}
	p, err := r.CreateProgram(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &Typed[In, Out]{r: r, prog: p, in: in, out: out}, nil
}

// typedSignature is the signature of a typed program of the kind: In's
// fields as inputs, Out's as outputs, less a chain of thought's
// reasoning.
func typedSignature(in, out *structCodec, kind string) (Signature, error) {
	var sig Signature
	inputs := map[string]string{}
	for _, f := range in.fields {
		sig.Inputs = append(sig.Inputs, f.field)
		inputs[f.field.Name] = in.name(f)
	}
	for _, f := range out.fields {
		if kind == KindChainOfThought && f.field.Name == command.ReasoningField {
			if f.field.Type != "str" {
				return Signature{}, fmt.Errorf("%s is %s: the reasoning of %s is a str", out.name(f), f.field.Type, KindChainOfThought)
			}
			continue
		}
		if prev, dup := inputs[f.field.Name]; dup {
			return Signature{}, fmt.Errorf("%q is the name of an input (%s) and of an output (%s): mark one side `dspy:\",input\"` or `dspy:\",output\"`, or rename one",
				f.field.Name, prev, out.name(f))
		}
		sig.Outputs = append(sig.Outputs, f.field)
	}
	if len(sig.Outputs) == 0 {
		return Signature{}, fmt.Errorf("%s type %s has no output besides the reasoning %s adds", outputSide, out.typ, KindChainOfThought)
	}
	models := in.models.clone()
	if err := models.merge(&out.models); err != nil {
		return Signature{}, err
	}
	sig.Models = models.list
	return sig, nil
}

// Program returns the program NewTyped created: its ID, its derived
// signature (Spec.Signature) and its hash.
func (t *Typed[In, Out]) Program() *Program { return t.prog }

// Execute runs the program on in and returns its outputs decoded into an
// Out; Out's fields that are not outputs keep their zero value. Errors
// are those of Client.Execute (an input that does not convert, an enum=
// value the Literal lacks: adapter.CodeInvalidArgument naming the
// input), a MarshalText failure (CodeInvalidArgument naming the field),
// or ErrOutputType.
func (t *Typed[In, Out]) Execute(ctx context.Context, in In) (Out, error) {
	var out Out
	inputs, err := t.in.encode(reflect.ValueOf(in))
	if err != nil {
		return out, err
	}
	outputs, err := t.r.Execute(ctx, t.prog.ID, inputs)
	if err != nil {
		return out, err
	}
	if err := t.out.decode(reflect.ValueOf(&out).Elem(), outputs); err != nil {
		var zero Out
		return zero, err
	}
	return out, nil
}

// TypedExecution is the whole result of Typed.ExecuteDetailed.
type TypedExecution[Out any] struct {
	// Output holds the outputs decoded into Out, as Typed.Execute returns
	// them.
	Output Out
	// Execution is the untyped result, as Client.ExecuteDetailed returns
	// it: Outputs (reasoning included), Trajectory, Worker and Usage.
	Execution
}

// ExecuteDetailed runs the program as Execute does and also returns the
// untyped result: the outputs as a map, the trajectory of a KindReact
// program, the worker that ran it and the token usage (see
// Client.ExecuteDetailed).
func (t *Typed[In, Out]) ExecuteDetailed(ctx context.Context, in In) (*TypedExecution[Out], error) {
	inputs, err := t.in.encode(reflect.ValueOf(in))
	if err != nil {
		return nil, err
	}
	e, err := t.r.ExecuteDetailed(ctx, t.prog.ID, inputs)
	if err != nil {
		return nil, err
	}
	te := &TypedExecution[Out]{Execution: *e}
	if err := t.out.decode(reflect.ValueOf(&te.Output).Elem(), e.Outputs); err != nil {
		return nil, err
	}
	return te, nil
}

// TypedPart is one element of Typed.ExecuteStream: a StreamPart (a piece
// of one output's text, or, last, the whole result) and, in the last
// part, the outputs decoded.
type TypedPart[Out any] struct {
	// Output is set in the last part only: the outputs decoded into Out.
	// Nil in the parts that carry text.
	Output *Out
	StreamPart
}

// ExecuteStream runs the program as a stream, as Client.ExecuteStream
// does: the outputs' text as the language model produces it, then one
// last part whose Output holds the decoded outputs; or an error, always
// last. Nothing runs until the sequence is ranged over.
func (t *Typed[In, Out]) ExecuteStream(ctx context.Context, in In) iter.Seq2[TypedPart[Out], error] {
	return func(yield func(TypedPart[Out], error) bool) {
		inputs, err := t.in.encode(reflect.ValueOf(in))
		if err != nil {
			yield(TypedPart[Out]{}, err)
			return
		}
		for part, err := range t.r.ExecuteStream(ctx, t.prog.ID, inputs) {
			if err != nil {
				yield(TypedPart[Out]{}, err)
				return
			}
			tp := TypedPart[Out]{StreamPart: part}
			if part.Outputs != nil {
				tp.Output = new(Out)
				if err := t.out.decode(reflect.ValueOf(tp.Output).Elem(), part.Outputs); err != nil {
					yield(TypedPart[Out]{}, err)
					return
				}
			}
			if !yield(tp, nil) {
				return
			}
		}
	}
}

// side is the side of a signature a struct gives.
type side int

const (
	inputSide side = iota
	outputSide
)

func (s side) String() string {
	if s == inputSide {
		return "In"
	}
	return "Out"
}

// structCodec is a struct type's fields as one side of a signature.
type structCodec struct {
	typ    reflect.Type
	fields []typedField
	// models are the pydantic models the fields' types name: their
	// nested structs, at any depth.
	models modelSet
}

// typedField is one struct field as a signature field.
type typedField struct {
	index  []int        // for FieldByIndex
	goName string       // "Inner.Name" for a promoted field
	goType reflect.Type // the field's type
	field  Field        // name, canonical type and description
	// rewrite marks a value that encode rewrites: a part of it travels
	// by MarshalText, or is a json.RawMessage, which may be empty.
	rewrite bool
	// omitNil marks an input (a pointer) that encode leaves out when nil:
	// the omitempty option.
	omitNil bool
}

// name names a field for messages: "field pkg.Answer.Level (int8)".
func (c *structCodec) name(f typedField) string {
	return fmt.Sprintf("field %s.%s (%s)", c.typ, f.goName, f.goType)
}

type codecKey struct {
	t reflect.Type
	s side
}

type codecEntry struct {
	c   *structCodec
	err error
}

// codecs caches codecOf's results, errors included: a type cannot change.
var codecs sync.Map // codecKey → codecEntry

// codecOf derives, once per type and side, the signature fields of a
// struct type.
func codecOf(t reflect.Type, s side) (*structCodec, error) {
	key := codecKey{t, s}
	if e, ok := codecs.Load(key); ok {
		return e.(codecEntry).c, e.(codecEntry).err
	}
	c, err := deriveCodec(t, s, []reflect.Type{t})
	codecs.Store(key, codecEntry{c, err})
	return c, err
}

// deriveCodec derives the fields of t, the last of deriving: the struct
// types whose fields are being derived, outermost first.
func deriveCodec(t reflect.Type, s side, deriving []reflect.Type) (*structCodec, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s type %s is not a struct type", s, t)
	}
	c := &structCodec{typ: t, models: modelSet{deriving: deriving}}
	byName := map[string]string{}
	var walk func(st reflect.Type, index []int, prefix string) error
	walk = func(st reflect.Type, index []int, prefix string) error {
		for i := range st.NumField() {
			sf := st.Field(i)
			tag, tagged := sf.Tag.Lookup("dspy")
			if tag == "-" {
				continue
			}
			fieldIndex := append(append([]int(nil), index...), i)
			goName := prefix + sf.Name
			if sf.Anonymous && !tagged {
				switch {
				case sf.Type.Kind() == reflect.Struct && !isText(sf.Type, s):
					if err := walk(sf.Type, fieldIndex, goName+"."); err != nil {
						return err
					}
					continue
				case sf.Type.Kind() == reflect.Pointer && sf.Type.Elem().Kind() == reflect.Struct && sf.IsExported():
					return fmt.Errorf("%s type %s: embedded pointer %s is not supported: embed the struct itself, or name the field", s, t, sf.Type)
				}
			}
			if !sf.IsExported() {
				continue
			}
			f := typedField{index: fieldIndex, goName: goName, goType: sf.Type}
			fail := func(format string, args ...any) error {
				return fmt.Errorf("%s %s: %s", s, c.name(f), fmt.Sprintf(format, args...))
			}
			opts, err := parseTag(tag)
			if err != nil {
				return fail("tag `dspy:%q`: %v", tag, err)
			}
			if s == inputSide && opts.output || s == outputSide && opts.input {
				continue
			}
			name := opts.name
			if name == "" {
				name = snakeCase(sf.Name)
			}
			if problem := program.NameProblem(name); problem != "" {
				return fail("name %q %s; name it in the tag", name, problem)
			}
			if prev, dup := byName[name]; dup {
				return fail("name %q is the name of %s too", name, prev)
			}
			typ, rewrite, err := dspyType(sf.Type, s, leafOptions{opts.enum, opts.moment}, &c.models, 0)
			if err != nil {
				return fail("%v", err)
			}
			if opts.omitEmpty {
				switch {
				case s == outputSide:
					return fail("omitempty is for inputs: an output is always in the result")
				case typ.Kind != program.Optional:
					return fail("omitempty leaves a nil input out, so it is for a pointer (an Optional input); this field is %s", typ)
				}
			}
			f.field = Field{Name: name, Type: typ.String(), Description: opts.desc, Constraints: opts.constraints}
			if opts.dflt != nil && s == inputSide && !opts.omitEmpty {
				return fail("default= on an input applies when it is left out, so it is for a pointer tagged omitempty (a nil one is left out); this field is always sent")
			}
			if opts.dflt != nil {
				if f.field.Default, err = tagDefault(typ, *opts.dflt); err != nil {
					return fail("default=%s: %v", *opts.dflt, err)
				}
				// An output takes it when the language model leaves the
				// output out: it must go into the Go field.
				if s == outputSide {
					if derr := decodeValue(reflect.New(sf.Type).Elem(), f.field.Default, name); derr != nil {
						return fail("default=%s does not fit the field: %s", *opts.dflt, derr.msg)
					}
				}
			}
			f.rewrite, f.omitNil = rewrite, opts.omitEmpty
			byName[name] = c.name(f)
			c.fields = append(c.fields, f)
		}
		return nil
	}
	if err := walk(t, nil, ""); err != nil {
		return nil, err
	}
	// Only while deriving: a cached codec keeps none.
	c.models.deriving = nil
	if len(c.fields) == 0 && s == outputSide && len(deriving) == 1 { // no inputs is a program of none ("-> joke"); a model's own check is nested's
		return nil, fmt.Errorf("%s type %s has no output field (exported, not tagged \"-\" or input)", s, t)
	}
	return c, nil
}

// tagDefault is the Default of a field of type typ whose tag says
// default=text: the text itself for a field of text (str, a Literal of
// strings, a date or datetime, or Optional one of them), else the JSON
// value text holds, converted to typ.
func tagDefault(typ program.Type, text string) (any, error) {
	leaf := typ
	if leaf.Kind == program.Optional {
		leaf = *leaf.Elem
	}
	var v any = text
	switch {
	case typ.HoldsModel():
		return nil, fmt.Errorf("a field that holds a struct (a model) takes no default= in a tag")
	case leaf.Kind == program.Str || leaf.Kind == program.Date || leaf.Kind == program.DateTime || leaf.StrLiteral():
		// the text itself
	default:
		dec := json.NewDecoder(strings.NewReader(text))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil || dec.More() {
			return nil, fmt.Errorf("not a JSON value of %s (a list or object may hold no comma: the tag's options are split at commas)", typ)
		}
		if v == nil {
			return nil, fmt.Errorf("null is no default: a field of an Optional type is None when it is left out")
		}
	}
	// Converted here for an error that names the Go field; Compile checks
	// the rest (a medium takes no default).
	return typ.Convert(v, "the value")
}

// tagOptions is a parsed `dspy` tag.
type tagOptions struct {
	name, desc string
	enum       []string
	// dflt is the text of default=, nil without it.
	dflt *string
	// constraints are the ge=, le=, … options, in the tag's order.
	constraints   []Constraint
	input, output bool
	omitEmpty     bool
	// moment is program.Date or program.DateTime for the date and
	// datetime options, else zero.
	moment program.Kind
}

// parseTag parses "name,input,output,omitempty,enum=a|b,date,datetime,default=v,ge=0,…,desc=text".
func parseTag(tag string) (tagOptions, error) {
	parts := strings.Split(tag, ",")
	o := tagOptions{name: parts[0]}
	for i := 1; i < len(parts); i++ {
		opt := parts[i]
		key, text, hasValue := strings.Cut(opt, "=")
		switch {
		case strings.HasPrefix(opt, "desc="):
			o.desc = strings.TrimPrefix(strings.Join(parts[i:], ","), "desc=")
			return o, nil
		case strings.HasPrefix(opt, "enum="):
			seen := map[string]bool{}
			for _, v := range strings.Split(strings.TrimPrefix(opt, "enum="), "|") {
				switch {
				case v == "":
					return o, fmt.Errorf("enum= has an empty value")
				case strings.ContainsAny(v, `'"\`):
					return o, fmt.Errorf("enum value %q may not contain quotes or backslashes", v)
				case seen[v]:
					return o, fmt.Errorf("enum value %q appears twice", v)
				}
				seen[v] = true
				o.enum = append(o.enum, v)
			}
		case strings.HasPrefix(opt, "default="):
			if o.dflt != nil {
				return o, fmt.Errorf("default= appears twice")
			}
			text := strings.TrimPrefix(opt, "default=")
			o.dflt = &text
		case hasValue && program.IsConstraint(key):
			var value any = text // a number's text, checked as the spec's constraints are
			if key == "allow_inf_nan" {
				b, err := strconv.ParseBool(text)
				if err != nil {
					return o, fmt.Errorf("allow_inf_nan=%s is not a bool", text)
				}
				value = b
			}
			o.constraints = append(o.constraints, Constraint{Name: key, Value: value})
		case opt == "date" || opt == "datetime":
			if o.moment != 0 {
				return o, fmt.Errorf("date and datetime exclude each other")
			}
			o.moment = map[string]program.Kind{"date": program.Date, "datetime": program.DateTime}[opt]
		case opt == "input":
			o.input = true
		case opt == "output":
			o.output = true
		case opt == "omitempty":
			o.omitEmpty = true
		case opt == "":
		default:
			return o, fmt.Errorf("unknown option %q (known: input, output, omitempty, enum=A|B, date, datetime, default=VALUE, gt=, ge=, lt=, le=, multiple_of=, min_length=, max_length=, allow_inf_nan=, desc=TEXT)", opt)
		}
	}
	if o.moment != 0 && o.enum != nil {
		return o, fmt.Errorf("enum= and %s exclude each other", program.Type{Kind: o.moment})
	}
	return o, nil
}

// snakeCase turns a Go name into snake case: "UserID" is "user_id",
// "HTTPStatus" "http_status", "Top5Items" "top5_items".
func snakeCase(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) {
			if i > 0 && (unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1]) ||
				unicode.IsUpper(r[i-1]) && i+1 < len(r) && unicode.IsLower(r[i+1])) {
				b.WriteByte('_')
			}
			c = unicode.ToLower(c)
		}
		b.WriteRune(c)
	}
	return b.String()
}

var (
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	rawMessageType      = reflect.TypeFor[json.RawMessage]()
	historyType         = reflect.TypeFor[History]()
	imageType           = reflect.TypeFor[Image]()
	fileType            = reflect.TypeFor[File]()
	audioType           = reflect.TypeFor[Audio]()
	timeType            = reflect.TypeFor[time.Time]()
	byteType            = reflect.TypeFor[byte]()
)

// isText reports whether values of t travel as text: for inputs t or *t
// has MarshalText, for outputs *t has UnmarshalText. Pointers and
// interfaces never do; their elements may.
func isText(t reflect.Type, s side) bool {
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface {
		return false
	}
	if s == inputSide {
		return t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType)
	}
	return reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// maxGoTypeDepth bounds how deep dspyType follows a Go type (a recursive
// one, such as type L []L, has no end); DSPy types nest as deep at most.
const maxGoTypeDepth = 16

// leafOptions are the tag's options for the type at a field's end (the
// field itself, or the elements of its slices, arrays and maps, through
// pointers): enum, when not nil, makes a string or an integer a Literal;
// moment, when not zero, makes a time.Time a date or a datetime.
type leafOptions struct {
	enum   []string
	moment program.Kind
}

// dspyType maps a Go type to a signature type, with o for the type at its
// end. It reports whether encode rewrites a part of the value (see
// typedField.rewrite).
func dspyType(t reflect.Type, s side, o leafOptions, models *modelSet, depth int) (program.Type, bool, error) {
	if depth > maxGoTypeDepth {
		return program.Type{}, false, fmt.Errorf("the type nests more than %d levels", maxGoTypeDepth)
	}
	enum := o.enum
	if o.moment != 0 {
		switch k := t.Kind(); {
		case t == timeType:
			return program.Type{Kind: o.moment}, false, nil // converts as a time.Time
		case k != reflect.Pointer && k != reflect.Slice && k != reflect.Array && k != reflect.Map:
			return program.Type{}, false, fmt.Errorf("%s applies to time.Time, and %s is not one", program.Type{Kind: o.moment}, t)
		}
	}
	leaf := func(k program.Kind) (program.Type, bool, error) {
		if enum != nil {
			return program.Type{}, false, fmt.Errorf("enum= applies to strings and integers, and %s is neither", t)
		}
		return program.Type{Kind: k}, false, nil
	}
	str := func() program.Type {
		if enum != nil {
			values := make([]any, len(enum))
			for i, v := range enum {
				values[i] = v
			}
			return program.Type{Kind: program.Literal, Values: values}
		}
		return program.Type{Kind: program.Str}
	}
	if t == rawMessageType {
		typ, _, err := leaf(program.Any)
		return typ, true, err
	}
	if t == historyType { // its value converts by its JSON encoding; nesting is the signature's rule
		if s == outputSide {
			return program.Type{}, false, fmt.Errorf("%s is an input type (the conversation so far)", program.HistoryType)
		}
		return leaf(program.History)
	}
	if media, ok := map[reflect.Type]program.Kind{imageType: program.Image, fileType: program.File, audioType: program.Audio}[t]; ok { // their values convert by their JSON encoding
		name := program.Type{Kind: media}.String()
		if s == outputSide {
			return program.Type{}, false, fmt.Errorf("%s is an input type (%s)", name, program.MediaNote(name))
		}
		return leaf(media)
	}
	if isText(t, s) {
		return str(), true, nil
	}
	switch t.Kind() {
	case reflect.String:
		return str(), false, nil
	case reflect.Bool:
		return leaf(program.Bool)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if enum != nil {
			typ, err := intLiteral(t, enum)
			return typ, false, err
		}
		return leaf(program.Int)
	case reflect.Float32, reflect.Float64:
		return leaf(program.Float)
	case reflect.Interface:
		if t.NumMethod() > 0 {
			return program.Type{}, false, fmt.Errorf("interface %s has methods: only the empty interface (any) is Any", t)
		}
		return leaf(program.Any)
	case reflect.Pointer:
		elem, text, err := dspyType(t.Elem(), s, o, models, depth+1)
		if err != nil || elem.Kind == program.Optional {
			return elem, text, err
		}
		return program.Type{Kind: program.Optional, Elem: &elem}, text, nil
	case reflect.Slice:
		if t.Elem() == byteType {
			return program.Type{}, false, fmt.Errorf("%s has no DSPy type: use string for text, or []int for numbers", t)
		}
		elem, text, err := dspyType(t.Elem(), s, o, models, depth+1)
		return program.Type{Kind: program.List, Elem: &elem}, text, err
	case reflect.Array:
		if t.Len() == 0 {
			return program.Type{}, false, fmt.Errorf("%s has no elements: a tuple has at least one", t)
		}
		elem, text, err := dspyType(t.Elem(), s, o, models, depth+1)
		members := make([]program.Type, t.Len())
		for i := range members {
			members[i] = elem
		}
		return program.Type{Kind: program.Tuple, Members: members}, text, err
	case reflect.Map:
		var key program.Type
		keyText := false
		switch k := t.Key(); {
		case k.Kind() == reflect.String:
			key = program.Type{Kind: program.Str}
		case isText(k, s):
			key, keyText = program.Type{Kind: program.Str}, true
		case isInt(k.Kind()):
			key = program.Type{Kind: program.Int}
		default:
			return program.Type{}, false, fmt.Errorf("map key type %s is not a string or an integer type", k)
		}
		elem, text, err := dspyType(t.Elem(), s, o, models, depth+1)
		return program.Type{Kind: program.Dict, Key: &key, Elem: &elem}, text || keyText, err
	case reflect.Struct:
		if enum != nil || o.moment != 0 {
			return program.Type{}, false, fmt.Errorf("%s is a struct: enum=, date and datetime apply to its fields' own tags", t)
		}
		typ, err := models.nested(t, s)
		return typ, true, err
	}
	return program.Type{}, false, fmt.Errorf("%s has no DSPy type", t)
}

func isInt(k reflect.Kind) bool {
	return reflect.Int <= k && k <= reflect.Uint64 // not Uintptr
}

// encode returns a struct value's fields as inputs. The client converts
// them to their declared types (Go integers of any size, slices, maps,
// pointers as Optional), so only values that travel by MarshalText, and
// json.RawMessage, are rewritten here.
func (c *structCodec) encode(v reflect.Value) (map[string]any, error) {
	inputs := make(map[string]any, len(c.fields))
	for _, f := range c.fields {
		fv := v.FieldByIndex(f.index)
		if f.omitNil && fv.IsNil() {
			continue
		}
		if !f.rewrite {
			inputs[f.field.Name] = fv.Interface()
			continue
		}
		x, err := rewrite(fv)
		if err != nil {
			return nil, &adapter.Error{Code: adapter.CodeInvalidArgument, Op: command.ExecuteProgram,
				Message: fmt.Sprintf("input %s, %s: %v", f.field.Name, c.name(f), err)}
		}
		inputs[f.field.Name] = x
	}
	return inputs, nil
}

// rewrite returns v with every part that has MarshalText as its text, and
// an empty json.RawMessage as null (as encoding/json writes it): pointers
// followed, arrays as []any, maps as map[string]any.
func rewrite(v reflect.Value) (any, error) {
	t := v.Type()
	switch {
	case t.Kind() == reflect.Pointer:
		if v.IsNil() {
			return nil, nil
		}
		return rewrite(v.Elem())
	case t == rawMessageType:
		if v.Len() == 0 {
			return nil, nil
		}
		return v.Interface(), nil
	case isText(t, inputSide):
		return marshalText(v)
	case t == historyType || t == imageType || t == fileType || t == audioType:
		return v.Interface(), nil // converts by its JSON encoding
	case t.Kind() == reflect.Struct:
		return rewriteModel(v)
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			e, err := rewrite(v.Index(i))
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	case t.Kind() == reflect.Map:
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			k, err := keyText(it.Key())
			if err != nil {
				return nil, err
			}
			if out[k], err = rewrite(it.Value()); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return v.Interface(), nil
}

// marshalText calls v's MarshalText, on an addressable copy when only the
// pointer has it.
func marshalText(v reflect.Value) (string, error) {
	m, ok := v.Interface().(encoding.TextMarshaler)
	if !ok {
		p := reflect.New(v.Type())
		p.Elem().Set(v)
		m = p.Interface().(encoding.TextMarshaler)
	}
	b, err := m.MarshalText()
	if err != nil {
		return "", fmt.Errorf("MarshalText: %w", err)
	}
	return string(b), nil
}

// keyText is a map key as a JSON object's key.
func keyText(k reflect.Value) (string, error) {
	switch {
	case k.Kind() == reflect.String:
		return k.String(), nil
	case isText(k.Type(), inputSide):
		return marshalText(k)
	case k.CanInt():
		return strconv.FormatInt(k.Int(), 10), nil
	}
	return strconv.FormatUint(k.Uint(), 10), nil
}

// decode sets the fields of dst, an addressable struct, from a program's
// typed outputs.
func (c *structCodec) decode(dst reflect.Value, outputs map[string]any) error {
	for _, f := range c.fields {
		src, ok := outputs[f.field.Name]
		if !ok {
			return &adapter.Error{Code: adapter.CodeInternal, Op: command.ExecuteProgram,
				Message: fmt.Sprintf("output %q is missing from the result", f.field.Name)}
		}
		if err := decodeValue(dst.FieldByIndex(f.index), src, f.field.Name); err != nil {
			return &adapter.Error{Code: adapter.CodeInternal, Op: command.ExecuteProgram,
				Message: fmt.Sprintf("output %s, %s: %s", err.path, c.name(f), err.msg), Err: ErrOutputType}
		}
	}
	return nil
}

// decodeError is a value that does not fit: where in the output, and why.
type decodeError struct{ path, msg string }

// decodeValue sets dst, addressable, from src, a value of the Go type
// Type.GoType gives the field's signature type; path names the part of
// the output, for errors.
func decodeValue(dst reflect.Value, src any, path string) *decodeError {
	t := dst.Type()
	fail := func(format string, args ...any) *decodeError {
		return &decodeError{path, fmt.Sprintf(format, args...)}
	}
	mismatch := func() *decodeError { return fail("a %T does not go into a %s", src, t) }
	switch {
	case t == rawMessageType:
		b, err := json.Marshal(src)
		if err != nil {
			return fail("%v", err)
		}
		dst.SetBytes(b)
		return nil
	case t.Kind() == reflect.Pointer:
		if src == nil {
			dst.SetZero()
			return nil
		}
		p := reflect.New(t.Elem())
		if err := decodeValue(p.Elem(), src, path); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	case isText(t, outputSide):
		s, ok := src.(string)
		if !ok {
			return mismatch()
		}
		if t == timeType {
			if moment, ok := momentTime(s); ok {
				dst.Set(reflect.ValueOf(moment))
				return nil
			}
		}
		if err := dst.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return fail("UnmarshalText: %v", err)
		}
		return nil
	}
	switch k := t.Kind(); {
	case k == reflect.Interface:
		if src == nil {
			dst.SetZero()
			return nil
		}
		sv := reflect.ValueOf(src)
		if !sv.Type().AssignableTo(t) {
			return mismatch()
		}
		dst.Set(sv)
	case k == reflect.String:
		s, ok := src.(string)
		if !ok {
			return mismatch()
		}
		dst.SetString(s)
	case k == reflect.Bool:
		b, ok := src.(bool)
		if !ok {
			return mismatch()
		}
		dst.SetBool(b)
	case dst.CanInt():
		n, ok := src.(int64)
		if !ok {
			return mismatch()
		}
		if dst.OverflowInt(n) {
			return fail("%d overflows %s", n, t)
		}
		dst.SetInt(n)
	case dst.CanUint():
		n, ok := src.(int64)
		if !ok {
			return mismatch()
		}
		if n < 0 || dst.OverflowUint(uint64(n)) {
			return fail("%d overflows %s", n, t)
		}
		dst.SetUint(uint64(n))
	case dst.CanFloat():
		var f float64
		switch x := src.(type) {
		case float64:
			f = x
		case int64:
			f = float64(x)
		default:
			return mismatch()
		}
		if dst.OverflowFloat(f) {
			return fail("%v overflows %s", f, t)
		}
		dst.SetFloat(f)
	case k == reflect.Slice || k == reflect.Array:
		sv := reflect.ValueOf(src)
		if sv.Kind() != reflect.Slice {
			return mismatch()
		}
		if k == reflect.Array && sv.Len() != t.Len() {
			return fail("%d elements do not go into a %s", sv.Len(), t)
		}
		out := dst
		if k == reflect.Slice {
			out = reflect.MakeSlice(t, sv.Len(), sv.Len())
		}
		for i := range sv.Len() {
			if err := decodeValue(out.Index(i), sv.Index(i).Interface(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		dst.Set(out)
	case k == reflect.Map:
		sv := reflect.ValueOf(src)
		if sv.Kind() != reflect.Map {
			return mismatch()
		}
		out := reflect.MakeMapWithSize(t, sv.Len())
		for it := sv.MapRange(); it.Next(); {
			var elemPath string
			if it.Key().Kind() == reflect.String {
				elemPath = path + "[" + strconv.Quote(it.Key().String()) + "]"
			} else {
				elemPath = path + "[" + strconv.FormatInt(it.Key().Int(), 10) + "]"
			}
			key := reflect.New(t.Key()).Elem()
			if t.Key().Kind() == reflect.String && it.Key().Kind() == reflect.String {
				key.SetString(it.Key().String()) // a string key, even one with UnmarshalText, as encoding/json
			} else if err := decodeValue(key, it.Key().Interface(), elemPath+" (the key)"); err != nil {
				return err
			}
			elem := reflect.New(t.Elem()).Elem()
			if err := decodeValue(elem, it.Value().Interface(), elemPath); err != nil {
				return err
			}
			out.SetMapIndex(key, elem)
		}
		dst.Set(out)
	case k == reflect.Struct:
		object, ok := src.(map[string]any)
		if !ok {
			return mismatch()
		}
		return decodeModel(dst, object, path)
	default:
		return mismatch()
	}
	return nil
}

// momentTime reads the text a date or a datetime without a zone comes as
// (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS[.ffffff]) as a time.Time in UTC; a
// datetime with a zone is RFC 3339, which time.Time's UnmarshalText reads.
func momentTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.DateOnly, "2006-01-02T15:04:05.999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// intLiteral is the Literal of integers an enum= of an integer type t
// gives: each value a decimal integer from 0 (as DSPy's string signatures
// write them) that t holds.
func intLiteral(t reflect.Type, enum []string) (program.Type, error) {
	lit := program.Type{Kind: program.Literal}
	for _, text := range enum {
		n, err := strconv.ParseInt(text, 10, 64)
		zero := reflect.Zero(t)
		signed := reflect.Int <= t.Kind() && t.Kind() <= reflect.Int64
		if err != nil || n < 0 || signed && zero.OverflowInt(n) || !signed && zero.OverflowUint(uint64(n)) {
			return program.Type{}, fmt.Errorf("enum value %q is not an integer from 0 that %s holds", text, t)
		}
		if slices.Contains(lit.Values, any(n)) {
			return program.Type{}, fmt.Errorf("enum value %d appears twice", n)
		}
		lit.Values = append(lit.Values, n)
	}
	return lit, nil
}
