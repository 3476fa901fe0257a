package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/runbook"
)

// The healthy runs' runbook is the example's, cut and shortened: it must be
// a valid runbook, keep the example's canary checks and analysis, make every
// router check continuous, and leave out what the stack's canary does not
// need (schema, flags, releases, promotion).
func TestHealthyRunbookFromTheExample(t *testing.T) {
	root, err := devstack.FindModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	y, info, err := healthyRunbook(root, "bench-healthy", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bench-healthy.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	rb, err := runbook.Load(p)
	if err != nil {
		t.Fatalf("derived runbook is invalid: %v\n%s", err, y)
	}
	var names []string
	verifies := 0
	for _, st := range rb.Steps {
		names = append(names, st.Name)
		if st.Verify == nil {
			continue
		}
		verifies++
		if st.Verify.Duration.D() != 2*time.Second || st.Verify.Interval.D() > time.Second {
			t.Errorf("step %s: duration %s interval %s, want 2s and ≤ 1s", st.Name, st.Verify.Duration.D(), st.Verify.Interval.D())
		}
		for _, c := range st.Verify.Checks {
			if c.Router != nil && !c.Continuous {
				t.Errorf("step %s: router check %s is not continuous", st.Name, c.Name)
			}
		}
	}
	if want := "canary-10 verify-10 canary-50 verify-50 canary-100 verify-100"; strings.Join(names, " ") != want {
		t.Errorf("steps %v, want %s", names, want)
	}
	if verifies != 3 || rb.Analysis == nil || len(rb.Analysis.Checks) == 0 || !rb.Analysis.Checks[0].Continuous {
		t.Errorf("verify steps %d, analysis %+v: want 3 and the example's continuous analysis", verifies, rb.Analysis)
	}
	if rb.Service != "bench-healthy" || len(info.Checks) < 4 {
		t.Errorf("service %s, checks %v", rb.Service, info.Checks)
	}
}

// The seed's check_health judges the requests since the previous reading.
func TestSeedLoopJudgesTheDelta(t *testing.T) {
	l := seedLoop{maxErrorRate: 0.05, minRequests: 5}
	for _, c := range []struct {
		prev, cur canaryCounts
		healthy   bool
	}{
		{canaryCounts{100, 50}, canaryCounts{150, 50}, true},   // old errors only
		{canaryCounts{100, 0}, canaryCounts{150, 3}, false},    // 3 of 50 > 5 %
		{canaryCounts{100, 0}, canaryCounts{140, 2}, true},     // 2 of 40 = 5 %
		{canaryCounts{100, 0}, canaryCounts{104, 4}, true},     // too few requests
		{canaryCounts{100, 0}, canaryCounts{105, 5}, false},    // minRequests reached
		{canaryCounts{1000, 10}, canaryCounts{1000, 10}, true}, // no traffic
	} {
		if got := l.healthy(c.prev, c.cur); got != c.healthy {
			t.Errorf("%+v → %+v: healthy %v, want %v", c.prev, c.cur, got, c.healthy)
		}
	}
}
