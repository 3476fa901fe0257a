package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// Metric names, served by the worker's /metrics (internal/worker adds no
// prefix; timers become histograms in seconds).
const (
	metricDeployments   = "rollbook_deployments_total"
	metricStepDuration  = "rollbook_step_duration_seconds"
	metricRollback      = "rollbook_rollback_duration_seconds"
	metricCompRetries   = "rollbook_compensation_retries_total"
	metricRollbackStuck = "rollbook_rollback_stuck_total"
)

// The workflow metrics handler records nothing while replaying, so these
// counts are per real event, not per replay.

func (d *deployment) countOutcome(ctx workflow.Context, outcome Phase) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"outcome": string(outcome), "service": d.rb.Service}).
		Counter(metricDeployments).Inc(1)
}

func (d *deployment) timeStep(ctx workflow.Context, kind string, state StepState, took time.Duration) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": kind, "state": string(state)}).
		Timer(metricStepDuration).Record(took)
}

func (d *deployment) timeRollback(ctx workflow.Context, took time.Duration) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"service": d.rb.Service}).Timer(metricRollback).Record(took)
}

func (d *deployment) countRetry(ctx workflow.Context, kind string) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": kind}).Counter(metricCompRetries).Inc(1)
}

func (d *deployment) countStuck(ctx workflow.Context, kind string) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": kind}).Counter(metricRollbackStuck).Inc(1)
}
