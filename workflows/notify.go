package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities"
)

var notifier *activities.Notifier

// notifyWait bounds how long a finished deployment waits for its last
// notifications: a slow chat server must not hold the outcome back.
const notifyWait = 30 * time.Second

// notify posts a phase change to the runbook's webhook, without waiting:
// the abort path must not wait on a chat server.
func (d *deployment) notify(phase string) {
	n := d.rb.Notify
	if n == nil || (len(n.Phases) > 0 && !slices.Contains(n.Phases, phase)) {
		return
	}
	ctx := workflow.WithActivityOptions(d.nctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		Summary:             "notify " + n.Webhook + ": " + phase,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{activities.ErrInvalid},
		},
	})
	d.notes = append(d.notes, workflow.ExecuteActivity(ctx, notifier.Notify, activities.NotifyInput{
		StepRef: d.ref(d.status.CurrentStep),
		Webhook: n.Webhook,
		Service: d.rb.Service,
		Version: d.in.Version,
		Phase:   phase,
		Step:    d.status.CurrentStep,
		Reason:  truncate(d.status.Reason, 500),
		At:      workflow.Now(ctx),
	}))
}

// waitForNotifications lets the last notifications (the outcome) go out
// before the workflow completes; a failed notification is logged, never
// fatal.
func (d *deployment) waitForNotifications(ctx workflow.Context) {
	if len(d.notes) == 0 {
		return
	}
	ok, _ := workflow.AwaitWithTimeout(d.nctx, notifyWait, func() bool {
		for _, f := range d.notes {
			if !f.IsReady() {
				return false
			}
		}
		return true
	})
	if !ok {
		d.log.Warn("Notifications still pending at the end of the deployment")
	}
	for _, f := range d.notes {
		if f.IsReady() {
			if err := f.Get(d.nctx, nil); err != nil {
				d.log.Warn("Notification failed", "error", err)
			}
		}
	}
}
