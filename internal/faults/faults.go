// Package faults stops a rollbook worker at a precise point so that the crash
// campaign (tests/chaos, `make chaos`) can kill it there with SIGKILL and
// check that a new worker finishes the deployment correctly.
//
// It is inert unless the worker's environment sets ROLLBOOK_CRASHPOINT; the
// variable is read once at start-up, Interceptor then returns nil and
// Enabled false, so a production worker pays nothing for it. The value is
// <when>:<activity>[@<step>][#<n>], where
//
//   - when: "before" (the activity attempt has started in the worker but has
//     done nothing yet), "after" (the activity has done its work, its
//     result is not yet reported to Temporal: the retry on the next worker
//     tests idempotency), or "mid<k>" (inside a migration activity, after
//     its k-th migration file has been applied and committed, before the
//     next one starts), or "archived<k>" (inside a migrate-down with
//     onRollback archive, after the k-th file's data has been preserved and
//     committed, before that file's Down runs: the retry must neither
//     duplicate archived rows nor lose rows written in between). Inside a
//     release activity, mid1 is after its deploy finished, before the
//     health wait.
//   - activity: the activity type, for example MigrateUp, CaptureKV,
//     SetWeights, RestoreWeights, Measure.
//   - step: only calls for that runbook step (the "step" of the activity's
//     input: expand-schema, canary-50, verify-10, analysis, …).
//   - n: the n-th matching call in this process (default 1), for example
//     the second stage of a gradual traffic restore.
//
// Examples: before:MigrateUp@expand-schema, after:ApplyKV,
// mid2:MigrateUp@expand-schema, after:RestoreWeights@canary-50#1,
// archived1:MigrateDown@expand-schema.
//
// When the point is reached the worker prints one line to stdout,
//
//	ROLLBOOK-CRASHPOINT-REACHED <point> pid=<pid>
//
// and blocks the activity, so that the harness kills the process from
// outside (a genuine kill -9, at a moment the harness knows). If nobody has
// killed it after ROLLBOOK_CRASHPOINT_WAIT (a Go duration, default 30s), the
// process kills itself with SIGKILL, so the point still means "the worker
// died here".
package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Environment variables the package reads at start-up.
const (
	EnvPoint = "ROLLBOOK_CRASHPOINT"
	EnvWait  = "ROLLBOOK_CRASHPOINT_WAIT"
)

// Marker starts the line printed to stdout when the point is reached.
const Marker = "ROLLBOOK-CRASHPOINT-REACHED"

// Point is a parsed ROLLBOOK_CRASHPOINT.
type Point struct {
	// When is "before", "after", "mid" or "archived".
	When string
	// File is k of "mid<k>" or "archived<k>".
	File     int
	Activity string
	// Step is empty for any step.
	Step string
	// N counts matching calls in this process, from 1.
	N int
}

// Parse reads a crash point in the syntax of the package documentation.
func Parse(s string) (Point, error) {
	var p Point
	when, rest, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || rest == "" {
		return p, fmt.Errorf("crash point %q: want <when>:<activity>[@<step>][#<n>]", s)
	}
	switch {
	case when == "before" || when == "after":
		p.When = when
	case strings.HasPrefix(when, "archived"):
		k, err := strconv.Atoi(strings.TrimPrefix(when, "archived"))
		if err != nil || k < 1 {
			return p, fmt.Errorf("crash point %q: %q: want archived<k> with k ≥ 1 (after the k-th file's archive, before its Down)", s, when)
		}
		p.When, p.File = "archived", k
	case strings.HasPrefix(when, "mid"):
		k, err := strconv.Atoi(strings.TrimPrefix(when, "mid"))
		if err != nil || k < 1 {
			return p, fmt.Errorf("crash point %q: %q: want mid<k> with k ≥ 1 (after the k-th migration file)", s, when)
		}
		p.When, p.File = "mid", k
	default:
		return p, fmt.Errorf("crash point %q: %q is not before, after, mid<k> or archived<k>", s, when)
	}
	p.N = 1
	if i := strings.LastIndexByte(rest, '#'); i >= 0 {
		n, err := strconv.Atoi(rest[i+1:])
		if err != nil || n < 1 {
			return p, fmt.Errorf("crash point %q: occurrence %q is not a number ≥ 1", s, rest[i+1:])
		}
		p.N, rest = n, rest[:i]
	}
	p.Activity, p.Step, _ = strings.Cut(rest, "@")
	if p.Activity == "" {
		return p, fmt.Errorf("crash point %q: no activity", s)
	}
	return p, nil
}

