package stats

import (
	"math"
	"testing"
)

func near(t *testing.T, got, want, tol float64, what string) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.10g, want %.10g (±%g)", what, got, want, tol)
	}
}

// Fisher's "lady tasting tea" (R. A. Fisher, The Design of Experiments,
// 1935, ch. II): 8 cups, 4 with milk first; she names 3 of them right. The
// one-sided p-value of doing at least that well by chance is 17/70.
func TestFisherLadyTastingTea(t *testing.T) {
	near(t, FisherGreater(3, 4, 1, 4), 17.0/70.0, 1e-12, "p(3 of 4 vs 1 of 4)")
	// All four right: 1/70, the value Fisher gives for a perfect score.
	near(t, FisherGreater(4, 4, 0, 4), 1.0/70.0, 1e-12, "p(4 of 4 vs 0 of 4)")
}

// A canary with errors against a baseline with none is still judged
// (spinnaker/kayenta#377 passes such canaries). Hypergeometric tail worked
// by hand: with 10 canary and 10 baseline requests and 3 errors all on the
// canary, p = C(10,3)/C(20,3) = 120/1140.
func TestFisherZeroBaselineErrors(t *testing.T) {
	near(t, FisherGreater(3, 10, 0, 10), 120.0/1140.0, 1e-12, "p(3/10 vs 0/10)")
	if p := FisherGreater(0, 10, 0, 10); p != 1 {
		t.Errorf("no errors anywhere: p = %g, want 1", p)
	}
	// 2 % of 1000 canary requests against 0 of 1000 baseline ones is
	// significant at 0.05 — the e2e "2 % vs 0 %" case.
	if p := FisherGreater(20, 1000, 0, 1000); p >= 1e-5 {
		t.Errorf("p(20/1000 vs 0/1000) = %g, want far below 0.05", p)
	}
}

// The example of scipy.stats.mannwhitneyu's documentation (SciPy 1.7+):
// ages of male and female authors, males [19 22 16 29 24], females
// [20 11 17 12]. U1 = 17; the asymptotic two-sided p-value with continuity
// correction is 0.11134688653314041, so the one-sided "greater" one is half.
func TestMannWhitneyScipyExample(t *testing.T) {
	r := MannWhitneyGreater([]float64{19, 22, 16, 29, 24}, []float64{20, 11, 17, 12})
	near(t, r.U, 17, 0, "U")
	near(t, 2*r.P, 0.11134688653314041, 1e-12, "two-sided p")
	if r.NA != 5 || r.NB != 4 {
		t.Errorf("sizes %d/%d", r.NA, r.NB)
	}
}

func TestMannWhitneyTies(t *testing.T) {
	// Identical samples: U is half the pairs, no evidence either way.
	r := MannWhitneyGreater([]float64{1, 2, 3, 3}, []float64{1, 2, 3, 3})
	near(t, r.U, 8, 0, "U")
	if r.P < 0.5 {
		t.Errorf("p = %g for identical samples", r.P)
	}
	// All values equal: zero variance, p stays 1.
	if r := MannWhitneyGreater([]float64{5, 5}, []float64{5, 5}); r.P != 1 {
		t.Errorf("p = %g with no variance", r.P)
	}
}

func TestMedian(t *testing.T) {
	near(t, Median([]float64{3, 1, 2}), 2, 0, "odd")
	near(t, Median([]float64{4, 1, 2, 3}), 2.5, 0, "even")
	near(t, Median(nil), 0, 0, "empty")
}
