package suggest_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/dspgo/dspgo/internal/suggest"
)

func TestClosest(t *testing.T) {
	adapters := []string{"memory", "mock", "pool", "port", "remote"}
	keys := []string{"pool.size", "pool.max_queue", "log.level", "adapter"}
	for _, c := range []struct {
		word  string
		known []string
		want  string
	}{
		{"mok", adapters, "mock"},
		{"remot", adapters, "remote"},
		{"Mock", adapters, "mock"},       // case is ignored
		{"poot", adapters, ""},           // as close to pool as to port
		{"python", adapters, ""},         // close to none
		{"pool_size", keys, "pool.size"}, // '.', '_' and '-' are ignored
		{"pool.max_queu", keys, "pool.max_queue"},
		{"adaptr", keys, "adapter"},      // one edit for six letters
		{"adpatr", keys, ""},             // two are too many for six
		{"log.levle", keys, "log.level"}, // two for longer words
		{"", keys, ""},
		{"...", keys, ""},
		{"mock", nil, ""},
	} {
		assert.Equal(t, c.want, suggest.Closest(c.word, slices.Values(c.known)), "%q", c.word)
	}
}
