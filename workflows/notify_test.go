package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

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
