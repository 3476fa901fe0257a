package stats

import (
	"math"
	"math/rand/v2"
)

// SimConfig describes a seeded simulation of canaries judged by the compare
// check's error test: the sequential test (ErrorTest) side by side with the
// fixed-sample Fisher test re-run at every look on the counts since the
// first reading, which is what rollbook did before.
type SimConfig struct {
	Seed uint64 `json:"seed"`
	// Runs is the number of canaries per scenario and traffic level.
	Runs int `json:"runs"`
	// Looks is the number of judged looks per canary (after the first
	// reading of the counters).
	Looks int `json:"looks"`
	// CanaryPerLook are the traffic levels: expected canary requests per look.
	CanaryPerLook []int `json:"canary_per_look"`
	// CanaryShare is the canary's share of the traffic (0.10 for 10 %).
	CanaryShare float64 `json:"canary_share"`
	// Significance is the compare check's significance (0.05).
	Significance float64 `json:"significance"`
	// MinSamples per side before a look may fail the canary (the compare
	// check's minSamples, 20 by default).
	MinSamples int64 `json:"min_samples"`
	// Healthy are error rates (canary = baseline) of healthy canaries.
	Healthy []float64 `json:"healthy_error_rates"`
	// BadCanary and BadBaseline are the error rates of a bad canary and of
	// its baseline.
	BadCanary   float64 `json:"bad_canary_error_rate"`
	BadBaseline float64 `json:"bad_baseline_error_rate"`
}

// DefaultSimConfig is the simulation of issue 14: 1,000 canaries per
// scenario and level, 20 looks, 5/20/100 canary requests per look at a 10 %
// canary share, healthy canaries at 0 % and 0.5 % errors, bad ones at 2 %
// against a 0 % baseline, significance 0.05.
func DefaultSimConfig() SimConfig {
	return SimConfig{
		Seed: 14, Runs: 1000, Looks: 20, CanaryPerLook: []int{5, 20, 100}, CanaryShare: 0.10,
		Significance: 0.05, MinSamples: 20, Healthy: []float64{0, 0.005}, BadCanary: 0.02, BadBaseline: 0,
	}
}

// SimReport is what the simulation measured. Rates are fractions of runs;
// medians count canary requests up to the look that failed the canary, and
// a canary never caught within the looks counts as +∞ (reported as -1 when
// the median itself is not reached).
type SimReport struct {
	Config SimConfig `json:"config"`
	// FalseRate is the sequential test's false rollback rate: the largest
	// over the healthy scenarios and traffic levels.
	FalseRate    float64 `json:"false_rate"`
	Significance float64 `json:"significance"`
	// MedianRequestsToDetect: canary requests the sequential test needed
	// to catch the bad canary, median over all bad runs of all levels.
	MedianRequestsToDetect float64 `json:"median_requests_to_detect"`
	// Fisher*: the same numbers for Fisher's test re-run at every look.
	FisherFalseRate              float64    `json:"fisher_false_rate"`
	FisherMedianRequestsToDetect float64    `json:"fisher_median_requests_to_detect"`
	DetectRate                   float64    `json:"detect_rate"`
	FisherDetectRate             float64    `json:"fisher_detect_rate"`
	Levels                       []SimLevel `json:"levels"`
}

// SimLevel is one traffic level's numbers.
type SimLevel struct {
	CanaryPerLook int `json:"canary_per_look"`
	// FalseRates per healthy error rate, in SimConfig.Healthy's order.
	FalseRates                   []float64 `json:"false_rates"`
	FisherFalseRates             []float64 `json:"fisher_false_rates"`
	MedianRequestsToDetect       float64   `json:"median_requests_to_detect"`
	FisherMedianRequestsToDetect float64   `json:"fisher_median_requests_to_detect"`
	DetectRate                   float64   `json:"detect_rate"`
	FisherDetectRate             float64   `json:"fisher_detect_rate"`
}

// simOutcome is when each method failed one canary (requests: canary
// requests seen up to that look; +Inf when it never did).
type simOutcome struct{ seq, fisher float64 }

