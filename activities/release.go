package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/rollbook/rollbook/internal/release"
	"github.com/rollbook/rollbook/runbook"
)

// releaseBeat is how often the release activities heartbeat while a
// command or a deployer call gives no progress of its own.
const releaseBeat = 2 * time.Second

// ---- contract ----

// ---- activities ----

// ReleaseTarget is one target the worker may release onto.
type ReleaseTarget struct {
	Driver release.Driver
	// Name is the target's name on the driver's side (what {target} and
	// the deployer's URL carry).
	Name string
}

// Release puts versions onto targets the worker knows by name.
type Release struct {
	// Targets maps the target names runbooks use to drivers.
	Targets map[string]ReleaseTarget
	// DeployDone, when set, is called once a deploy (apply or restore) has
	// finished and before the health wait: the worker sets it only for the
	// crash campaign (internal/faults), so the activities carry no dev
	// tooling.
	DeployDone func(ctx context.Context)
}

func (r *Release) deployDone(ctx context.Context) {
	if r.DeployDone != nil {
		r.DeployDone(ctx)
	}
}

// NewRelease checks its arguments and returns the release activities. With
// no targets every release step fails as ErrInvalid (unknown target).
func NewRelease(targets map[string]ReleaseTarget) (*Release, error) {
	for name, t := range targets {
		if !runbook.ValidTargetName(name) || t.Driver == nil || !runbook.ValidTargetName(t.Name) {
			return nil, fmt.Errorf("release: target %q: invalid name, driver-side name %q or nil driver", name, t.Name)
		}
	}
	return &Release{Targets: maps.Clone(targets)}, nil
}

// targetNames lists the targets this worker knows. (Not exported: every
// exported method of an activity struct is registered as an activity.)
func (r *Release) targetNames() []string { return slices.Sorted(maps.Keys(r.Targets)) }

func (r *Release) target(name string) (ReleaseTarget, error) {
	t, ok := r.Targets[name]
	if !ok {
		known := "none: the worker configuration has no targets"
		if len(r.Targets) > 0 {
			known = strings.Join(r.targetNames(), ", ")
		}
		return t, invalidf("unknown release target %q (this worker knows: %s)", name, known)
	}
	return t, nil
}

// CaptureRelease reads the version the target runs now; it is recorded in
// history and is what the compensation puts back.
//
// Errors: ErrInvalid for an unknown target, a target the driver refuses
// or one that reports no valid version; plain errors when the driver
// cannot be reached or its command fails (retried).
func (r *Release) CaptureRelease(ctx context.Context, in ReleaseInput) (ReleaseState, error) {
	t, err := r.target(in.Target)
	if err != nil {
		return ReleaseState{}, err
	}
	stop := keepAlive(ctx, releaseBeat, func() any { return "reading the version of " + in.Target })
	defer stop()
	v, err := t.Driver.Current(ctx, t.Name)
	if err != nil {
		return ReleaseState{}, releaseError(fmt.Sprintf("reading the version of target %s", in.Target), err, false)
	}
	logger(ctx).Info("Captured release", "target", in.Target, "version", v)
	return ReleaseState{Target: in.Target, Version: v}, nil
}

// ApplyRelease puts in.Version onto the target and waits until the target
// is healthy and runs it, heartbeating meanwhile. A target that already
// runs the version is not deployed again (only waited for), so a retry
// after a lost answer does not deploy twice; the deploy's idempotency key
// guards the same for deployers.
//
// Errors: ErrInvalid (unknown target, bad version, refused request);
// non-retryable ErrReleaseFailed (the deploy failed, or the target did not
// get healthy in time); plain errors when the driver cannot be reached.
func (r *Release) ApplyRelease(ctx context.Context, in ApplyReleaseInput) (ReleaseResult, error) {
	t, err := r.target(in.Target)
	if err != nil {
		return ReleaseResult{}, err
	}
	if err := runbook.CheckVersion(in.Version); err != nil {
		return ReleaseResult{}, invalidf("release onto %s: %v", in.Target, err)
	}
	p := newProgress(ctx, fmt.Sprintf("releasing %s onto %s", in.Version, in.Target))
	defer p.stop()
	res := ReleaseResult{Version: in.Version, Previous: in.Captured.Version}
	cur, err := t.Driver.Current(ctx, t.Name)
	if err != nil {
		// Nothing was deployed yet: a failing read is worth a retry.
		return res, releaseError(fmt.Sprintf("reading the version of target %s before releasing %s", in.Target, in.Version), err, false)
	}
	if cur == in.Version {
		res.AlreadyThere = true
	} else {
		req := release.Request{Target: t.Name, Version: in.Version, Key: ReleaseKey(in.StepRef, "apply", 0), Progress: p.set}
		if err := t.Driver.Deploy(ctx, req); err != nil {
			return res, releaseError(fmt.Sprintf("releasing %s onto target %s", in.Version, in.Target), err, true)
		}
		r.deployDone(ctx) // the crash campaign's mid1:ApplyRelease
	}
	if err := release.WaitHealthy(ctx, t.Driver, t.Name, in.Version, p.set); err != nil {
		return res, releaseError(fmt.Sprintf("released %s onto target %s", in.Version, in.Target), err, true)
	}
	res.Detail = fmt.Sprintf("%s: %s → %s, healthy", in.Target, in.Captured.Version, in.Version)
	if res.AlreadyThere {
		res.Detail = fmt.Sprintf("%s already ran %s, healthy", in.Target, in.Version)
	}
	logger(ctx).Info("Released", "target", in.Target, "version", in.Version, "alreadyThere", res.AlreadyThere)
	return res, nil
}

