// Package suggest finds the name a misspelt one most likely meant, for
// "did you mean" hints.
package suggest

import (
	"iter"
	"strings"
)

// Closest returns the known name that word most likely meant, or "" when
// none is close: first a name equal to it once case, '.', '_' and '-' are
// ignored (DSPGO_POOL_SIZE for DSPGO_POOL__SIZE), then the one closest in
// edit distance, up to 1 edit for words of up to six letters and 2 for
// longer ones, when only one is that close.
func Closest(word string, known iter.Seq[string]) string {
	want := normalize(word)
	if want == "" {
		return ""
	}
	best, bestDist, ties := "", -1, 0
	for k := range known {
		d := editDistance(want, normalize(k))
		switch {
		case bestDist < 0 || d < bestDist:
			best, bestDist, ties = k, d, 1
		case d == bestDist:
			ties++
		}
	}
	limit := 1
	if len(want) > 6 {
		limit = 2
	}
	if bestDist < 0 || bestDist > limit || ties > 1 {
		return ""
	}
	return best
}

func normalize(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '_', '-':
			return -1
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// editDistance is the Levenshtein distance of a and b, by bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
