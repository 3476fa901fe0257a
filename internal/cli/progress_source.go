package cli

import (
	"context"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/rollbook/rollbook/workflows"
)

// pollEvery is how often a followed deployment's status is queried (a
// variable so that the pty tests can play their scripts faster).
var pollEvery = 300 * time.Millisecond

// deploymentSource is what following a deployment needs from Temporal: the
// status query, the run's result and the abort signal. The live terminal
// view and the plain lines read the same source, so the view can be driven
// by a scripted status sequence in tests without a Temporal server.
type deploymentSource interface {
	// Status answers the status query of the latest run (a long
	// verification continues as new).
	Status(ctx context.Context) (workflows.Status, error)
	// Result blocks until the run ends.
	Result(ctx context.Context) (workflows.Result, error)
	// Abort sends the abort signal to the run being followed.
	Abort(ctx context.Context, sig workflows.AbortSignal) error
}

// temporalSource follows one workflow run through a Temporal client.
type temporalSource struct {
	c         client.Client
	id, runID string
}

func (s *temporalSource) Status(ctx context.Context) (workflows.Status, error) {
	return queryStatus(ctx, s.c, s.id, "")
}

func (s *temporalSource) Result(ctx context.Context) (workflows.Result, error) {
	var r workflows.Result
	err := s.c.GetWorkflow(ctx, s.id, s.runID).Get(ctx, &r)
	return r, err
}

func (s *temporalSource) Abort(ctx context.Context, sig workflows.AbortSignal) error {
	return s.c.SignalWorkflow(ctx, s.id, s.runID, workflows.SignalAbort, sig)
}
