package program_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/internal/program"
)

// A time.Time converts to a datetime's canonical text in its own offset,
// or in UTC when the text cannot hold that offset (seconds in it, as in
// historical zones, or a day or more): the same moment either way.
func TestTimeValuesKeepTheirMoment(t *testing.T) {
	moment := program.Type{Kind: program.DateTime}
	for _, c := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "2024-01-02T03:04:05Z"},
		{time.Date(2024, 1, 2, 3, 4, 5, 500_000_000, time.FixedZone("", 5*3600+30*60)), "2024-01-02T03:04:05.500000+05:30"},
		{time.Date(2024, 1, 2, 3, 4, 5, 999, time.FixedZone("", -3600)), "2024-01-02T03:04:05-01:00"},
		{time.Date(1900, 1, 1, 12, 0, 0, 0, time.FixedZone("AMT", 19*60+32)), "1900-01-01T11:40:28Z"},
		{time.Date(2024, 1, 1, 12, 0, 0, 0, time.FixedZone("", -30)), "2024-01-01T12:00:30Z"},
		{time.Date(2024, 1, 1, 12, 0, 0, 0, time.FixedZone("", 25*3600)), "2023-12-31T11:00:00Z"},
	} {
		got, err := moment.Convert(c.in, "input x")
		require.NoError(t, err, "%v", c.in)
		assert.Equal(t, c.want, got, "%v", c.in)
		back, err := time.Parse(time.RFC3339Nano, got.(string))
		require.NoError(t, err)
		assert.True(t, back.Equal(c.in.Truncate(time.Microsecond)), "%v is %v", c.in, back)
	}
	_, err := moment.Convert(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "input x")
	assert.EqualError(t, err, "input x: expected datetime.datetime (YYYY-MM-DDTHH:MM:SS, seconds and fraction optional, then Z or ±HH:MM for its zone, if any), got a time.Time of the year 10000")
}
