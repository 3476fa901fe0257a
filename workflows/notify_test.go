package workflows

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/runbook"
)

func TestNotifiesPhaseChanges(t *testing.T) {
	h := newHarness(t)
	rb := testRunbook()
	rb.Notify = &runbook.Notify{Webhook: "slack", Phases: []string{"rolling-back", "rolled-back", "aborted"}}
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	r := h.run(rb)
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	var got []string
	for _, n := range h.notified {
		got = append(got, n.Phase)
		assert.Equal(t, "slack", n.Webhook)
		assert.Equal(t, "pay", n.Service)
		assert.Equal(t, "v2", n.Version)
	}
	assert.Equal(t, []string{"rolling-back", "rolled-back"}, got, "only the listed phases, in order")
	assert.Contains(t, h.notified[1].Reason, "check health failed")
}

func TestNoNotifyNoActivity(t *testing.T) {
	h := newHarness(t)
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	h.run(testRunbook())
	assert.Empty(t, h.notified)
}

// A slow webhook answer for "rolling-back" does not let "rolled-back"
// overtake it: notifications are delivered one at a time, in order.
func TestNotificationsKeepTheirOrder(t *testing.T) {
	h := newHarness(t)
	rb := testRunbook()
	rb.Notify = &runbook.Notify{Webhook: "slack"}
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	h.notifyDelay = func(in activities.NotifyInput) time.Duration {
		if in.Phase == "rolling-back" {
			return 200 * time.Millisecond
		}
		return 0
	}
	r := h.run(rb)
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	var got []string
	for _, n := range h.notified {
		got = append(got, n.Phase)
	}
	assert.Equal(t, []string{"deploying", "verifying", "rolling-back", "rolled-back"}, got)
}

// pages are the paging activities the harness saw, as "action phase".
func pages(h *harness) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, n := range h.notified {
		if n.Page != "" {
			out = append(out, n.PageAction+" "+n.Phase)
		}
	}
	return out
}

func chats(h *harness) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, n := range h.notified {
		if n.Page == "" {
			out = append(out, n.Phase)
		}
	}
	return out
}

func pagingHarness(t *testing.T) (*harness, runbook.Runbook) {
	h := newHarness(t)
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: WorkflowID("pay")})
	rb := testRunbook()
	rb.Notify = &runbook.Notify{Webhook: "slack", Page: "oncall"}
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	return h, rb
}

// A compensation conflict leaves the rollback stuck: the on-call is paged.
// The operator's retry goes through and the rollback completes: the page
// is resolved, with the same dedup key (the workflow ID).
func TestPageTriggerThenRetryResolves(t *testing.T) {
	h, rb := pagingHarness(t)
	n := 0
	h.restoreKV = func(activities.KVRestoreInput) (activities.RestoreResult, error) {
		n++
		if n == 1 {
			return activities.RestoreResult{}, conflict("key app/flag changed since our write")
		}
		return activities.RestoreResult{}, nil
	}
	h.at(60*time.Second, func() {
		require.Equal(t, PhaseRollbackStuck, h.query().Phase)
		assert.Equal(t, []string{"trigger rollback-stuck"}, pages(h), "paged while stuck, before the retry")
		h.signal(SignalRetry, OperatorSignal{By: "carol"})
	})
	r := h.run(rb)
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Equal(t, []string{"trigger rollback-stuck", "resolve rolled-back"}, pages(h))
	assert.Equal(t, []string{"deploying", "verifying", "rolling-back", "rollback-stuck", "rolling-back", "rolled-back"}, chats(h),
		"the chat notifications are unchanged by paging")
	for _, p := range h.notified {
		if p.Page == "" {
			assert.Empty(t, p.WorkflowID, "chat notifications carry no page fields")
			continue
		}
		assert.Equal(t, "oncall", p.Page)
		assert.Empty(t, p.Webhook, "a page goes to the paging service only")
		assert.Equal(t, "rollbook-pay", p.WorkflowID, "dedup key = workflow ID")
		assert.Equal(t, "pay", p.Service)
		assert.Equal(t, "v2", p.Version)
	}
	trigger := h.notified[slices.IndexFunc(h.notified, func(n activities.NotifyInput) bool { return n.PageAction == "trigger" })]
	assert.Equal(t, "flags", trigger.Step)
	assert.Contains(t, trigger.Reason, "app/flag changed")
}

