package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
)

// invalidf returns a non-retryable ErrInvalid application error: the input
// cannot work on this worker and retrying does not help.
func invalidf(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrInvalid, nil)
}

// conflictf returns a non-retryable ErrConflict application error: someone
// else changed what we captured or applied.
func conflictf(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrConflict, nil)
}

// mismatchf returns a non-retryable ErrMismatch application error: the live
// state is not what history says we left there, and not someone's change.
func mismatchf(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrMismatch, nil)
}

// logger returns the activity logger, or a no-op one outside an activity
// (direct calls from tests and tools).
func logger(ctx context.Context) log.Logger {
	if activity.IsActivity(ctx) {
		return activity.GetLogger(ctx)
	}
	return nopLogger{}
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// heartbeat records a heartbeat when ctx is an activity context.
func heartbeat(ctx context.Context, details ...any) {
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, details...)
	}
}

// keepAlive heartbeats every interval until the returned stop function is
// called, so that a long call that gives no progress callbacks (a goose run,
// a lock wait) still lets Temporal deliver a cancellation through ctx.
func keepAlive(ctx context.Context, interval time.Duration, details func() any) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, details())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
