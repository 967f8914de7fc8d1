package adapter_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/dspgo/dspgo/adapter"
)

func TestCallCounter(t *testing.T) {
	var c adapter.CallCounter
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Begin()
			var err error
			if i%4 == 0 {
				err = errors.New("x")
			}
			c.End(err)
		}()
	}
	c.Begin() // one still in flight
	wg.Wait()
	var s adapter.Stats
	c.Fill(&s)
	assert.EqualValues(t, 100, s.Calls)
	assert.EqualValues(t, 25, s.Failures)
	assert.Equal(t, 1, s.InFlight)
}

type statser struct{ adapter.Adapter }

func (statser) Name() string         { return "s" }
func (statser) Stats() adapter.Stats { return adapter.Stats{Adapter: "s", Calls: 7} }

type reporter struct{ adapter.Adapter }

func (reporter) Name() string                { return "r" }
func (reporter) AdapterStats() adapter.Stats { return adapter.Stats{Adapter: "r", Calls: 9} }

type silent struct{ adapter.Adapter }

func (silent) Name() string { return "q" }

func TestStatsOf(t *testing.T) {
	s, ok := adapter.StatsOf(statser{})
	assert.True(t, ok)
	assert.EqualValues(t, 7, s.Calls)
	s, ok = adapter.StatsOf(reporter{})
	assert.True(t, ok)
	assert.EqualValues(t, 9, s.Calls)
	s, ok = adapter.StatsOf(silent{})
	assert.False(t, ok)
	assert.Equal(t, "q", s.Adapter)
}
