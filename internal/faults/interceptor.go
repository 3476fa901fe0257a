package faults

import (
	"context"
	"log/slog"

	"github.com/pressly/goose/v3"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
)

// Interceptor returns the worker interceptor that stops activities at the
// crash point, or nil when ROLLBOOK_CRASHPOINT is unset (add it only when
// non-nil).
func Interceptor() interceptor.WorkerInterceptor {
	if active == nil {
		return nil
	}
	return &workerInterceptor{}
}

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
}

func (*workerInterceptor) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &activityInbound{}
	i.Next = next
	return i
}

type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
}

func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	ctx, c := begin(ctx, activity.GetInfo(ctx).ActivityType.Name, in.Args)
	if c.armed && active.When == "before" {
		crash(c)
	}
	res, err := a.Next.ExecuteActivity(ctx, in)
	if c.armed && active.When == "after" {
		crash(c)
	}
	return res, err
}

// GooseOptions returns the goose Provider options that call
// MigrationFileDone after each migration file, or nil when no crash point is
// set. goose reports each applied file to its logger right after the file's
// transaction commits, with the context of the Up/Down call (the activity's),
// so the hook runs between two files of the real UpTo/DownTo path.
func GooseOptions() []goose.ProviderOption {
	if active == nil {
		return nil
	}
	return []goose.ProviderOption{goose.WithVerbose(true), goose.WithSlog(slog.New(fileHook{}))}
}

// fileHook is a slog.Handler that only listens for goose's "migration
// completed" record.
type fileHook struct{}

func (fileHook) Enabled(context.Context, slog.Level) bool { return true }

func (fileHook) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "migration completed" {
		MigrationFileDone(ctx)
	}
	return nil
}

func (h fileHook) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h fileHook) WithGroup(string) slog.Handler      { return h }
