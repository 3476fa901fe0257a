package stats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// mixtureWeight is the weight of odds ratio i in the error mixture, spelled
// out independently of errorMixtureLogWeight.
func mixtureWeight(i int) float64 {
	if errorOddsRatios[i] == 1024 {
		return 0.5
	}
	return 0.5 / 9
}

// One canary request that failed and one baseline request that did not: the
// null puts the error on the canary with probability 1/2, odds ratio ψ with
// probability ψ/(1+ψ), so M = Σ w·2ψ/(1+ψ), worked by hand.
func TestErrorTestOneRequestEach(t *testing.T) {
	want := 0.0
	for i, psi := range errorOddsRatios {
		want += mixtureWeight(i) * 2 * psi / (1 + psi)
	}
	var e ErrorTest
	near(t, e.Look(Counts{1, 1}, Counts{1, 0}), 1/want, 1e-12, "p after 1/1 vs 0/1")
	if want >= 2 {
		t.Fatalf("M = %g: one error can never be more than 2× as likely", want)
	}
}

// Issue 14's case: a baseline with 0 errors of 200 and a canary with 3 of
// 20 is caught in one look. Hand check of the ψ=1024 component, which holds
// half of the weight: P_ψ(3 | 3 errors) = C(20,3)ψ³ / Σ_y C(20,y)C(200,3-y)ψ^y
// and P_null(3) = C(20,3)/C(220,3) = 1140/1750540.
func TestErrorTestZeroBaselineCaughtAtOnce(t *testing.T) {
	psi := 1024.0
	den := 1313400 + 20*19900*psi + 190*200*psi*psi + 1140*psi*psi*psi
	lr := (1140 * psi * psi * psi / den) / (1140.0 / 1750540)
	var e ErrorTest
	p := e.Look(Counts{20, 3}, Counts{200, 0})
	if p > 1/(0.5*lr) || p >= 0.002 {
		t.Errorf("p = %g, want at most 1/(0.5·%.0f) = %g", p, lr, 1/(0.5*lr))
	}
	// Fisher's fixed-sample p for the same counts is C(20,3)/C(220,3):
	// the sequential test pays a little for being allowed to look again.
	near(t, FisherGreater(3, 20, 0, 200), 1140.0/1750540, 1e-12, "Fisher p")
	// At a 10 % canary share two canary errors are enough (two looks).
	var two ErrorTest
	two.Look(Counts{10, 1}, Counts{90, 0})
	if p := two.Look(Counts{20, 2}, Counts{180, 0}); p >= 0.05 {
		t.Errorf("2/20 vs 0/180 in two looks: p = %g, want < 0.05", p)
	}
	// No errors anywhere is no evidence.
	var none ErrorTest
	if p := none.Look(Counts{20, 0}, Counts{200, 0}); p != 1 {
		t.Errorf("0/20 vs 0/200: p = %g, want 1", p)
	}
}

// The same error rate on both sides is never evidence against the canary:
// with the errors split exactly as the requests are, every component's
// likelihood ratio is at most 1 (Jensen), so p stays 1; fewer canary errors
// than the share predicts neither.
func TestErrorTestSymmetricNull(t *testing.T) {
	for _, c := range []struct{ cr, ce, br, be int64 }{
		{100, 5, 100, 5}, {20, 1, 180, 9}, {50, 0, 50, 3}, {1000, 10, 9000, 90},
	} {
		var e ErrorTest
		for look := int64(1); look <= 5; look++ {
			if p := e.Look(Counts{c.cr * look, c.ce * look}, Counts{c.br * look, c.be * look}); p != 1 {
				t.Errorf("%d/%d vs %d/%d per look, look %d: p = %g, want 1", c.ce, c.cr, c.be, c.br, look, p)
			}
		}
	}
}

// Exact validity of one look: summing the null (hypergeometric) probability
// of every outcome whose p-value is below α gives at most α.
func TestErrorTestExactLevelOneLook(t *testing.T) {
	for _, c := range []struct{ n1, n0, k int64 }{{20, 200, 3}, {10, 90, 5}, {50, 50, 10}, {5, 5, 4}, {100, 900, 40}} {
		for _, alpha := range []float64{0.05, 0.01} {
			mass := 0.0
			for x := max(0, c.k-c.n0); x <= min(c.k, c.n1); x++ {
				var e ErrorTest
				if e.Look(Counts{c.n1, x}, Counts{c.n0, c.k - x}) < alpha {
					mass += math.Exp(lnChoose(c.n1, x) + lnChoose(c.n0, c.k-x) - lnChoose(c.n1+c.n0, c.k))
				}
			}
			if mass > alpha {
				t.Errorf("n1=%d n0=%d k=%d: P_null(p < %g) = %g", c.n1, c.n0, c.k, alpha, mass)
			}
		}
	}
}

// The always-valid p-value never goes up, whatever the looks bring; counts
// that go down add no evidence, and the state survives a JSON round trip
// (continue-as-new) unchanged.
func TestErrorTestMonotoneAndCarried(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 200 {
		var e ErrorTest
		var c, b Counts
		last := 1.0
		for look := range 30 {
			for range 50 {
				if rng.Float64() < 0.2 {
					c.Requests++
					if rng.Float64() < 0.03 {
						c.Errors++
					}
				} else {
					b.Requests++
					if rng.Float64() < 0.01 {
						b.Errors++
					}
				}
			}
			if look == 15 {
				raw, err := json.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				var back ErrorTest
				if err := json.Unmarshal(raw, &back); err != nil {
					t.Fatal(err)
				}
				e = back
			}
			p := e.Look(c, b)
			if p > last || p <= 0 || math.IsNaN(p) {
				t.Fatalf("run %d look %d: p %g after %g", run, look, p, last)
			}
			last = p
		}
	}
	var e ErrorTest
	p := e.Look(Counts{20, 3}, Counts{200, 0})
	if got := e.Look(Counts{10, 0}, Counts{100, 0}); got != p {
		t.Errorf("counts that went down changed p from %g to %g", p, got)
	}
	e.Restart()
	if e.Canary != (Counts{}) || e.P() != p {
		t.Errorf("Restart: counts %+v, p %g (want kept %g)", e.Canary, e.P(), p)
	}
}

// ZTest, worked by hand for one look with z = 2 (τ = 1):
// M = 2/√2 · e^(4/4) · Φ(2/√2) = 3.541820…, p = 1/M.
func TestZTest(t *testing.T) {
	var z ZTest
	near(t, z.Look(2), 1/(math.Sqrt2*math.E*0.9213503964748575), 1e-9, "p after z=2")
	var zero ZTest
	for range 20 {
		if p := zero.Look(0); p != 1 {
			t.Fatalf("z = 0 looks: p = %g, want 1", p)
		}
	}
	var strong ZTest
	last := 1.0
	for i := range 10 {
		p := strong.Look(float64(i%3) - 0.2)
		if p > last {
			t.Fatalf("look %d: p %g after %g", i, p, last)
		}
		last = p
	}
	if p := strong.Look(math.NaN()); p != last || strong.Looks != 10 {
		t.Errorf("NaN z changed the test: p %g looks %d", p, strong.Looks)
	}
}