// RestoreRelease puts the captured version back and waits until the target
// is healthy. A target already at the captured version and healthy is
// "already restored". Once the apply had succeeded, a target running a
// version that is neither the captured nor the applied one was changed by
// someone else: ErrConflict, nothing is deployed.
//
// Errors: ErrInvalid, ErrConflict (non-retryable); ErrReleaseFailed
// (retryable: the workflow retries, then asks an operator); plain errors.
func (r *Release) RestoreRelease(ctx context.Context, in RestoreReleaseInput) (RestoreResult, error) {
	t, err := r.target(in.Target)
	if err != nil {
		return RestoreResult{}, err
	}
	want := in.Captured.Version
	if err := runbook.CheckVersion(want); err != nil {
		return RestoreResult{}, invalidf("restoring target %s: captured %v", in.Target, err)
	}
	p := newProgress(ctx, fmt.Sprintf("putting %s back onto %s", want, in.Target))
	defer p.stop()
	cur, curErr := t.Driver.Current(ctx, t.Name)
	switch {
	case ctx.Err() != nil:
		return RestoreResult{}, ctx.Err()
	case curErr != nil && errors.Is(curErr, release.ErrRejected):
		return RestoreResult{}, releaseError("reading the version of target "+in.Target, curErr, false)
	case curErr != nil:
		// A target broken half-way may not even say what it runs: putting
		// the captured version back is what it needs.
		logger(ctx).Warn("Cannot read the version before restoring; restoring anyway", "target", in.Target, "error", curErr)
	case cur == want:
		h, err := t.Driver.Health(ctx, t.Name)
		if err == nil && h.Healthy {
			return RestoreResult{AlreadyRestored: true, Detail: fmt.Sprintf("%s already runs %s, healthy", in.Target, want)}, nil
		}
	case in.ApplyDone && cur != in.Applied:
		return RestoreResult{}, conflictf("target %s runs %s, but this deployment left it at %s (captured %s): someone else released since; not overwriting",
			in.Target, cur, in.Applied, want)
	}
	req := release.Request{Target: t.Name, Version: want, Key: ReleaseKey(in.StepRef, "restore", in.Attempt), Progress: p.set}
	if err := t.Driver.Deploy(ctx, req); err != nil {
		return RestoreResult{}, releaseError(fmt.Sprintf("putting %s back onto target %s", want, in.Target), err, false)
	}
	r.deployDone(ctx) // the crash campaign's mid1:RestoreRelease
	if err := release.WaitHealthy(ctx, t.Driver, t.Name, want, p.set); err != nil {
		return RestoreResult{}, releaseError(fmt.Sprintf("put %s back onto target %s", want, in.Target), err, false)
	}
	from := cur
	if curErr != nil {
		from = "an unknown version"
	}
	logger(ctx).Info("Restored release", "target", in.Target, "version", want, "from", from)
	return RestoreResult{Detail: fmt.Sprintf("%s: %s → %s, healthy", in.Target, from, want)}, nil
}

// releaseError maps driver errors to the activity error contract. forward
// marks an apply, whose failures end the step at once.
func releaseError(doing string, err error, forward bool) error {
	msg := fmt.Sprintf("%s: %v", doing, err)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", doing, err)
	case errors.Is(err, release.ErrRejected), errors.Is(err, release.ErrBadVersion):
		return invalidf("%s", msg)
	case errors.Is(err, release.ErrFailed), errors.Is(err, release.ErrTimeout):
		if forward {
			return temporal.NewNonRetryableApplicationError(msg, ErrReleaseFailed, nil)
		}
		return temporal.NewApplicationError(msg, ErrReleaseFailed)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// progress heartbeats the latest progress detail every releaseBeat, so
// that a cancellation reaches the activity while a command runs.
type progress struct {
	mu     sync.Mutex
	detail string
	stop   func()
}

func newProgress(ctx context.Context, start string) *progress {
	p := &progress{detail: start}
	p.stop = keepAlive(ctx, releaseBeat, func() any {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.detail
	})
	return p
}

func (p *progress) set(detail string) {
	p.mu.Lock()
	p.detail = detail
	p.mu.Unlock()
}
