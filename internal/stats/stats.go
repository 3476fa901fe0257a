// Package stats holds the small, deterministic statistics the compare check
// judges with. It runs inside workflow code, so it only uses pure math: no
// randomness, no clocks, no map iteration. The one exception,
// SimulateSequential, draws from a seeded generator and is for tests and the
// benchmark only; workflow code never calls it.
package stats

import (
	"math"
	"sort"
)

// FisherGreater is the one-sided Fisher exact test of whether group A's
// proportion of events is greater than group B's: aEvents of aTotal against
// bEvents of bTotal. It returns the p-value P(X >= aEvents) under the
// hypergeometric null. It stays exact at low counts and when B has zero
// events, which is where normal approximations pass bad canaries.
func FisherGreater(aEvents, aTotal, bEvents, bTotal int64) float64 {
	if aTotal <= 0 || bTotal <= 0 || aEvents < 0 || bEvents < 0 || aEvents > aTotal || bEvents > bTotal {
		return 1
	}
	n := aTotal + bTotal   // population
	k := aEvents + bEvents // events in population
	draws := aTotal        // group A is the sample
	hi := min(k, draws)    // largest possible aEvents
	lnDenom := lnChoose(n, draws)
	p := 0.0
	for x := aEvents; x <= hi; x++ {
		p += math.Exp(lnChoose(k, x) + lnChoose(n-k, draws-x) - lnDenom)
	}
	return math.Min(1, p)
}

func lnChoose(n, k int64) float64 {
	if k < 0 || k > n {
		return math.Inf(-1)
	}
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

// MannWhitney is the result of a Mann-Whitney U test.
type MannWhitney struct {
	// U is the U statistic of sample A (the number of pairs where A's value
	// is greater, ties counting one half).
	U float64 `json:"u"`
	// Z is the tie-corrected, continuity-corrected normal score of U.
	Z float64 `json:"z"`
	// P is the one-sided p-value for "A tends to be greater than B".
	P  float64 `json:"p"`
	NA int     `json:"nA"`
	NB int     `json:"nB"`
}

// MannWhitneyGreater tests whether values in a tend to be greater than in b
// (for latencies: is the canary slower than the baseline), using the normal
// approximation with tie correction, which is accurate for n ≥ 8 per side.
func MannWhitneyGreater(a, b []float64) MannWhitney {
	na, nb := len(a), len(b)
	r := MannWhitney{NA: na, NB: nb, P: 1}
	if na == 0 || nb == 0 {
		return r
	}
	type obs struct {
		v     float64
		fromA bool
	}
	all := make([]obs, 0, na+nb)
	for _, v := range a {
		all = append(all, obs{v, true})
	}
	for _, v := range b {
		all = append(all, obs{v, false})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].v < all[j].v })
	var rankSumA, tieTerm float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1 … j, averaged
		t := float64(j - i)
		tieTerm += t*t*t - t
		for k := i; k < j; k++ {
			if all[k].fromA {
				rankSumA += avg
			}
		}
		i = j
	}
	fa, fb := float64(na), float64(nb)
	n := fa + fb
	r.U = rankSumA - fa*(fa+1)/2
	mean := fa * fb / 2
	variance := fa * fb / 12 * ((n + 1) - tieTerm/(n*(n-1)))
	if variance <= 0 {
		return r
	}
	r.Z = (r.U - mean - 0.5) / math.Sqrt(variance)
	r.P = 0.5 * math.Erfc(r.Z/math.Sqrt2)
	return r
}

// Median returns the median of xs (0 for none) without modifying xs.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
