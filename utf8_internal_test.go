package dspgo

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jsonValues counts the JSON values of v as encoding/json encodes it.
func jsonValues(t *testing.T, v any) int {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	var decoded any
	require.NoError(t, json.Unmarshal(data, &decoded))
	var count func(any) int
	count = func(v any) int {
		n := 1
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				n += count(e)
			}
		case map[string]any:
			for _, e := range v {
				n += count(e)
			}
		}
		return n
	}
	return count(decoded)
}

type embedded struct {
	Promoted []string
}

type tagged struct {
	embedded
	Named   map[string]int `json:"named"`
	Skipped string         `json:"-"`
	hidden  string
	Pointer *History
}

// The second walk counts a value's JSON values as encoding/json writes
// them, a map or list reached twice counted twice.
func TestWalkSizesAreTheEncodedValues(t *testing.T) {
	shared := []any{1, "two", nil}
	for _, v := range []any{
		nil, "s", 1.5, []string{"a", "b"}, []any{}, map[string]any{},
		map[string]any{"a": shared, "b": shared, "c": map[string]any{"d": &shared}},
		[2][]int{{1, 2}, {3}},
		tagged{embedded: embedded{Promoted: []string{"p"}}, Named: map[string]int{"k": 1}, Skipped: "\xff", hidden: "\xff",
			Pointer: &History{Messages: []map[string]any{{"q": shared}}}},
		History{},
	} {
		w := walker{seen: map[ref]int{}}
		n, b := w.value(v, 0)
		require.Nil(t, b, "%#v", v)
		assert.Equal(t, jsonValues(t, v), n, "%#v", v)
	}
}

// A value of levels maps, each holding the one below twice, encodes to
// 3·2^levels − 1 values: 22 levels are within maxWalkValues, 23 are not.
func TestWalkBoundsTheEncodedValues(t *testing.T) {
	dag := func(levels int) any {
		m := map[string]any{"leaf": 1}
		for range levels {
			m = map[string]any{"a": m, "b": m}
		}
		return m
	}
	assert.Nil(t, checkValue(dag(22)))
	b := checkValue(dag(23))
	require.NotNil(t, b)
	assert.Contains(t, b.what, "more than 16777216 JSON values")
	assert.Empty(t, b.path(), "said of the whole value")
}

// The walk of a usual value allocates nothing.
func TestWalkAllocations(t *testing.T) {
	inputs := map[string]any{"question": "q", "context": []string{"a", "b"}, "meta": map[string]any{"k": []any{1, "v", true}},
		"n": int64(3), "history": History{Messages: []map[string]any{{"question": "q"}}}}
	allocs := testing.AllocsPerRun(100, func() {
		if path, _ := checkInputs(inputs); path != "" {
			t.Fatal(path)
		}
	})
	assert.Zero(t, allocs)
}

// The first walk of a History is the second's.
func TestWalkOfAHistory(t *testing.T) {
	h := History{Messages: []map[string]any{{"q": "a", "a": []any{1, 2}}, {"q": "\xff"}}}
	quick := walker{left: quickWalkSteps}
	_, b := quick.value(&h, 0)
	require.NotNil(t, b)
	assert.Equal(t, `["messages"][1]["q"]`, b.path())
	h.Messages[1]["q"] = "b"
	n, b := quick.value(&h, 0)
	require.Nil(t, b)
	tracked := walker{seen: map[ref]int{}}
	m, b := tracked.value(&h, 0)
	require.Nil(t, b)
	assert.Equal(t, jsonValues(t, h), n)
	assert.Equal(t, m, n)
}
