package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/rollbook/rollbook/workflows"
)

func (a *app) statusCommand() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "status SERVICE",
		Short: "Show the latest deployment of a service: phase, steps, checks, compensations",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, copts, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			id := workflows.WorkflowID(args[0])
			desc, err := c.DescribeWorkflowExecution(ctx, id, "")
			if err != nil {
				return a.notFound(err, args[0])
			}
			info := desc.GetWorkflowExecutionInfo()
			runID := info.GetExecution().GetRunId()
			link := a.webLink(copts.Namespace, id, runID)
			if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				st, err := queryStatus(qctx, c, id, runID)
				if err != nil {
					return exitf(ExitUnreachable, "deployment %s is running but its status query got no answer (is a rollbook worker polling task queue %q?): %v", id, a.taskQueue, err)
				}
				if jsonOut {
					a.jsonLine(map[string]any{"running": true, "webUI": link, "status": st})
					return nil
				}
				printStatus(a, st, link)
				return nil
			}
			var r workflows.Result
			if err := c.GetWorkflow(ctx, id, runID).Get(ctx, &r); err != nil {
				if jsonOut {
					a.jsonLine(map[string]any{"running": false, "webUI": link, "status": info.GetStatus().String(), "error": err.Error()})
					return nil
				}
				fmt.Fprintf(a.out, "%s: last deployment ended %s: %v\nWeb UI: %s\n", args[0], info.GetStatus(), err, link)
				return nil
			}
			if jsonOut {
				a.jsonLine(map[string]any{"running": false, "webUI": link, "result": r})
				return nil
			}
			fmt.Fprintf(a.out, "%s %s: %s (ended %s)\nWeb UI: %s\n", r.Service, r.Version, r.Outcome, r.EndedAt.Format(time.RFC3339), link)
			if r.Reason != "" {
				fmt.Fprintf(a.out, "reason: %s\n", r.Reason)
			}
			for _, s := range r.Steps {
				fmt.Fprintf(a.out, "  %-24s %-12s %s\n", s.Name, s.State, s.Detail)
			}
			printProblems(a, r.Problems)
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func printStatus(a *app, st workflows.Status, link string) {
	fmt.Fprintf(a.out, "%s %s: %s", st.Service, st.Version, st.Phase)
	if st.CurrentStep != "" {
		fmt.Fprintf(a.out, " (step %s)", st.CurrentStep)
	}
	fmt.Fprintf(a.out, "\nWeb UI: %s\n", link)
	if st.WaitingFor != "" {
		fmt.Fprintf(a.out, "waiting for: %s\n", st.WaitingFor)
	}
	if st.Reason != "" {
		fmt.Fprintf(a.out, "reason: %s\n", st.Reason)
	}
	for _, s := range st.Steps {
		fmt.Fprintf(a.out, "  %-24s %-12s %s\n", s.Name, s.State, s.Detail)
	}
	if len(st.Compensations) > 0 {
		fmt.Fprintln(a.out, "compensations (undone last-in first-out):")
		for i := len(st.Compensations) - 1; i >= 0; i-- {
			c := st.Compensations[i]
			fmt.Fprintf(a.out, "  %-24s %-16s %s %s\n", c.Step, c.State, c.Detail, c.Error)
		}
	}
	for _, ig := range st.Ignored {
		fmt.Fprintf(a.out, "ignored signal %s at %s: %s\n", ig.Signal, ig.At.Format(time.RFC3339), ig.Why)
	}
	printProblems(a, st.Problems)
}

// printProblems lists what the preflight refused a deployment for.
func printProblems(a *app, problems []string) {
	if len(problems) == 0 {
		return
	}
	fmt.Fprintln(a.out, "refused by the preflight, nothing was changed:")
	for _, p := range problems {
		fmt.Fprintf(a.out, "  - %s\n", p)
	}
}

// notFound turns "no such workflow" into a clear message and exit 1.
func (a *app) notFound(err error, service string) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return exitf(ExitBadInput, "no deployment of service %s found (workflow %s)", service, workflows.WorkflowID(service))
	}
	if isUnavailable(err) {
		return exitf(ExitUnreachable, "asking Temporal about %s: %v", service, err)
	}
	return exitf(ExitBadInput, "looking up the deployment of %s: %v", service, err)
}

