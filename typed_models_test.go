package dspgo_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/testutil"
)

// Place, Person and Document are the nested structs of the typed model
// tests: pydantic models of the signature.
type (
	Place struct {
		City string            `dspy:"city,desc=The city's name"`
		Tags map[string]string `dspy:"tags,enum=a|b"`
	}
	Person struct {
		Name string
		Age  int       `dspy:"age,desc=In years"`
		Born time.Time `dspy:"born,date"`
		Home *Place
	}
	Document struct {
		Text   string
		Source *Place
	}
	modelsIn struct {
		Doc Document
	}
	modelsOut struct {
		Best   Person
		People []Person
		Maybe  *Place
	}
)

// modelsSignature is what NewTyped derives from modelsIn and modelsOut.
var modelsSignature = dspgo.Signature{
	Inputs:  []dspgo.Field{{Name: "doc", Type: "Document"}},
	Outputs: []dspgo.Field{{Name: "best", Type: "Person"}, {Name: "people", Type: "list[Person]"}, {Name: "maybe", Type: "Optional[Place]"}},
	Models: []dspgo.Model{
		{Name: "Document", Fields: []dspgo.Field{{Name: "text", Type: "str"}, {Name: "source", Type: "Optional[Place]"}}},
		{Name: "Person", Fields: []dspgo.Field{{Name: "name", Type: "str"}, {Name: "age", Type: "int", Description: "In years"},
			{Name: "born", Type: "datetime.date"}, {Name: "home", Type: "Optional[Place]"}}},
		{Name: "Place", Fields: []dspgo.Field{{Name: "city", Type: "str", Description: "The city's name"}, {Name: "tags", Type: "dict[str, Literal['a', 'b']]"}}},
	},
}

// typedModels runs the typed model program on r and returns its typed and
// untyped outputs.
func typedModels(t *testing.T, r *dspgo.Client) (modelsOut, map[string]any) {
	t.Helper()
	ctx := t.Context()
	p, err := dspgo.NewTyped[modelsIn, modelsOut](ctx, r, dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Equal(t, modelsSignature, p.Program().Spec.Signature)
	in := modelsIn{Doc: Document{Text: "Ann lives in Oslo."}}
	out, err := p.Execute(ctx, in)
	require.NoError(t, err)
	untyped, err := r.Execute(ctx, p.Program().ID, map[string]any{"doc": map[string]any{"text": "Ann lives in Oslo.", "source": nil}})
	require.NoError(t, err)
	return out, untyped
}

// TestTypedNestedStructsAreModels: a struct field is a pydantic model of
// the signature; its value goes as its model's object (a nil pointer
// field as null), and comes back into the struct.
func TestTypedNestedStructsAreModels(t *testing.T) {
	c, _ := newClient(t)
	out, untyped := typedModels(t, c)
	best := untyped["best"].(map[string]any)
	assert.Equal(t, best["name"], out.Best.Name)
	assert.Equal(t, best["age"], int64(out.Best.Age))
	assert.Equal(t, best["born"], out.Best.Born.Format(time.DateOnly))
	if home, _ := best["home"].(map[string]any); home == nil {
		assert.Nil(t, out.Best.Home)
	} else {
		require.NotNil(t, out.Best.Home)
		assert.Equal(t, home["city"], out.Best.Home.City)
		assert.Len(t, out.Best.Home.Tags, len(home["tags"].(map[string]any)))
	}
	assert.Len(t, out.People, len(untyped["people"].([]map[string]any)))
	assert.Equal(t, untyped["maybe"] == nil, out.Maybe == nil)
}

// A nested struct's fields are given as the top-level ones are: a
// time.Time tagged date is its day, a nil pointer left out.
func TestTypedModelInputsAsTopLevelFields(t *testing.T) {
	type Born struct {
		Day  time.Time  `dspy:"day,date"`
		Seen *time.Time `dspy:"seen,datetime"`
		Tags []string   `dspy:"tags"`
	}
	type in struct{ B Born }
	c, _ := newClient(t)
	p, err := dspgo.NewTyped[in, struct{ A string }](t.Context(), c, dspgo.ProgramSpec{})
	require.NoError(t, err)
	day := time.Date(2026, 12, 7, 23, 30, 0, 0, time.FixedZone("UTC+5", 5*3600))
	out, err := p.ExecuteDetailed(t.Context(), in{B: Born{Day: day}})
	require.NoError(t, err)
	untyped, err := c.Execute(t.Context(), p.Program().ID, map[string]any{"b": map[string]any{"day": "2026-12-07", "seen": nil, "tags": []any{}}})
	require.NoError(t, err)
	assert.Equal(t, untyped, out.Outputs, "the day in its own location; nil and empty as null and []")
}

// The same program on the Python worker: the same signature, hash and
// outputs as on the mock.
func TestTypedModelsOnThePythonWorker(t *testing.T) {
	testutil.VerifyNoChildren(t)
	a, err := port.New(t.Context(), port.Options{Python: testutil.Python(t), WorkerDir: testutil.PythonDir(), Logger: testutil.Discard})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close(context.Background())) })
	onPython, untypedPython := typedModels(t, dspgo.NewClient(a))
	mock, _ := newClient(t)
	onMock, untypedMock := typedModels(t, mock)
	assert.Equal(t, untypedMock, untypedPython)
	assert.Equal(t, onMock, onPython)
}

