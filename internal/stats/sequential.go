package stats

import "math"

// Sequential tests: always-valid p-values that may be looked at after every
// round without inflating the false-alarm rate.
//
// Re-running a fixed-sample test (FisherGreater) on the growing sample at
// every look and stopping at the first p < α rejects a true null far more
// often than α: with 20 looks, several times as often. A test martingale
// M_t (a non-negative process with E[M_t] ≤ 1 under the null, whatever the
// stopping rule) does not have that problem: by Ville's inequality
// P(sup_t M_t ≥ 1/α) ≤ α, so p_t = min(1, 1/max_{s≤t} M_s) is an
// always-valid p-value (Johari, Pekelis, Walsh, "Always valid inference:
// continuous monitoring of A/B tests", Operations Research 70(3), 2022;
// Ramdas, Grünwald, Vovk, Shafer, "Game-theoretic statistics and safe
// anytime-valid inference", Statistical Science 38(4), 2023). The running
// p-value never goes up, and stopping at the first p_t < α is a level-α test.
//
// ErrorTest builds M_t for error proportions as a mixture SPRT (mSPRT) over
// the odds ratio, on the *conditional* likelihood of each look: given how
// many requests each side got in the look and how many errors there were in
// total, the canary's share of the errors is hypergeometric under the null
// (Fisher's conditioning) and Fisher's noncentral hypergeometric with odds
// ratio ψ under the alternative. So the test is exact at any count (no
// normal approximation), needs no estimate of the baseline's error rate
// (which may be 0, or drift between looks: only the split inside one look
// matters) and treats a baseline with zero errors as the strongest evidence,
// not as a degenerate case.

// errorOddsRatios are the alternatives the error mixture puts weight on:
// odds ratios (canary vs baseline) 2, 4, …, 512 share half of the weight
// equally, and 1024 — in effect "the baseline has no errors and the canary
// has some", the failure rollbook exists for — gets the other half. Each
// canary error at a 10 % canary share then multiplies that component by
// about 10, so two errors alone reach p < 0.05 and three p < 0.01.
var errorOddsRatios = []float64{2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

func errorMixtureLogWeight(i int) float64 {
	if i == len(errorOddsRatios)-1 {
		return math.Log(0.5)
	}
	return math.Log(0.5 / float64(len(errorOddsRatios)-1))
}

// ErrorTest is the state of the sequential test of "the canary's error
// proportion is greater than the baseline's", carried between looks (and
// across continue-as-new: it is plain JSON with finite numbers only). The
// zero value is a test that has seen nothing.
type ErrorTest struct {
	// Looks counts the looks that were judged.
	Looks int `json:"looks,omitempty"`
	// Canary and Baseline are the cumulative counts of the last look, so
	// that the next look can take its increment.
	Canary   Counts `json:"canary"`
	Baseline Counts `json:"baseline"`
	// LogLR holds, per odds ratio of errorOddsRatios, the log of the
	// product of the per-look likelihood ratios (nil: all 0).
	LogLR []float64 `json:"logLR,omitempty"`
	// MaxLogM is the largest log mixture likelihood ratio seen so far (0
	// or more); the always-valid p-value is exp(-MaxLogM).
	MaxLogM float64 `json:"maxLogM,omitempty"`
}

// Counts are requests and errors of one side.
type Counts struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
}

// P is the always-valid p-value after the looks so far: 1 before any
// evidence, never increasing from one look to the next.
func (t *ErrorTest) P() float64 {
	return math.Min(1, math.Exp(-math.Max(0, t.MaxLogM)))
}

// Restart forgets the last cumulative counts (the counters were reset and
// will count from zero again) but keeps the evidence gathered so far: the
// product of per-look likelihood ratios stays a test martingale when a look
// is skipped.
func (t *ErrorTest) Restart() {
	t.Canary, t.Baseline = Counts{}, Counts{}
}