// signalCommands builds abort, approve, pause, resume, retry and skip.
func (a *app) signalCommands() []*cobra.Command {
	type spec struct {
		name, short string
		payload     func(cmd *cobra.Command) any
		flags       func(cmd *cobra.Command)
	}
	var reason, step, by string
	who := func() string {
		if by != "" {
			return by
		}
		return origin().User
	}
	specs := []spec{
		{"abort", "Abort a deployment: roll back everything it changed",
			func(*cobra.Command) any { return workflows.AbortSignal{Reason: reason, By: who()} },
			func(c *cobra.Command) {
				c.Flags().StringVar(&reason, "reason", "", "why (shown in the Web UI and the result; required)")
			}},
		{"approve", "Approve a pause step that waits for approval",
			func(*cobra.Command) any { return workflows.ApproveSignal{Step: step, By: who()} },
			func(c *cobra.Command) {
				c.Flags().StringVar(&step, "step", "", "the step to approve (default: whichever waits)")
			}},
		{"pause", "Pause before the next step", func(*cobra.Command) any { return workflows.OperatorSignal{By: who()} }, nil},
		{"resume", "Resume a paused deployment", func(*cobra.Command) any { return workflows.OperatorSignal{By: who()} }, nil},
		{"retry", "Retry the stuck compensation", func(*cobra.Command) any { return workflows.OperatorSignal{By: who()} }, nil},
		{"skip", "Skip the stuck compensation (the outcome becomes rollback-failed)",
			func(*cobra.Command) any { return workflows.OperatorSignal{Step: step, By: who(), Reason: reason} },
			func(c *cobra.Command) {
				c.Flags().StringVar(&step, "step", "", "the stuck step (a guard against skipping the wrong one)")
				c.Flags().StringVar(&reason, "reason", "", "why")
			}},
	}
	var cmds []*cobra.Command
	for _, s := range specs {
		s := s
		cmd := &cobra.Command{
			Use:   s.name + " SERVICE",
			Short: s.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if s.name == "abort" && reason == "" {
					return exitf(ExitBadInput, "abort needs --reason (it is recorded in the deployment's result)")
				}
				return a.sendSignal(cmd.Context(), args[0], s.name, s.payload(cmd))
			},
		}
		cmd.Flags().StringVar(&by, "by", "", "who is sending this (default: the current user)")
		if s.flags != nil {
			s.flags(cmd)
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

func (a *app) sendSignal(ctx context.Context, service, name string, payload any) error {
	c, _, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	id := workflows.WorkflowID(service)
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return a.notFound(err, service)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return exitf(ExitBadInput, "the last deployment of %s already finished (%s); %s changes nothing", service, finishedOutcome(ctx, c, id, info.GetExecution().GetRunId(), info.GetStatus()), name)
	}
	runID := info.GetExecution().GetRunId()
	// Remember which signals were already ignored, so that only this one's
	// verdict counts afterwards.
	seen := map[string]bool{}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	before, qerr := queryStatus(qctx, c, id, runID)
	cancel()
	if qerr == nil {
		for _, ig := range before.Ignored {
			seen[ignoredKey(ig)] = true
		}
	}
	if err := c.SignalWorkflow(ctx, id, runID, name, payload); err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return exitf(ExitBadInput, "the deployment of %s finished before the %s signal arrived; nothing changed", service, name)
		}
		return exitf(ExitUnreachable, "sending %s to %s: %v", name, id, err)
	}
	fmt.Fprintf(a.out, "sent %s to the deployment of %s (run %s)\n", name, service, runID)
	if qerr != nil {
		return nil // no worker answered the query: nothing more to tell
	}
	// Show whether the workflow accepted it: a signal that makes no sense in
	// the current phase is recorded as ignored.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := queryStatus(qctx, c, id, runID)
		cancel()
		if err != nil {
			return nil
		}
		for _, ig := range st.Ignored {
			if ig.Signal == name && !seen[ignoredKey(ig)] {
				return exitf(ExitBadInput, "the deployment ignored %s: %s", name, ig.Why)
			}
		}
		if st.Phase != before.Phase || st.Paused != before.Paused || st.WaitingFor != before.WaitingFor || len(st.Ignored) != len(before.Ignored) {
			fmt.Fprintf(a.out, "phase: %s\n", st.Phase)
			return nil
		}
	}
	fmt.Fprintf(a.out, "phase: %s\n", before.Phase)
	return nil
}

func ignoredKey(ig workflows.IgnoredSignal) string {
	return ig.Signal + "\x00" + ig.At.String() + "\x00" + ig.Why
}

func finishedOutcome(ctx context.Context, c client.Client, id, runID string, status enumspb.WorkflowExecutionStatus) string {
	var r workflows.Result
	gctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.GetWorkflow(gctx, id, runID).Get(gctx, &r); err == nil && r.Outcome != "" {
		return "outcome " + string(r.Outcome)
	}
	return status.String()
}
