package dspgo

import (
	"reflect"
	"testing"
)

// A struct type is derived once per side: later calls return the cached
// codec, or the cached error.
func TestTypedDerivationIsCached(t *testing.T) {
	type in struct{ Question string }
	type bad struct{ C chan int }
	ti, tb := reflect.TypeFor[in](), reflect.TypeFor[bad]()

	first, err := codecOf(ti, inputSide)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := codecOf(ti, inputSide)
	if first != again {
		t.Error("the second derivation of a type made a new codec")
	}
	if out, _ := codecOf(ti, outputSide); out == first {
		t.Error("the output side shares the input side's codec")
	}
	_, err1 := codecOf(tb, inputSide)
	_, err2 := codecOf(tb, inputSide)
	if err1 == nil || err1 != err2 {
		t.Errorf("the error of a type that cannot be mapped is not cached: %v, %v", err1, err2)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = codecOf(ti, inputSide) }); n != 0 {
		t.Errorf("a cached derivation allocates %v times", n)
	}
}
