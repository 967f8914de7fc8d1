package dspgo

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The pooled decoders of execute results: each result is read whole and
// alone, whatever the results before it held (trailing data, errors,
// numbers), and numbers stay exact.
func TestDecodeResultReusesDecodersSafely(t *testing.T) {
	results := []struct {
		raw  string
		want map[string]any // nil: an error
	}{
		{`{"outputs":{"answer":"a"}}`, map[string]any{"answer": "a"}},
		{`{"outputs":{"n":9007199254740993}}`, map[string]any{"n": json.Number("9007199254740993")}},
		{`{"outputs":{"answer":"b"}} {"outputs":{"answer":"trailing"}}`, map[string]any{"answer": "b"}},
		{`{"outputs":{"answer":"c"}}`, map[string]any{"answer": "c"}},
		{`{"outputs":{"answer":`, nil},
		{`{"outputs":{"answer":"d"}}`, map[string]any{"answer": "d"}},
		{"{\"outputs\":{\"answer\":\"e\"}}\n", map[string]any{"answer": "e"}},
		{`{"outputs":{"answer":"f"},"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`, map[string]any{"answer": "f"}},
		{`{"outputs":{"answer":"g"}}`, map[string]any{"answer": "g"}},
	}
	for range 3 { // the pool hands the decoders round
		for _, r := range results {
			var got executeResult
			err := decodeResult([]byte(r.raw), &got)
			if r.want == nil {
				assert.Error(t, err, r.raw)
				continue
			}
			require.NoError(t, err, r.raw)
			assert.Equal(t, r.want, got.Outputs, r.raw)
			assert.Equal(t, strings.Contains(r.raw, "usage"), got.Usage != nil, "usage only where the result has it: %s", r.raw)
		}
	}
}

// A decoder is reused: decoding a result allocates less than a new
// decoder would.
func TestDecodeResultAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	raw := []byte(`{"outputs":{"answer":"a"}}`)
	var v executeResult
	require.NoError(t, decodeResult(raw, &v))
	allocs := testing.AllocsPerRun(100, func() {
		var v executeResult
		_ = decodeResult(raw, &v)
	})
	// A new decoder, its reader and its buffer would add three to the
	// seven of the decoding itself.
	assert.LessOrEqual(t, allocs, 7.0)
}
