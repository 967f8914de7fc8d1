package dspgo_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
)

// Dates and datetimes (DSPy's current_date: datetime.date): an input takes
// its text or a time.Time, the dummy LM's outputs are canonical text, the
// mock and a Python worker agree, and from Go structs a time.Time field
// tagged date or datetime gives one.
func TestDatesAndDateTimes(t *testing.T) {
	ctx := t.Context()
	sig := dspgo.MustParseSignature("day: datetime.date, seen: list[datetime.datetime] -> due: datetime.date, at: datetime.datetime")
	zone := time.FixedZone("", 90*60)
	var outputs []map[string]any
	for _, c := range mockAndPython(t) {
		p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
		require.NoError(t, err)
		out, err := c.Execute(ctx, p.ID, map[string]any{
			"day":  time.Date(2026, 12, 7, 23, 30, 0, 0, zone),
			"seen": []any{"2026-12-07 11:05+00:00", time.Date(2026, 12, 7, 11, 5, 0, 500_000_000, time.UTC)},
		})
		require.NoError(t, err)
		due, ok := out["due"].(string)
		require.True(t, ok, "%#v", out["due"])
		_, err = time.Parse(time.DateOnly, due)
		require.NoError(t, err)
		at, ok := out["at"].(string)
		require.True(t, ok, "%#v", out["at"])
		_, err = time.Parse(time.RFC3339, at)
		require.NoError(t, err)
		outputs = append(outputs, out)

		again, err := c.Execute(ctx, p.ID, map[string]any{"day": "2026-12-07", "seen": []any{"2026-12-07T11:05:00Z", "2026-12-07T11:05:00.5+00:00"}})
		require.NoError(t, err)
		assert.Equal(t, out, again, "the same moments, written otherwise, are the same inputs")

		for value, why := range map[any]string{
			"07/12/2026": `input day: expected datetime.date (YYYY-MM-DD), got string "07/12/2026"`,
			"2026-02-29": `input day: expected datetime.date (YYYY-MM-DD), got string "2026-02-29"`,
			20261207:     "input day: expected datetime.date (YYYY-MM-DD), got int 20261207",
		} {
			_, err = c.Execute(ctx, p.ID, map[string]any{"day": value, "seen": []any{}})
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", value)
			assert.ErrorContains(t, err, why)
		}
	}
	assert.Equal(t, outputs[0], outputs[1])

	_, err := dspgo.ParseSignature("x: datetime.date | str -> y")
	assert.ErrorContains(t, err, "datetime.date may not be in a Union of several types")

	type planIn struct {
		Today time.Time   `dspy:"today,date"`
		Seen  []time.Time `dspy:"seen,datetime"`
		Note  time.Time   // a text type: str
	}
	type planOut struct {
		Due time.Time  `dspy:"due,date"`
		At  *time.Time `dspy:"at,datetime"`
	}
	plan, err := dspgo.NewTyped[planIn, planOut](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Equal(t, "today: datetime.date, seen: list[datetime.datetime], note -> due: datetime.date, at: Optional[datetime.datetime]",
		plan.Program().Spec.Signature.String())
	moment := time.Date(2026, 12, 7, 11, 5, 0, 0, time.UTC)
	got, err := plan.Execute(ctx, planIn{Today: moment, Seen: []time.Time{moment}, Note: moment})
	require.NoError(t, err)
	assert.Equal(t, time.UTC, got.Due.Location(), "a date is midnight UTC")
	assert.Equal(t, got.Due, got.Due.Truncate(24*time.Hour))
	require.NotNil(t, got.At, "the dummy LM's Optional is null for a quarter of the inputs, not these")
	assert.Equal(t, 2000, got.At.Year()/100*100)

	_, err = dspgo.NewTyped[struct {
		Day string `dspy:"day,date"`
	}, planOut](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	assert.ErrorContains(t, err, "datetime.date applies to time.Time, and string is not one")
	_, err = dspgo.NewTyped[struct {
		Day time.Time `dspy:"day,date,datetime"`
	}, planOut](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	assert.ErrorContains(t, err, "date and datetime exclude each other")
}