// Skipping the stuck compensation ends in rollback-failed: paged again
// (same incident), never resolved.
func TestPageRollbackFailedIsNotResolved(t *testing.T) {
	h, rb := pagingHarness(t)
	h.restoreKV = func(activities.KVRestoreInput) (activities.RestoreResult, error) {
		return activities.RestoreResult{}, conflict("key app/flag changed by someone else")
	}
	h.at(60*time.Second, func() { h.signal(SignalSkip, OperatorSignal{Step: "flags", By: "dave"}) })
	r := h.run(rb)
	assert.Equal(t, OutcomeRollbackFailed, r.Outcome)
	assert.Equal(t, []string{"trigger rollback-stuck", "trigger rollback-failed"}, pages(h))
}

func TestPageFailedAfterCommit(t *testing.T) {
	h, rb := pagingHarness(t)
	rb.Steps[1].Irreversible = true
	r := h.run(rb)
	assert.Equal(t, OutcomeFailedAfterCommit, r.Outcome)
	assert.Equal(t, []string{"trigger failed-after-commit"}, pages(h))
}

// Ordinary outcomes (a rollback that completes on its own, a success)
// page nobody.
func TestNoPageForOrdinaryOutcomes(t *testing.T) {
	h, rb := pagingHarness(t)
	r := h.run(rb)
	assert.Equal(t, OutcomeRolledBack, r.Outcome)
	assert.Empty(t, pages(h))

	h2, rb2 := pagingHarness(t)
	h2.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return healthy(in), nil }
	h2.at(45*time.Second, func() { h2.signal(SignalApprove, ApproveSignal{Step: "approval"}) })
	r = h2.run(rb2)
	assert.Equal(t, OutcomeSucceeded, r.Outcome)
	assert.Empty(t, pages(h2))
	assert.NotEmpty(t, chats(h2))
}

// notify.phases filters the chat only; a page-only runbook pages too.
func TestPagesIgnorePhasesAndNeedNoWebhook(t *testing.T) {
	h, rb := pagingHarness(t)
	rb.Steps[1].Irreversible = true
	rb.Notify.Phases = []string{"succeeded"}
	h.run(rb)
	assert.Equal(t, []string{"trigger failed-after-commit"}, pages(h))
	assert.Empty(t, chats(h))

	h2, rb2 := pagingHarness(t)
	rb2.Steps[1].Irreversible = true
	rb2.Notify = &runbook.Notify{Page: "oncall"}
	h2.run(rb2)
	assert.Equal(t, []string{"trigger failed-after-commit"}, pages(h2))
	assert.Empty(t, chats(h2))
}

// A paging service that is down: every attempt of the trigger fails, the
// deployment still ends as it would have (the failure is logged), and the
// chat notifications after it still go out.
func TestPageFailureDoesNotFailTheDeployment(t *testing.T) {
	h, rb := pagingHarness(t)
	rb.Steps[1].Irreversible = true
	h.notifyErr = func(in activities.NotifyInput) error {
		if in.Page != "" {
			return errors.New("notify: paging service \"oncall\": sending the trigger failed: connection refused")
		}
		return nil
	}
	r := h.run(rb)
	assert.Equal(t, OutcomeFailedAfterCommit, r.Outcome)
	assert.Equal(t, slices.Repeat([]string{"trigger failed-after-commit"}, int(pagePolicy.attempts)), pages(h), "retried, then given up")
	assert.Contains(t, chats(h), "failed-after-commit")
	h.mu.Lock()
	defer h.mu.Unlock()
	last := h.notified[len(h.notified)-1]
	assert.Equal(t, "failed-after-commit", last.Phase)
	assert.Empty(t, last.Page, "the outcome's chat message went out after the page gave up")
}
