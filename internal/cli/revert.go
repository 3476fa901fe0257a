package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

func (a *app) revertCommand() *cobra.Command {
	var f deployFlags
	var reason string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "revert SERVICE",
		Short: "Undo the last succeeded deployment of a service, with the same conflict checks as a rollback",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.revert(cmd.Context(), args[0], reason, dryRun, f)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the result)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be undone and stop")
	cmd.Flags().BoolVar(&f.wait, "wait", false, "wait for the outcome and exit with its code")
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print JSON lines")
	return cmd
}

// lastSucceeded finds the most recent succeeded Deploy run of a service and
// its input bundle. A Revert that completed after it means it is already
// undone.
func lastSucceeded(ctx context.Context, c client.Client, service string) (string, workflows.Result, *runbook.Bundle, error) {
	id := workflows.WorkflowID(service)
	query := fmt.Sprintf("WorkflowId = '%s' AND ExecutionStatus = 'Completed'", id)
	var runs []*workflowpb.WorkflowExecutionInfo
	var token []byte
	for page := 0; page < 10; page++ {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 100, NextPageToken: token})
		if err != nil {
			return "", workflows.Result{}, nil, err
		}
		runs = append(runs, resp.GetExecutions()...)
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].GetCloseTime().AsTime().After(runs[j].GetCloseTime().AsTime()) })
	for _, e := range runs {
		runID := e.GetExecution().GetRunId()
		var r workflows.Result
		if err := c.GetWorkflow(ctx, id, runID).Get(ctx, &r); err != nil {
			continue
		}
		if e.GetType().GetName() == workflows.RevertWorkflowType {
			if r.Outcome == workflows.OutcomeReverted {
				return "", workflows.Result{}, nil, fmt.Errorf("%w: the last succeeded deployment was already reverted (revert run %s: %s)", errNoSucceeded, runID, r.Reason)
			}
			continue
		}
		if r.Outcome != workflows.OutcomeSucceeded {
			continue
		}
		b, err := deployInput(ctx, c, id, runID)
		if err != nil {
			return "", workflows.Result{}, nil, err
		}
		return runID, r, b, nil
	}
	return "", workflows.Result{}, nil, errNoSucceeded
}

var errNoSucceeded = errors.New("no succeeded deployment found")

// deployInput reads the bundle a run was started with from its history.
func deployInput(ctx context.Context, c client.Client, id, runID string) (*runbook.Bundle, error) {
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return nil, fmt.Errorf("run %s has no history", runID)
	}
	ev, err := it.Next()
	if err != nil {
		return nil, fmt.Errorf("reading the history of run %s: %w", runID, err)
	}
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil {
		return nil, fmt.Errorf("run %s: first event is not the start", runID)
	}
	var b runbook.Bundle
	if err := converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &b); err != nil {
		return nil, fmt.Errorf("decoding the input of run %s: %w", runID, err)
	}
	return &b, nil
}

func (a *app) revert(ctx context.Context, service, reason string, dryRun bool, f deployFlags) error {
	c, copts, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	runID, res, b, err := lastSucceeded(ctx, c, service)
	if errors.Is(err, errNoSucceeded) {
		return exitf(ExitBadInput, "nothing to revert for %s: %v", service, err)
	}
	if err != nil {
		if isUnavailable(err) {
			return exitf(ExitUnreachable, "looking up deployments of %s: %v", service, err)
		}
		return exitf(ExitBadInput, "looking up deployments of %s: %v", service, err)
	}
	if why := workflows.Revertible(res); why != "" {
		return exitf(ExitBadInput, "refusing to revert %s %s (run %s): %s", service, res.Version, runID, why)
	}
	fmt.Fprintf(a.out, "Reverting %s %s (run %s, finished %s). Undo, in this order:\n", service, res.Version, runID, res.EndedAt.Format("2006-01-02 15:04:05Z07:00"))
	for i := len(res.Compensations) - 1; i >= 0; i-- {
		comp := res.Compensations[i]
		if comp.State != workflows.CompPending {
			continue
		}
		fmt.Fprintf(a.out, "  - %s (%s): %s\n", comp.Step, comp.Kind, describeUndo(comp))
	}
	if dryRun {
		return nil
	}
	in := workflows.RevertInput{Service: service, Version: res.Version, RevertedRunID: runID, By: origin().User, Reason: reason,
		Rollback: b.Runbook.Rollback, Deployment: res, Files: b.Files}
	opts := client.StartWorkflowOptions{
		ID:                                       workflows.WorkflowID(service),
		TaskQueue:                                a.taskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            fmt.Sprintf("revert %s %s", service, res.Version),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, workflows.RevertWorkflowType, in)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &already) {
		return exitf(ExitBusy, "another deployment of %s is running (run %s); nothing was reverted", service, already.RunId)
	}
	if err != nil {
		return exitf(ExitUnreachable, "starting the revert: %v", err)
	}
	link := a.webLink(copts.Namespace, run.GetID(), run.GetRunID())
	fmt.Fprintf(a.out, "Web UI: %s\nstarted revert of %s (run %s)\n", link, service, run.GetRunID())
	if !f.wait {
		return nil
	}
	return a.follow(ctx, c, run.GetID(), run.GetRunID(), f, &b.Runbook, link)
}

func describeUndo(c workflows.Compensation) string {
	switch {
	case c.Migrate != nil && c.Migrate.Policy == runbook.OnRollbackKeep:
		return fmt.Sprintf("keep the schema of %s as migrated (onRollback: keep)", c.Migrate.Database)
	case c.Migrate != nil && c.Migrate.Policy == runbook.OnRollbackArchive:
		return fmt.Sprintf("archive the data the Downs destroy, then migrate %s down to version %d", c.Migrate.Database, c.Migrate.Captured.Version)
	case c.Migrate != nil:
		return fmt.Sprintf("migrate %s down to version %d", c.Migrate.Database, c.Migrate.Captured.Version)
	case c.KV != nil:
		return fmt.Sprintf("restore %d Consul keys to their values before the deployment", len(c.KV.Ops))
	case c.Traffic != nil:
		return fmt.Sprintf("set route %s back to %s", c.Traffic.Route.Name, runbook.FormatWeights(c.Traffic.Captured.Weights))
	case c.Release != nil:
		return fmt.Sprintf("put version %s back onto target %s", c.Release.Captured.Version, c.Release.Target)
	}
	return "nothing"
}
