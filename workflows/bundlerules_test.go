package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/runbook"
)

// A deployment continued as new under a worker whose rules refuse the
// bundle it started with (here: a check that POSTs, accepted by an older
// worker) must not stop and strand what earlier runs applied: it rolls
// them back. A fresh deployment with the same bundle is refused outright.
func TestContinuedRunWithABundleTodaysRulesRefuseRollsBack(t *testing.T) {
	rounds := simulateHistory(t)
	rb := releaseRunbook()
	rb.Steps[3].Verify.Duration = runbook.Duration(10 * time.Minute)
	b := runbook.Bundle{Runbook: rb, Version: "v2", Source: "test.yaml", StartedBy: runbook.Origin{User: "tester"}}
	hash, err := b.ContentHash()
	require.NoError(t, err)
	b.Hash = hash

	h := newHarness(t)
	withReleases(h, map[string]string{"canary": "v1"})
	h.measure = func(mi activities.MeasureInput) (activities.MeasureResult, error) {
		*rounds++
		return healthy(mi), nil
	}
	var clock time.Time
	_, next := hop(t, h, Input{Bundle: b}, &clock)
	require.NotNil(t, next)

	// What an older worker accepted: the same deployment, its check POSTing.
	old := copyInput(t, *next)
	old.Runbook.Steps[3].Verify.Checks[0].HTTP.Method = "POST"
	old.Hash, err = old.Bundle.ContentHash()
	require.NoError(t, err)
	require.Error(t, old.Bundle.Check(), "today's rules refuse the bundle")

	h = newHarness(t)
	withReleases(h, map[string]string{"canary": "v2"})
	h.env.ExecuteWorkflow(Deploy, old)
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var r Result
	require.NoError(t, h.env.GetWorkflowResult(&r))
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Contains(t, r.Reason, "rules refuse the bundle this deployment started with")
	assert.Equal(t, []string{"RestoreWeights:canary-10", "RestoreKV:flags", "RestoreRelease:release-canary"}, h.calls(false),
		"no step or check runs; every carried compensation does, in reverse order")

	// A fresh deployment of that bundle changes nothing.
	fresh := Input{Bundle: old.Bundle}
	h = newHarness(t)
	withReleases(h, map[string]string{"canary": "v1"})
	h.env.ExecuteWorkflow(Deploy, fresh)
	require.True(t, h.env.IsWorkflowCompleted())
	err = h.env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid bundle")
	assert.Empty(t, h.log)
}
