package program

import (
	"fmt"
	"sort"
	"unicode/utf8"
)

// identRange is a range of code points of one class of identClasses
// (testdata/gen_identifiers.py): 1 may start a name, 2 may only continue
// one; 3 and 4 are 1 and 2 that regular expressions' \w does not match; 5
// and 6 are 1 and 2 that NFKC changes.
type identRange struct {
	lo, hi rune
	class  uint8
}

// identClass is the class of r in identClasses, 0 when r is no
// character of identifiers.
func identClass(r rune) uint8 {
	i := sort.Search(len(identClasses), func(i int) bool { return identClasses[i].hi >= r })
	if i < len(identClasses) && identClasses[i].lo <= r {
		return identClasses[i].class
	}
	return 0
}

// notNFKC is how an error says a name is not in NFKC form.
const notNFKC = "is not in NFKC form: Python, and so DSPy, reads an identifier in that form, which is another name (write the name as NFKC normalizes it)"

// NameProblem is why s cannot be a field's name, as the end of an error
// ("is not a valid identifier …"), or "" when it can: a name is what
// Python's str.isidentifier() accepts (of Unicode 14.0, identClasses'
// version), each of its characters one that \w matches (DSPy's
// ChatAdapter reads a field's header with \w+), and in NFKC form, which
// Python gives the identifiers it reads (DSPy's string signatures among
// them). The Python worker's signature.name_problem says the same of every
// name (docs/protocol.md, "Program specs").
func NameProblem(s string) string {
	if s == "" || !utf8.ValidString(s) {
		return notIdentifier
	}
	word, nfkc := "", false
	var prev rune
	for i, r := range s {
		class := identClass(r)
		if class == 0 || i == 0 && class%2 == 0 {
			return notIdentifier
		}
		switch {
		case (class == 3 || class == 4) && word == "":
			word = fmt.Sprintf("holds %q (U+%04X), which DSPy's ChatAdapter does not read in a field's header: a name's characters are letters, digits and _", string(r), r)
		case class == 5 || class == 6 || hangulComposes(prev, r):
			nfkc = true
		}
		prev = r
	}
	switch {
	case word != "":
		return word
	case nfkc:
		return notNFKC
	}
	return ""
}

// hangulComposes reports whether the Hangul jamo or syllable a followed by
// the jamo b compose into one syllable under NFKC: a leading consonant
// followed by a vowel, or a syllable of no trailing consonant followed by
// a trailing consonant (Unicode's Hangul composition).
func hangulComposes(a, b rune) bool {
	const sBase, lBase, vBase, tBase, lCount, vCount, tCount = 0xAC00, 0x1100, 0x1161, 0x11A7, 19, 21, 28
	switch {
	case lBase <= a && a < lBase+lCount:
		return vBase <= b && b < vBase+vCount
	case sBase <= a && a < sBase+lCount*vCount*tCount:
		return (a-sBase)%tCount == 0 && tBase < b && b < tBase+tCount
	}
	return false
}
