package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/internal/clip"
)

// notifyWait bounds how long a finished deployment waits for its last
// notifications: a slow chat server must not hold the outcome back.
const notifyWait = 30 * time.Second

// notify posts a phase change to the runbook's webhook, without waiting:
// the abort path must not wait on a chat server. Notifications go out one
// at a time, in the order of the phase changes: sent side by side, a
// retried "rolling-back" could reach the channel after "rolled-back".
func (d *deployment) notify(phase Phase) {
	n := d.rb.Notify
	if n == nil || (len(n.Phases) > 0 && !slices.Contains(n.Phases, string(phase))) {
		return
	}
	in := contract.NotifyInput{
		StepRef: d.ref(d.status.CurrentStep),
		Webhook: n.Webhook,
		Service: d.rb.Service,
		Version: d.in.Version,
		Phase:   string(phase),
		Step:    d.status.CurrentStep,
		Reason:  clip.Ellipsis(d.status.Reason, 500),
		// What the rollback kept or archived so far: the outcome's
		// notification names where the callers' data is.
		Preserved: clip.Ellipsis(d.preservedNote(), 1000),
		At:        workflow.Now(d.nctx),
	}
	if !d.notifyVersioned {
		// Runs started before notifications were ordered sent each one at
		// once; they keep doing so when replayed.
		d.notifyVersioned = true
		d.notifyOrdered = workflow.GetVersion(d.nctx, "ordered-notifications", workflow.DefaultVersion, 1) >= 1
	}
	if !d.notifyOrdered {
		d.notes = append(d.notes, workflow.ExecuteActivity(d.notifyOptions(string(phase)), contract.ActivityNotify, in))
		return
	}
	d.noteQueue = append(d.noteQueue, in)
	if !d.noteSender {
		d.noteSender = true
		workflow.Go(d.nctx, d.sendNotifications)
	}
}

func (d *deployment) notifyOptions(phase string) workflow.Context {
	return workflow.WithActivityOptions(d.nctx, notifyPolicy.options("notify "+d.rb.Notify.Webhook+": "+phase))
}

// sendNotifications sends the queued notifications in order, each after
// the previous one has been delivered or has failed for good; it runs in
// the disconnected context, so neither an abort nor a rollback stops it.
func (d *deployment) sendNotifications(ctx workflow.Context) {
	for {
		if err := workflow.Await(ctx, func() bool { return len(d.noteQueue) > 0 }); err != nil {
			return
		}
		in := d.noteQueue[0]
		if err := workflow.ExecuteActivity(d.notifyOptions(in.Phase), contract.ActivityNotify, in).Get(ctx, nil); err != nil {
			d.log.Warn("Notification failed", "phase", in.Phase, "error", err)
		}
		d.noteQueue = d.noteQueue[1:]
	}
}

// waitForNotifications lets the last notifications (the outcome) go out
// before the workflow completes; a failed notification is logged, never
// fatal.
func (d *deployment) waitForNotifications(ctx workflow.Context) {
	if d.notifyOrdered {
		if ok, _ := workflow.AwaitWithTimeout(d.nctx, notifyWait, func() bool { return len(d.noteQueue) == 0 }); !ok {
			d.log.Warn("Notifications still pending at the end of the deployment", "pending", len(d.noteQueue))
		}
		return
	}
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
