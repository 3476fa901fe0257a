package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/workflows"
)

// compareRunbook splits traffic 50/50 and judges the canary against the
// stable servers statistically for up to 40 s.
func (f *fixture) compareRunbook() string {
	y := fmt.Sprintf(`apiVersion: rollbook/v1
service: %s
routes:
  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}
steps:
  - name: canary-50
    traffic: {route: api, weights: {stable: 50, canary: 50}}
  - name: judge
    verify:
      duration: 40s
      interval: 2s
      checks:
        - name: canary-vs-stable
          compare: {route: api, metrics: [errors], significance: 0.05, minSamples: 20}
`, f.service)
	p := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(f.t, os.WriteFile(p, []byte(y), 0o644))
	return p
}

// A canary failing 2 % of requests against a stable pool failing none, at
// about 20 requests/s, is failed by the compare check within 30 s.
func TestE2ECompareFailsTwoPercentCanary(t *testing.T) {
	f := newFixture(t, "e2e-compare-bad")
	setCanaryBad(t, 0.02)
	defer setCanaryBad(t, 0)
	l := startLoad(t, 20)
	defer l.Stop()
	out, code := cli(t, "deploy", f.compareRunbook(), "--version", "v2", "--wait", "--json")
	require.Equal(t, 2, code, out)
	assert.Contains(t, out, "sequential p=")
	// The verdict's time, from the workflow's own step timings (the
	// wall clock of the whole CLI run also counts start-up and rollback).
	var res struct {
		Event  string           `json:"event"`
		Result workflows.Result `json:"result"`
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"event":"result"`) {
			require.NoError(t, json.Unmarshal([]byte(line), &res))
		}
	}
	require.Equal(t, "result", res.Event, "a JSON result line")
	judge := res.Result.Steps[1]
	require.Equal(t, "judge", judge.Name)
	took := judge.EndedAt.Sub(judge.StartedAt)
	assert.LessOrEqual(t, took, 30*time.Second, "the compare check failed the canary after %s", took)
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
}

func TestE2EComparePassesHealthyCanary(t *testing.T) {
	f := newFixture(t, "e2e-compare-good")
	l := startLoad(t, 20)
	defer l.Stop()
	out, code := cli(t, "deploy", f.compareRunbook(), "--version", "v2", "--wait")
	require.Equal(t, 0, code, out)
	assert.Equal(t, map[string]int{"stable": 50, "canary": 50}, weights(t))
}
