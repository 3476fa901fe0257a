package workflows

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/runbook"
)

// longRunbook verifies for ten minutes every 10 s, with background analysis.
func longRunbook() runbook.Runbook {
	rb := testRunbook()
	rb.Steps = append(rb.Steps[:3:3], runbook.Step{Name: "soak", Verify: &runbook.VerifyStep{
		Duration: runbook.Duration(10 * time.Minute), Interval: runbook.Duration(10 * time.Second),
		Checks: []runbook.Check{{Name: "health", FailureLimit: 2, HTTP: &runbook.HTTPCheck{URL: "http://x/healthz"}}}}})
	rb.Analysis = &runbook.Analysis{From: "canary-10", Interval: runbook.Duration(30 * time.Second),
		Checks: []runbook.Check{{Name: "a-health", HTTP: &runbook.HTTPCheck{URL: "http://x/healthz"}}}}
	return rb
}

// hop runs one workflow run and returns its result, or the next run's
// input when it continued as new.
func hop(t *testing.T, h *harness, in Input, clock *time.Time) (*Result, *Input) {
	// A new run starts where the previous one's clock stopped, as on a
	// real server.
	if !clock.IsZero() {
		h.env.SetStartTime(*clock)
	}
	h.env.ExecuteWorkflow(Deploy, in)
	*clock = h.env.Now()
	require.True(t, h.env.IsWorkflowCompleted())
	err := h.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if errors.As(err, &can) {
		var next Input
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
		return nil, &next
	}
	require.NoError(t, err)
	var r Result
	require.NoError(t, h.env.GetWorkflowResult(&r))
	return &r, nil
}

// simulateHistory makes every soak round count as 12 history events.
func simulateHistory(t *testing.T) *int {
	oldAfter, oldLen := continueAsNewAfter, historyLength
	continueAsNewAfter = 100
	rounds := 0
	historyLength = func(workflow.Context) int { return 12 * rounds }
	t.Cleanup(func() { continueAsNewAfter, historyLength = oldAfter, oldLen })
	return &rounds
}

func TestLongVerificationContinuesAsNew(t *testing.T) {
	rounds := simulateHistory(t)

	in := bundleOf(t, longRunbook())
	var clock time.Time
	measures := 0
	var r *Result
	hops := 0
	for r == nil {
		require.Less(t, hops, 40, "too many hops")
		h := newHarness(t)
		h.measure = func(mi activities.MeasureInput) (activities.MeasureResult, error) {
			if mi.Step == "soak" {
				measures++
				*rounds++
			}
			return healthy(mi), nil
		}
		*rounds = 0
		var next *Input
		r, next = hop(t, h, in, &clock)
		if next != nil {
			require.NotNil(t, next.Resume)
			assert.Equal(t, 3, next.Resume.StepIndex)
			assert.Len(t, next.Resume.Comps, 3, "compensations travel with the deployment")
			assert.NotNil(t, next.Resume.Analysis)
			assert.Equal(t, hops+1, next.Resume.Generation)
			in = *next
			hops++
		}
	}
	assert.Equal(t, OutcomeSucceeded, r.Outcome)
	assert.GreaterOrEqual(t, hops, 2, "a ten-minute verification continued as new")
	// Rounds at 0, 10, …, 600 s: 61, each measured once across all hops.
	assert.Equal(t, 61, measures)
}

// A failure after a hop still rolls back everything applied before it.
func TestRollbackAfterContinueAsNew(t *testing.T) {
	rounds := simulateHistory(t)

	in := bundleOf(t, longRunbook())
	var clock time.Time
	total := 0
	var r *Result
	var last *harness
	for hops := 0; r == nil; hops++ {
		require.Less(t, hops, 40)
		h := newHarness(t)
		h.migrateDown = func(in activities.MigrateDownInput) (activities.RestoreResult, error) {
			// The compensation record carries no files; the workflow
			// takes them from the bundle, also after a hop.
			if len(in.Files) != 2 {
				return activities.RestoreResult{}, fmt.Errorf("MigrateDown got %d files, want the bundle's 2", len(in.Files))
			}
			return activities.RestoreResult{}, nil
		}
		h.measure = func(mi activities.MeasureInput) (activities.MeasureResult, error) {
			if mi.Step != "soak" {
				return healthy(mi), nil
			}
			total++
			*rounds++
			if total >= 30 {
				return failing(mi), nil
			}
			return healthy(mi), nil
		}
		*rounds = 0
		var next *Input
		r, next = hop(t, h, in, &clock)
		if next != nil {
			for _, c := range next.Resume.Comps {
				if c.Migrate != nil {
					assert.Empty(t, c.Migrate.Files, "the files travel once, in the bundle")
				}
			}
			in = *next
		}
		last = h
	}
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, "soak", r.FailedStep)
	assert.Contains(t, r.Reason, "3 failed measurements, failureLimit 2", "the tally survives the hops")
	assert.Equal(t, undoAll, last.calls(false), "the last run undoes what the first applied")
}

// A deployment whose next input would pass the payload limit does not
// continue as new (the server would refuse the hop and terminate the
// deployment with its changes in place): it verifies on in one run.
func TestNoContinueAsNewPastThePayloadLimit(t *testing.T) {
	rounds := simulateHistory(t)
	in := bundleOf(t, longRunbook())
	// The limit scaled down with the bundle: a 200 KiB migration against a
	// 100 KiB limit, as a 1 MiB bundle with a large carried state against
	// the real 1.5 MiB.
	old := maxContinueAsNewInput
	maxContinueAsNewInput = 100 << 10
	t.Cleanup(func() { maxContinueAsNewInput = old })
	big := "-- +goose Up\nSELECT 1;\n-- " + strings.Repeat("x", 200<<10) + "\n-- +goose Down\nSELECT 1;\n"
	in.Files = append(in.Files, runbook.File{Path: "m/00003_big.sql", Content: big})
	h, err := in.ContentHash()
	require.NoError(t, err)
	in.Hash = h

	harn := newHarness(t)
	harn.measure = func(mi activities.MeasureInput) (activities.MeasureResult, error) {
		if mi.Step == "soak" {
			*rounds++
		}
		return healthy(mi), nil
	}
	var clock time.Time
	r, next := hop(t, harn, in, &clock)
	require.True(t, next == nil, "no continue-as-new with an input over the limit")
	assert.Equal(t, OutcomeSucceeded, r.Outcome)
	assert.Greater(t, *rounds*12, continueAsNewAfter, "the history passed the continue-as-new length")
}
