package stats

import (
	"encoding/json"
	"math"
	"testing"
)

// TestSequentialSimulation is issue 14's seeded simulation: 1,000 healthy
// canaries per error rate (0 % and 0.5 % on both sides) and 1,000 bad ones
// (2 % against a 0 % baseline) at 5, 20 and 100 canary requests per look,
// 10 % canary share, 20 looks each. The sequential test's false rollback
// rate stays at most the significance at every level, where Fisher's test
// re-run at every look passes it; and it catches the bad canary after as
// few canary requests as Fisher does.
func TestSequentialSimulation(t *testing.T) {
	cfg := DefaultSimConfig()
	if testing.Short() {
		cfg.Runs = 300
	}
	rep := SimulateSequential(cfg)
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %s", b)
	for _, lv := range rep.Levels {
		t.Logf("%3d canary requests/look: false rate sequential %v, repeated Fisher %v; median canary requests to catch 2%% vs 0%%: sequential %.0f (caught %.1f%%), repeated Fisher %.0f (caught %.1f%%)",
			lv.CanaryPerLook, lv.FalseRates, lv.FisherFalseRates, lv.MedianRequestsToDetect, lv.DetectRate*100, lv.FisherMedianRequestsToDetect, lv.FisherDetectRate*100)
		for i, fr := range lv.FalseRates {
			if fr > cfg.Significance {
				t.Errorf("%d/look, healthy at %.1f%% errors: false rollback rate %.3f above significance %.2f", lv.CanaryPerLook, cfg.Healthy[i]*100, fr, cfg.Significance)
			}
		}
		if lv.CanaryPerLook >= 20 && lv.DetectRate < 0.95 {
			t.Errorf("%d/look: the sequential test caught only %.1f%% of 2%% vs 0%% canaries in %d looks", lv.CanaryPerLook, lv.DetectRate*100, cfg.Looks)
		}
		// Catching 2 % vs 0 % takes a few canary errors whatever the
		// test: allow the sequential one 1.5× Fisher's requests.
		if lv.MedianRequestsToDetect < 0 || lv.MedianRequestsToDetect > 1.5*lv.FisherMedianRequestsToDetect {
			t.Errorf("%d/look: median canary requests to detect %.0f, repeated Fisher %.0f", lv.CanaryPerLook, lv.MedianRequestsToDetect, lv.FisherMedianRequestsToDetect)
		}
	}
	if rep.FalseRate > rep.Significance {
		t.Errorf("false rollback rate %.3f above significance %.2f", rep.FalseRate, rep.Significance)
	}
	// The simulation must be able to show the problem it is about:
	// repeated Fisher looks on 0.5 % vs 0.5 % at 100 canary requests per
	// look fail healthy canaries well above 5 % of the time.
	if last := rep.Levels[len(rep.Levels)-1]; last.FisherFalseRates[1] <= 1.5*cfg.Significance {
		t.Errorf("repeated Fisher's false rate %.3f at %d/look: the simulation no longer shows the repeated-looks problem", last.FisherFalseRates[1], last.CanaryPerLook)
	}
	if math.IsNaN(rep.MedianRequestsToDetect) || rep.MedianRequestsToDetect <= 0 {
		t.Errorf("median requests to detect %v", rep.MedianRequestsToDetect)
	}
}

// The same seed gives the same report, so the benchmark's numbers can be
// reproduced.
func TestSimulationIsDeterministic(t *testing.T) {
	cfg := DefaultSimConfig()
	cfg.Runs, cfg.CanaryPerLook = 50, []int{20}
	a, _ := json.Marshal(SimulateSequential(cfg))
	b, _ := json.Marshal(SimulateSequential(cfg))
	if string(a) != string(b) {
		t.Errorf("two runs with seed %d differ:\n%s\n%s", cfg.Seed, a, b)
	}
}
