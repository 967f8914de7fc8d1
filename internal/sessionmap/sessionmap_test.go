package sessionmap_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/dspgo/dspgo/internal/sessionmap"
)

func TestMap(t *testing.T) {
	var m sessionmap.Map[string]
	_, ok := m.Get("s")
	assert.False(t, ok, "the zero value is empty")
	m.Bind("s1", "w1")
	m.Bind("s2", "w1")
	m.Bind("s3", "w2")
	v, ok := m.Get("s1")
	assert.True(t, ok)
	assert.Equal(t, "w1", v)

	m.ForgetIf("s3", "w1")
	assert.Equal(t, 3, m.Len(), "s3 is bound to w2, not w1")
	m.ForgetIf("s3", "w2")
	m.Unbind("w1")
	assert.Zero(t, m.Len())
	m.Bind("s4", "w3")
	m.Forget("s4")
	assert.Zero(t, m.Len())
}

func TestMapCap(t *testing.T) {
	var m sessionmap.Map[int]
	for i := range sessionmap.Cap {
		m.Bind(strconv.Itoa(i), i)
	}
	m.Bind("0", 7) // rebinding a bound session forgets nothing
	assert.Equal(t, sessionmap.Cap, m.Len())
	m.Bind("new", 1)
	assert.Equal(t, sessionmap.Cap, m.Len(), "one binding forgotten for the new one")
	v, ok := m.Get("new")
	assert.True(t, ok)
	assert.Equal(t, 1, v)
}