// Look adds one look at the cumulative counts of both sides (since the
// test's first reading) and returns the always-valid p-value. Counts that
// went down, or are inconsistent (more errors than requests), add no
// evidence and become the new reference.
func (t *ErrorTest) Look(canary, baseline Counts) float64 {
	dc := Counts{canary.Requests - t.Canary.Requests, canary.Errors - t.Canary.Errors}
	db := Counts{baseline.Requests - t.Baseline.Requests, baseline.Errors - t.Baseline.Errors}
	t.Canary, t.Baseline = canary, baseline
	t.Looks++
	if !validCounts(dc) || !validCounts(db) {
		return t.P()
	}
	if len(t.LogLR) != len(errorOddsRatios) {
		t.LogLR = make([]float64, len(errorOddsRatios))
	}
	lookLogLR(dc.Errors, dc.Requests, db.Errors, db.Requests, t.LogLR)
	terms := make([]float64, len(t.LogLR))
	for i, l := range t.LogLR {
		terms[i] = errorMixtureLogWeight(i) + l
	}
	if m := logSumExp(terms); m > t.MaxLogM {
		t.MaxLogM = m
	}
	return t.P()
}

func validCounts(c Counts) bool {
	return c.Requests >= 0 && c.Errors >= 0 && c.Errors <= c.Requests
}

// lookLogLR adds to acc[i] the log likelihood ratio of one look for odds
// ratio errorOddsRatios[i]: x canary errors of n1 requests, y baseline
// errors of n0. Conditional on k = x+y, X is hypergeometric under the null
// and Fisher-noncentral-hypergeometric with odds ratio ψ under the
// alternative, so LR(ψ) = ψ^x / E_null[ψ^X]. A look where the split is
// forced (no errors, or a side without requests) carries no evidence.
func lookLogLR(x, n1, y, n0 int64, acc []float64) {
	k := x + y
	lo, hi := max(0, k-n0), min(k, n1)
	if k == 0 || n1 == 0 || n0 == 0 || lo == hi {
		return
	}
	// base[j] = log C(n1, lo+j) + log C(n0, k-lo-j): the null's weights,
	// up to the normalizer log C(n1+n0, k) that cancels below.
	base := make([]float64, hi-lo+1)
	for j := range base {
		v := lo + int64(j)
		base[j] = lnChoose(n1, v) + lnChoose(n0, k-v)
	}
	lnNull := logSumExp(base)
	tilted := make([]float64, len(base))
	for i, psi := range errorOddsRatios {
		lp := math.Log(psi)
		for j := range base {
			tilted[j] = base[j] + float64(lo+int64(j))*lp
		}
		acc[i] += float64(x)*lp - (logSumExp(tilted) - lnNull)
	}
}

// logSumExp is log Σ exp(v) without overflow (-Inf for no terms).
func logSumExp(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	if math.IsInf(m, 0) {
		return m
	}
	s := 0.0
	for _, x := range v {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}

// ZTest is a sequential one-sided test on a stream of per-look z-scores that
// are each (at most) standard normal under the null and independent across
// looks — here the Mann-Whitney z of each look's latency samples. It is the
// normal mSPRT of Robbins (1970) / Johari et al. (2022) with a half-normal
// mixing distribution N(0, τ²) restricted to positive drifts: after t looks
// with S = Σ z,
//
//	M_t = 2 / √(1+tτ²) · exp(S²τ² / (2(1+tτ²))) · Φ(Sτ / √(1+tτ²)),
//
// a non-negative supermartingale under the null. τ = 1: a drift of about
// one standard error per look. Its validity rests on the per-look normal
// approximation (n ≥ 8 per side), as the fixed-sample test's does.
type ZTest struct {
	Looks   int     `json:"looks,omitempty"`
	SumZ    float64 `json:"sumZ,omitempty"`
	MaxLogM float64 `json:"maxLogM,omitempty"`
}

// zMixtureTau2 is τ² of ZTest's mixing distribution.
const zMixtureTau2 = 1.0

// Look adds one look's z-score and returns the always-valid p-value.
func (t *ZTest) Look(z float64) float64 {
	if math.IsNaN(z) || math.IsInf(z, 0) {
		return t.P()
	}
	t.Looks++
	t.SumZ += z
	v := 1 + float64(t.Looks)*zMixtureTau2
	u := t.SumZ * math.Sqrt(zMixtureTau2/v)
	phi := 0.5 * math.Erfc(-u/math.Sqrt2)
	if phi > 0 {
		if m := math.Log(2) - 0.5*math.Log(v) + u*u/2 + math.Log(phi); m > t.MaxLogM {
			t.MaxLogM = m
		}
	}
	return t.P()
}

// P is the always-valid p-value so far.
func (t *ZTest) P() float64 {
	return math.Min(1, math.Exp(-math.Max(0, t.MaxLogM)))
}