// SimulateSequential runs the simulation. It is deterministic for a given
// config (math/rand/v2's PCG with cfg.Seed).
func SimulateSequential(cfg SimConfig) SimReport {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5e9))
	rep := SimReport{Config: cfg, Significance: cfg.Significance}
	var allSeq, allFisher []float64
	for _, level := range cfg.CanaryPerLook {
		lv := SimLevel{CanaryPerLook: level}
		for _, rate := range cfg.Healthy {
			var seqFalse, fisherFalse int
			for range cfg.Runs {
				o := simulateCanary(rng, cfg, level, rate, rate)
				if !math.IsInf(o.seq, 1) {
					seqFalse++
				}
				if !math.IsInf(o.fisher, 1) {
					fisherFalse++
				}
			}
			fr, ffr := float64(seqFalse)/float64(cfg.Runs), float64(fisherFalse)/float64(cfg.Runs)
			lv.FalseRates, lv.FisherFalseRates = append(lv.FalseRates, fr), append(lv.FisherFalseRates, ffr)
			rep.FalseRate, rep.FisherFalseRate = math.Max(rep.FalseRate, fr), math.Max(rep.FisherFalseRate, ffr)
		}
		var seq, fisher []float64
		for range cfg.Runs {
			o := simulateCanary(rng, cfg, level, cfg.BadCanary, cfg.BadBaseline)
			seq, fisher = append(seq, o.seq), append(fisher, o.fisher)
		}
		lv.MedianRequestsToDetect, lv.DetectRate = medianWithInf(seq), caughtRate(seq)
		lv.FisherMedianRequestsToDetect, lv.FisherDetectRate = medianWithInf(fisher), caughtRate(fisher)
		allSeq, allFisher = append(allSeq, seq...), append(allFisher, fisher...)
		rep.Levels = append(rep.Levels, lv)
	}
	rep.MedianRequestsToDetect, rep.DetectRate = medianWithInf(allSeq), caughtRate(allSeq)
	rep.FisherMedianRequestsToDetect, rep.FisherDetectRate = medianWithInf(allFisher), caughtRate(allFisher)
	return rep
}

// simulateCanary runs one canary for cfg.Looks looks (always all of them,
// so that every canary draws the same numbers whatever the tests decide). Each look routes
// canaryPerLook/share requests, each to the canary with probability share,
// each failing with its side's error rate; both methods judge the same
// counts with the compare check's rule (enough samples on both sides, p <
// significance, canary error rate not below the baseline's).
func simulateCanary(rng *rand.Rand, cfg SimConfig, canaryPerLook int, canaryRate, baseRate float64) simOutcome {
	out := simOutcome{seq: math.Inf(1), fisher: math.Inf(1)}
	perLook := int(math.Round(float64(canaryPerLook) / cfg.CanaryShare))
	var test ErrorTest
	var c, b Counts
	for range cfg.Looks {
		for range perLook {
			if rng.Float64() < cfg.CanaryShare {
				c.Requests++
				if rng.Float64() < canaryRate {
					c.Errors++
				}
			} else {
				b.Requests++
				if rng.Float64() < baseRate {
					b.Errors++
				}
			}
		}
		p := test.Look(c, b)
		enough := c.Requests >= cfg.MinSamples && b.Requests >= cfg.MinSamples
		worse := c.Requests > 0 && b.Requests > 0 &&
			float64(c.Errors)/float64(c.Requests) >= float64(b.Errors)/float64(b.Requests)
		if !enough || !worse {
			continue
		}
		if math.IsInf(out.seq, 1) && p < cfg.Significance {
			out.seq = float64(c.Requests)
		}
		if math.IsInf(out.fisher, 1) && FisherGreater(c.Errors, c.Requests, b.Errors, b.Requests) < cfg.Significance {
			out.fisher = float64(c.Requests)
		}
	}
	return out
}

// medianWithInf is the median of xs where +Inf (never caught) sorts last;
// -1 when the median is +Inf.
func medianWithInf(xs []float64) float64 {
	if len(xs) == 0 {
		return -1
	}
	m := Median(xs)
	if math.IsInf(m, 1) || math.IsNaN(m) {
		return -1
	}
	return m
}

func caughtRate(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	n := 0
	for _, x := range xs {
		if !math.IsInf(x, 1) {
			n++
		}
	}
	return float64(n) / float64(len(xs))
}
