package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/internal/clip"
	"github.com/rollbook/rollbook/runbook"
)

// notifyWait bounds how long a finished deployment waits for its last
// notifications: a slow chat server must not hold the outcome back.
const notifyWait = 30 * time.Second

// pagingChange is the workflow.GetVersion change ID of paging (notify.page):
// asked only when a page is due, so histories without one are unchanged.
const pagingChange = "paging"

// pageWait bounds how long a finished deployment waits for a page still
// being sent: longer than notifyWait, as a lost page leaves a deployment
// that needs a human with nobody told.
const pageWait = 2 * time.Minute

// pagePolicy retries a page for about a minute: PagerDuty deduplicates by
// the dedup key, so a repeated trigger or resolve changes nothing.
var pagePolicy = activityPolicy{timeout: 15 * time.Second, initial: time.Second, backoff: 2, maxInterval: 15 * time.Second,
	attempts: 8, nonRetryable: []string{contract.ErrInvalid}}

// notify posts a phase change to the runbook's webhook, and pages for the
// phases that need a human, without waiting: the abort path must not wait
// on a chat server. Notifications go out one at a time, in the order of
// the phase changes: sent side by side, a retried "rolling-back" could
// reach the channel after "rolled-back".
func (d *deployment) notify(phase Phase) {
	n := d.rb.Notify
	if n == nil {
		return
	}
	in := contract.NotifyInput{
		StepRef: d.ref(d.status.CurrentStep),
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
	// The page first: of the two, it is the one a human waits for.
	if n.Page != "" {
		d.page(phase, in)
	}
	if n.Webhook != "" && (len(n.Phases) == 0 || slices.Contains(n.Phases, string(phase))) {
		chat := in
		chat.Webhook = n.Webhook
		d.enqueueNote(chat)
	}
}

// enqueueNote sends in after the notifications before it.
func (d *deployment) enqueueNote(in contract.NotifyInput) {
	if !d.notifyVersioned {
		// Runs started before notifications were ordered sent each one at
		// once; they keep doing so when replayed.
		d.notifyVersioned = true
		d.notifyOrdered = workflow.GetVersion(d.nctx, "ordered-notifications", workflow.DefaultVersion, 1) >= 1
	}
	if !d.notifyOrdered {
		d.notes = append(d.notes, workflow.ExecuteActivity(d.noteOptions(in), contract.ActivityNotify, in))
		return
	}
	d.noteQueue = append(d.noteQueue, in)
	if !d.noteSender {
		d.noteSender = true
		workflow.Go(d.nctx, d.sendNotifications)
	}
}

// page triggers the runbook's paging service when the deployment needs a
// human (rollback-stuck, failed-after-commit, rollback-failed), and
// resolves it when a deployment that paged ends without needing one: a
// retried compensation went through and the rollback (or the deployment)
// completed. The workflow ID is the dedup key, so every trigger of one
// deployment and its resolve are one incident.
func (d *deployment) page(phase Phase, in contract.NotifyInput) {
	var action string
	switch {
	case slices.Contains(runbook.PagePhases, string(phase)):
		action = contract.PageTrigger
	case d.paged && (phase == OutcomeRolledBack || phase == OutcomeAborted || phase == OutcomeSucceeded):
		action = contract.PageResolve
	default:
		return
	}
	if !d.pagingVersioned {
		d.pagingVersioned = true
		d.pagingOn = workflow.GetVersion(d.nctx, pagingChange, workflow.DefaultVersion, 1) >= 1
	}
	if !d.pagingOn {
		return
	}
	d.paged = action == contract.PageTrigger
	in.Page, in.PageAction = d.rb.Notify.Page, action
	in.WorkflowID = workflow.GetInfo(d.nctx).WorkflowExecution.ID
	d.enqueueNote(in)
}

// noteOptions are the activity options of one notification or page.
func (d *deployment) noteOptions(in contract.NotifyInput) workflow.Context {
	if in.Page != "" {
		return workflow.WithActivityOptions(d.nctx, pagePolicy.options("page "+in.Page+": "+in.PageAction+" "+in.Phase))
	}
	return workflow.WithActivityOptions(d.nctx, notifyPolicy.options("notify "+in.Webhook+": "+in.Phase))
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
		if err := workflow.ExecuteActivity(d.noteOptions(in), contract.ActivityNotify, in).Get(ctx, nil); err != nil {
			d.log.Warn("Notification failed", "phase", in.Phase, "page", in.Page, "error", err)
		}
		d.noteQueue = d.noteQueue[1:]
	}
}

// waitForNotifications lets the last notifications (the outcome) go out
// before the workflow completes; a failed notification is logged, never
// fatal.
func (d *deployment) waitForNotifications(ctx workflow.Context) {
	if d.notifyOrdered {
		wait := notifyWait
		if d.pagingOn && slices.ContainsFunc(d.noteQueue, func(in contract.NotifyInput) bool { return in.Page != "" }) {
			wait = pageWait
		}
		if ok, _ := workflow.AwaitWithTimeout(d.nctx, wait, func() bool { return len(d.noteQueue) == 0 }); !ok {
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