// String formats p in the syntax Parse reads.
func (p Point) String() string {
	s := p.When
	if p.When == "mid" || p.When == "archived" {
		s += strconv.Itoa(p.File)
	}
	s += ":" + p.Activity
	if p.Step != "" {
		s += "@" + p.Step
	}
	if p.N > 1 {
		s += "#" + strconv.Itoa(p.N)
	}
	return s
}

// active is the point of this process; nil when ROLLBOOK_CRASHPOINT is unset.
var (
	active *Point
	wait   = 30 * time.Second
)

func init() {
	v := os.Getenv(EnvPoint)
	if v == "" {
		return
	}
	p, err := Parse(v)
	if err != nil {
		// A typo must not silently turn a crash test into a plain run.
		fmt.Fprintln(os.Stderr, "rollbook: "+EnvPoint+":", err)
		os.Exit(2)
	}
	if w := os.Getenv(EnvWait); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d <= 0 {
			fmt.Fprintf(os.Stderr, "rollbook: %s=%q: want a positive Go duration\n", EnvWait, w)
			os.Exit(2)
		}
		wait = d
	}
	active = &p
}

// Enabled reports whether this process has a crash point.
func Enabled() bool { return active != nil }

// Active returns the crash point of this process, if any.
func Active() (Point, bool) {
	if active == nil {
		return Point{}, false
	}
	return *active, true
}

// call is what the interceptor knows about one activity call; it travels in
// the activity's context so that the migration hook can count files.
type call struct {
	activity, step string
	// armed: this call is the n-th match, the one the point is about.
	armed    bool
	files    int
	archives int
}

type callKey struct{}

var (
	mu      sync.Mutex
	matches int
	fired   bool
)

// begin records an activity call and returns its context.
func begin(ctx context.Context, activity string, args []any) (context.Context, *call) {
	c := &call{activity: activity, step: stepOf(args)}
	p := active
	if p.Activity == activity && (p.Step == "" || p.Step == c.step) {
		mu.Lock()
		matches++
		c.armed = matches == p.N
		mu.Unlock()
	}
	return context.WithValue(ctx, callKey{}, c), c
}

// stepOf reads the "step" field every rollbook activity input carries
// (activities.StepRef); "" when there is none.
func stepOf(args []any) string {
	if len(args) == 0 {
		return ""
	}
	b, err := json.Marshal(args[0])
	if err != nil {
		return ""
	}
	var ref struct {
		Step string `json:"step"`
	}
	_ = json.Unmarshal(b, &ref)
	return ref.Step
}

// MigrationFileDone is called by migration activities after each migration
// file is applied and committed; with a mid<k> point armed for this call it
// does not return.
func MigrationFileDone(ctx context.Context) {
	if active == nil {
		return
	}
	c, ok := ctx.Value(callKey{}).(*call)
	if !ok {
		return
	}
	c.files++
	if active.When == "mid" && c.armed && c.files == active.File {
		crash(c)
	}
}

// ArchiveDone is called by a migrate-down after each file's data has been
// preserved and committed, right before that file's Down; with an
// archived<k> point armed for this call it does not return.
func ArchiveDone(ctx context.Context) {
	if active == nil {
		return
	}
	c, ok := ctx.Value(callKey{}).(*call)
	if !ok {
		return
	}
	c.archives++
	if active.When == "archived" && c.armed && c.archives == active.File {
		crash(c)
	}
}

// DeployDone is called by the release activities (ApplyRelease,
// RestoreRelease) once their deploy has finished, before they wait for the
// target's health; with a mid1 point armed for this call it does not return:
// the target runs the new version, and the retry on the next worker must
// recognise it.
func DeployDone(ctx context.Context) { MigrationFileDone(ctx) }

// crash announces the point and waits to be killed.
func crash(c *call) {
	mu.Lock()
	if fired {
		// Another activity reached it too: it must not report either.
		mu.Unlock()
		select {}
	}
	fired = true
	mu.Unlock()
	fmt.Fprintf(os.Stdout, "%s %s pid=%d step=%s\n", Marker, active, os.Getpid(), c.step)
	_ = os.Stdout.Sync()
	time.Sleep(wait)
	fmt.Fprintf(os.Stderr, "rollbook: crash point %s: not killed within %s, killing myself\n", active, wait)
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	select {}
}