type (
	// Node contains itself: no model.
	Node struct{ Kids []Node }
	// hidden has no exported field, only one the tag skips.
	hidden struct {
		X int `dspy:"-"`
	}
	// withJSON has a field named as pydantic's BaseModel.json.
	withJSON struct{ JSON string }
	// packagePlace is Place where a test's own Place hides it.
	packagePlace = Place
	// S0 … S24 hold the next twice over: values of 2^24 fields.
	S0  struct{ A, B S1 }
	S1  struct{ A, B S2 }
	S2  struct{ A, B S3 }
	S3  struct{ A, B S4 }
	S4  struct{ A, B S5 }
	S5  struct{ A, B S6 }
	S6  struct{ A, B S7 }
	S7  struct{ A, B S8 }
	S8  struct{ A, B S9 }
	S9  struct{ A, B S10 }
	S10 struct{ A, B S11 }
	S11 struct{ A, B S12 }
	S12 struct{ A, B S13 }
	S13 struct{ A, B S14 }
	S14 struct{ A, B S15 }
	S15 struct{ A, B S16 }
	S16 struct{ A, B S17 }
	S17 struct{ A, B S18 }
	S18 struct{ A, B S19 }
	S19 struct{ A, B S20 }
	S20 struct{ A, B S21 }
	S21 struct{ A, B S22 }
	S22 struct{ A, B S23 }
	S23 struct{ A, B S24 }
	S24 struct{ X string }
	// Pair is generic: its types' names are no identifiers.
	Pair[T any] struct{ A, B T }
	// Any is named as a type.
	Any struct{ X string }
)

func TestTypedRefusesModelsItCannotMap(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	type Place struct{ Town string } // another Place
	type twoPlaces struct {
		A Place
		B []packagePlace
	}
	for name, tc := range map[string]struct {
		derive func(context.Context, dspgo.Runner) (string, error)
		want   string
	}{
		"a struct that contains itself": {outputType[Node], "struct dspgo_test.Node contains itself"},
		"two types of one name":         {fieldOf[twoPlaces](1), "struct types dspgo_test.Place and dspgo_test.Place are both named Place"},
		"a struct without fields":       {outputType[hidden], "struct dspgo_test.hidden has no exported field for its pydantic model"},
		"enum= on a struct": {fieldOf[struct {
			P Place `dspy:"p,enum=a|b"`
		}](1), "dspgo_test.Place is a struct: enum=, date and datetime apply to its fields' own tags"},
		"a BaseModel attribute": {outputType[withJSON], `model "withJSON" field "json": pydantic's BaseModel has an attribute of that name`},
		"values too large":      {outputType[S0], `": a value of it holds more than 10000 fields of models`}, // each struct derived once, not 2^24 times
		"a generic struct":      {outputType[Pair[int]], `struct dspgo_test.Pair[int] cannot name a pydantic model: model name "Pair[int]" is not a valid identifier`},
		"a type's name":         {outputType[Any], `struct dspgo_test.Any cannot name a pydantic model: model name "Any" is a type's name`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tc.derive(ctx, c)
			require.Error(t, err)
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
