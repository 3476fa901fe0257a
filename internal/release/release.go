// Package release puts versions of a service onto named targets (a route's
// canary subset, a group of instances) through drivers the worker's
// operator configures: exec runs named commands without a shell, http talks
// to a deployer's API. Runbooks only ever name targets; what a target name
// means (which commands, which deployer, which credentials) is decided by
// the worker configuration.
package release

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rollbook/rollbook/runbook"
)

// Errors a driver returns, wrapped with what was being done. Callers branch
// with errors.Is.
var (
	// ErrFailed: the deploy was carried out and failed (a non-zero exit, a
	// deployer that reports the deployment failed). Repeating the same
	// request is unlikely to help.
	ErrFailed = errors.New("release failed")
	// ErrTimeout: a command or a wait ran out of time.
	ErrTimeout = errors.New("timed out")
	// ErrRejected: the driver refused the request as invalid (a deployer's
	// 4xx answer, a version that is not one). Retrying cannot help.
	ErrRejected = errors.New("rejected")
	// ErrBadVersion: a target reported a version that is not a valid one.
	ErrBadVersion = errors.New("invalid version reported")
)

// Placeholders a driver substitutes per request.
const (
	PlaceholderTarget  = "{target}"
	PlaceholderVersion = "{version}"
	PlaceholderKey     = "{key}"
)

// Request asks a driver to put Version onto Target.
type Request struct {
	// Target is the driver-side name of the target (the worker config's
	// target name, or the name it maps to).
	Target  string
	Version string
	// Key is the idempotency key: the same key means the same deploy, so a
	// retry after a lost answer does not deploy twice.
	Key string
	// Progress, when set, is called while a deploy is in progress (each
	// poll of a deployer); the activity heartbeats there.
	Progress func(detail string)
}

// Health is one health observation of a target.
type Health struct {
	Healthy bool
	// Detail says why a target is not healthy (a command's output tail,
	// a deployer's message).
	Detail string
}

// Driver talks to what runs a service's versions. Implementations are
// safe for concurrent use.
type Driver interface {
	// Current returns the version running on target now.
	Current(ctx context.Context, target string) (string, error)
	// Deploy puts r.Version onto r.Target and returns once the deploy
	// itself has finished (not necessarily healthy yet).
	Deploy(ctx context.Context, r Request) error
	// Health observes target once. An unhealthy target is a Health with
	// Healthy false, not an error; errors are failures to observe.
	Health(ctx context.Context, target string) (Health, error)
	// Wait says how long and how often to wait for health after a deploy.
	Wait() WaitPolicy
	// String names the driver for logs and errors (never secrets).
	String() string
}

// WaitPolicy bounds the health wait after a deploy.
type WaitPolicy struct {
	Timeout  time.Duration
	Interval time.Duration
}

// Default wait policy.
const (
	DefaultWaitTimeout  = 5 * time.Minute
	DefaultWaitInterval = 2 * time.Second
)

func (p WaitPolicy) withDefaults() WaitPolicy {
	if p.Timeout <= 0 {
		p.Timeout = DefaultWaitTimeout
	}
	if p.Interval <= 0 {
		p.Interval = DefaultWaitInterval
	}
	return p
}

// WaitHealthy polls d until target is healthy and runs version, or the
// driver's wait timeout passes (ErrTimeout, quoting the last observation).
// beat, when set, is called after every observation.
func WaitHealthy(ctx context.Context, d Driver, target, version string, beat func(detail string)) error {
	p := d.Wait().withDefaults()
	start := time.Now()
	deadline := start.Add(p.Timeout)
	last := "no observation yet"
	for {
		h, err := d.Health(ctx, target)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			last = err.Error()
		case !h.Healthy:
			last = "unhealthy: " + h.Detail
		default:
			cur, err := d.Current(ctx, target)
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case err != nil:
				last = "healthy, but reading its version failed: " + err.Error()
			case cur != version:
				last = fmt.Sprintf("healthy, but it runs %s, not %s", cur, version)
			default:
				return nil
			}
		}
		if beat != nil {
			beat(last)
		}
		if !time.Now().Add(p.Interval).Before(deadline) {
			return fmt.Errorf("waiting for target %s on %s to be healthy at %s: %w after %s; last: %s",
				target, d, version, ErrTimeout, time.Since(start).Round(time.Millisecond), last)
		}
		t := time.NewTimer(p.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// tail keeps the last max bytes written to it: a command's output or a
// deployer's message is quoted in errors without holding all of it.
type tail struct {
	max   int
	buf   []byte
	total int64
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) Write(p []byte) (int, error) {
	t.total += int64(len(p))
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return len(p), nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return len(p), nil
}

// String returns the kept bytes, marked when earlier output was dropped.
func (t *tail) String() string {
	if t.total > int64(len(t.buf)) {
		return fmt.Sprintf("[…%d bytes before] %s", t.total-int64(len(t.buf)), t.buf)
	}
	return string(t.buf)
}

// checkVersion applies the runbook's release version rule to versions that
// come from elsewhere (a target's answer, a request).
func checkVersion(v string) error { return runbook.CheckVersion(v) }

// checkRequest refuses a request no driver should carry out, whatever the
// caller checked before: a version that could pass for an option, a target
// name that could add a path level.
func checkRequest(r Request) error {
	if err := checkVersion(r.Version); err != nil {
		return fmt.Errorf("%v: %w", err, ErrRejected)
	}
	if !runbook.ValidTargetName(r.Target) {
		return fmt.Errorf("invalid target name %q: %w", r.Target, ErrRejected)
	}
	return nil
}
