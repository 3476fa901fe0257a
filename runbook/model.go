// Package runbook holds the runbook model (what a team writes in YAML), its
// strict parser, its validation and the bundle the CLI sends to the workflow.
//
// The model is shared by the CLI, the workflow and the activities, so every
// type here is plain data that round-trips through JSON (Temporal's payload
// converter) without loss.
package runbook

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// APIVersion is the only runbook format version this build understands.
const APIVersion = "rollbook/v1"

// Runbook is one deployment recipe for one service.
type Runbook struct {
	APIVersion  string `json:"apiVersion"`
	Service     string `json:"service"`
	Description string `json:"description,omitempty"`
	// Deadline bounds the whole deployment; when it passes the workflow
	// rolls back as if verification had failed.
	Deadline Duration `json:"deadline,omitempty"`
	// Routes name the traffic routes the runbook's traffic steps and checks
	// refer to, so that weights and subsets can be validated offline.
	Routes   []Route          `json:"routes,omitempty"`
	Steps    []Step           `json:"steps"`
	Analysis *Analysis        `json:"analysis,omitempty"`
	Rollback *RollbackOptions `json:"rollback,omitempty"`
	// Notify posts phase changes to a webhook the worker knows by name.
	Notify *Notify `json:"notify,omitempty"`
}

// Notify posts phase changes to a chat webhook and pages a human for the
// outcomes that need one. At least one of webhook and page is set.
type Notify struct {
	// Webhook is a webhook name from the worker configuration (the URL,
	// often a secret, never appears in the runbook).
	Webhook string `json:"webhook,omitempty"`
	// Phases limits the webhook's notifications to these phases (default:
	// all). Pages do not follow it.
	Phases []string `json:"phases,omitempty"`
	// Page is a paging service name from the worker configuration
	// (paging:, PagerDuty Events v2): it is triggered when the deployment
	// reaches rollback-stuck, failed-after-commit or rollback-failed, and
	// resolved when a retried rollback then completes.
	Page string `json:"page,omitempty"`
}

// PagePhases are the phases that page: they need a human.
var PagePhases = []string{"rollback-stuck", "failed-after-commit", "rollback-failed"}

// NotifyPhases are the phases a Notify.Phases list may name.
var NotifyPhases = []string{"deploying", "verifying", "paused", "rolling-back", "rollback-stuck",
	"succeeded", "rolled-back", "aborted", "rollback-failed", "failed-after-commit", "refused"}

// Route is a named traffic split on a router the worker knows by name.
type Route struct {
	Name string `json:"name"`
	// Router is the router's name in the worker configuration; the address
	// and credentials never appear in the runbook.
	Router string `json:"router"`
	// Backend is the HAProxy backend, or the Consul service for the
	// consul-splitter driver.
	Backend string `json:"backend"`
	// Subsets are the HAProxy servers (or Consul service-resolver subsets)
	// that weights are given to.
	Subsets []string `json:"subsets"`
	// Stable is the subset that serves when the deployment is rolled back;
	// it is the baseline for compare checks and capacity checks.
	Stable string `json:"stable"`
	// Canary is the subset that runs the new version.
	Canary string `json:"canary"`
}

// Step is a union: exactly one of the kind fields is set (argo-rollouts
// style), and the engine handles it in one switch.
type Step struct {
	Name string `json:"name"`
	// Irreversible marks the point of no return: once this step is applied,
	// earlier compensations are discarded and later failures wait for a human.
	Irreversible bool `json:"irreversible,omitempty"`

	Migrate *MigrateStep `json:"migrate,omitempty"`
	Consul  *ConsulStep  `json:"consul,omitempty"`
	Traffic *TrafficStep `json:"traffic,omitempty"`
	Verify  *VerifyStep  `json:"verify,omitempty"`
	Pause   *PauseStep   `json:"pause,omitempty"`
	Release *ReleaseStep `json:"release,omitempty"`
}

// Step kinds, as returned by Step.Kind.
const (
	KindMigrate = "migrate"
	KindConsul  = "consul"
	KindTraffic = "traffic"
	KindVerify  = "verify"
	KindPause   = "pause"
)

// Kind returns the kind of the step, or "" when none (or several) is set.
func (s Step) Kind() string {
	kinds := s.kinds()
	if len(kinds) != 1 {
		return ""
	}
	return kinds[0]
}

func (s Step) kinds() []string {
	var k []string
	if s.Migrate != nil {
		k = append(k, KindMigrate)
	}
	if s.Consul != nil {
		k = append(k, KindConsul)
	}
	if s.Traffic != nil {
		k = append(k, KindTraffic)
	}
	if s.Verify != nil {
		k = append(k, KindVerify)
	}
	if s.Pause != nil {
		k = append(k, KindPause)
	}
	if s.Release != nil {
		k = append(k, KindRelease)
	}
	return k
}

// Mutating reports whether the step changes something and so has a
// compensation.
func (s Step) Mutating() bool {
	switch s.Kind() {
	case KindMigrate, KindConsul, KindTraffic, KindRelease:
		return true
	}
	return false
}

// Migration phases for the expand/contract pattern.
const (
	PhaseExpand   = "expand"
	PhaseContract = "contract"
)

// MigrateStep applies goose SQL migrations from a folder next to the runbook.
type MigrateStep struct {
	// Database is a target name from the worker configuration.
	Database string `json:"database"`
	// Dir is the migrations folder, relative to the runbook's folder.
	Dir string `json:"dir"`
	// Version is the target version; 0 means the highest in Dir.
	Version int64 `json:"version,omitempty"`
	// Phase is "expand" or "contract" (optional).
	Phase string `json:"phase,omitempty"`
	// OnRollback is what a rollback does to this step's schema changes:
	// "keep" leaves them (the stable version runs on an expanded schema),
	// "archive" copies the data each Down would destroy into the
	// rollbook_archive schema and then migrates down, "drop" migrates down
	// and loses that data. Default: keep for phase expand, archive
	// otherwise; drop is never a default.
	OnRollback string `json:"onRollback,omitempty"`
}

// Rollback policies of a migrate step (MigrateStep.OnRollback).
const (
	OnRollbackKeep    = "keep"
	OnRollbackArchive = "archive"
	OnRollbackDrop    = "drop"
)

// OnRollbackPolicies are the values MigrateStep.OnRollback may take.
var OnRollbackPolicies = []string{OnRollbackKeep, OnRollbackArchive, OnRollbackDrop}

// RollbackPolicy is the step's effective onRollback policy: the one written,
// or the phase's default.
func (m MigrateStep) RollbackPolicy() string {
	if m.OnRollback != "" {
		return m.OnRollback
	}
	if m.Phase == PhaseExpand {
		return OnRollbackKeep
	}
	return OnRollbackArchive
}

// ConsulStep sets and deletes Consul KV keys in one transaction.
type ConsulStep struct {
	// Set maps keys (relative, no leading slash) to values.
	Set map[string]string `json:"set,omitempty"`
	// Delete lists keys to remove.
	Delete []string `json:"delete,omitempty"`
}

// Ops returns the step's operations in a stable order (sets by key, then
// deletes), so that workflow code never iterates a map.
func (c ConsulStep) Ops() []KVOp {
	keys := make([]string, 0, len(c.Set))
	for k := range c.Set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ops := make([]KVOp, 0, len(keys)+len(c.Delete))
	for _, k := range keys {
		ops = append(ops, KVOp{Key: k, Value: c.Set[k]})
	}
	for _, k := range c.Delete {
		ops = append(ops, KVOp{Key: k, Delete: true})
	}
	return ops
}

// KVOp is one Consul KV change.
type KVOp struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Delete bool   `json:"delete,omitempty"`
}

// TrafficStep sets the weights of a route.
type TrafficStep struct {
	Route string `json:"route"`
	// Weights maps subset names to percentages summing to 100.
	Weights map[string]int `json:"weights"`
}

// SortedWeights returns the weights ordered by subset name.
func SortedWeights(w map[string]int) []SubsetWeight {
	out := make([]SubsetWeight, 0, len(w))
	for k, v := range w {
		out = append(out, SubsetWeight{Subset: k, Percent: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subset < out[j].Subset })
	return out
}

// FormatWeights renders percentages as "canary=10% stable=90%", in subset
// order, for status lines and plans.
func FormatWeights(w map[string]int) string {
	parts := make([]string, 0, len(w))
	for _, sw := range SortedWeights(w) {
		parts = append(parts, fmt.Sprintf("%s=%d%%", sw.Subset, sw.Percent))
	}
	return strings.Join(parts, " ")
}

// SubsetWeight is one entry of a weight map.
type SubsetWeight struct {
	Subset  string `json:"subset"`
	Percent int    `json:"percent"`
}

// VerifyStep measures checks in rounds every Interval for at most Duration.
// The activity only measures; the workflow judges, so the history shows why
// a round failed.
type VerifyStep struct {
	// Duration is how long verification runs at most.
	Duration Duration `json:"duration"`
	// Interval is the time between two measurement rounds (default 10s).
	Interval Duration `json:"interval,omitempty"`
	Checks   []Check  `json:"checks"`
}

// Check is a union of check kinds plus the judgement knobs shared by all.
type Check struct {
	Name string `json:"name"`
	// FailureLimit is how many failed measurements are tolerated; one more
	// fails the check (Argo Rollouts semantics; default 0).
	FailureLimit int `json:"failureLimit,omitempty"`
	// SuccessThreshold, when set, ends the check as passed after this many
	// consecutive successful measurements; otherwise it runs for the whole
	// verify duration.
	SuccessThreshold int `json:"successThreshold,omitempty"`
	// InconclusiveLimit, when set, is how many "not enough data" results
	// (a router or compare check with too little traffic) are tolerated;
	// one more fails the check. Default 0: no limit, but an inconclusive
	// result never counts as a pass.
	InconclusiveLimit int `json:"inconclusiveLimit,omitempty"`
	// Continuous, on a router check in a verify step or the analysis,
	// watches the router's counters every few tens of milliseconds instead
	// of once per round, and fails the check as soon as the error rate over
	// the sliding window exceeds maxErrorRate (with at least minRequests in
	// the window) or the router marks the subset DOWN. Each trip counts as
	// one failed measurement against failureLimit.
	Continuous bool `json:"continuous,omitempty"`
	// Window is the sliding window a continuous check judges (200ms–5m;
	// default: the verify step's or analysis's interval).
	Window Duration `json:"window,omitempty"`

	HTTP       *HTTPCheck       `json:"http,omitempty"`
	Prometheus *PrometheusCheck `json:"prometheus,omitempty"`
	Router     *RouterCheck     `json:"router,omitempty"`
	Compare    *CompareCheck    `json:"compare,omitempty"`
}

// Check kinds, as returned by Check.Kind.
const (
	CheckHTTP       = "http"
	CheckPrometheus = "prometheus"
	CheckRouter     = "router"
	CheckCompare    = "compare"
)

// Kind returns the check kind, or "" when none or several are set.
func (c Check) Kind() string {
	var k []string
	if c.HTTP != nil {
		k = append(k, CheckHTTP)
	}
	if c.Prometheus != nil {
		k = append(k, CheckPrometheus)
	}
	if c.Router != nil {
		k = append(k, CheckRouter)
	}
	if c.Compare != nil {
		k = append(k, CheckCompare)
	}
	if len(k) != 1 {
		return ""
	}
	return k[0]
}

// HTTPCheck probes a URL: either a full URL, or a path on an endpoint the
// worker knows by name (so runbooks need not hard-code addresses).
type HTTPCheck struct {
	URL string `json:"url,omitempty"`
	// Endpoint names a base URL in the worker configuration; Path is
	// appended to it. Use either URL or Endpoint.
	Endpoint string `json:"endpoint,omitempty"`
	Path     string `json:"path,omitempty"`
	Method   string `json:"method,omitempty"` // default GET
	// ExpectStatus is the status a healthy answer has (default 200).
	ExpectStatus int `json:"expectStatus,omitempty"`
	// MaxLatency fails the measurement when the answer is slower.
	MaxLatency Duration `json:"maxLatency,omitempty"`
	// Samples is how many requests one measurement sends (default 1); the
	// measurement fails when any of them fails.
	Samples int      `json:"samples,omitempty"`
	Timeout Duration `json:"timeout,omitempty"` // default 5s
}

// PrometheusCheck runs an instant query against a Prometheus server the
// worker knows by name and compares the scalar result to bounds.
type PrometheusCheck struct {
	// Server is the Prometheus name in the worker configuration
	// (default "default").
	Server string   `json:"server,omitempty"`
	Query  string   `json:"query"`
	Min    *float64 `json:"min,omitempty"`
	Max    *float64 `json:"max,omitempty"`
}

// VersionPlaceholder in a Prometheus query stands for the version being
// deployed, so that a query can judge only the requests that version served
// (a label matcher such as version="{{version}}"): a range that reaches back
// before the step would otherwise count what the previous version did.
const VersionPlaceholder = "{{version}}"

// QueryFor returns the query with VersionPlaceholder replaced by version. A
// version is checked with CheckVersion first: its syntax (letters, digits,
// ".", "_", "+", "-") cannot close a PromQL string or add a matcher.
func (q PrometheusCheck) QueryFor(version string) (string, error) {
	if !strings.Contains(q.Query, VersionPlaceholder) {
		return q.Query, nil
	}
	if err := CheckVersion(version); err != nil {
		return "", fmt.Errorf("query uses %s: %w", VersionPlaceholder, err)
	}
	return strings.ReplaceAll(q.Query, VersionPlaceholder, version), nil
}

// RouterCheck judges a subset's error rate on a route, from the router's own
// counters over the last interval.
type RouterCheck struct {
	Route  string `json:"route"`
	Subset string `json:"subset"`
	// MaxErrorRate is the highest tolerated share of 5xx answers (0–1).
	MaxErrorRate float64 `json:"maxErrorRate"`
	// MinRequests below which a measurement is inconclusive, not a pass.
	MinRequests int `json:"minRequests,omitempty"`
}

// CompareCheck compares the canary to the baseline statistically.
type CompareCheck struct {
	Route    string `json:"route"`
	Canary   string `json:"canary,omitempty"`   // default: the route's canary
	Baseline string `json:"baseline,omitempty"` // default: the route's stable
	// Metrics to compare: "errors" (exact test on proportions) and/or
	// "latency" (Mann-Whitney U). Default both.
	Metrics []string `json:"metrics,omitempty"`
	// Significance is the p-value under which a difference is real
	// (default 0.05).
	Significance float64 `json:"significance,omitempty"`
	// MinEffect is the smallest difference that matters: absolute error-rate
	// difference for errors, relative latency increase for latency.
	MinEffect float64 `json:"minEffect,omitempty"`
	// MinSamples per side below which a round is "not enough data".
	MinSamples int `json:"minSamples,omitempty"`
}

// PauseStep waits for a duration or for an approve signal.
type PauseStep struct {
	Duration Duration `json:"duration,omitempty"`
	// Approval waits for an approve signal naming this step (or none).
	Approval bool `json:"approval,omitempty"`
	// Timeout bounds an approval wait; when it passes the deployment rolls
	// back. 0 waits until the deployment deadline.
	Timeout Duration `json:"timeout,omitempty"`
}

// Analysis runs checks in the background from a named step to the end.
type Analysis struct {
	// From is the step at whose start the analysis begins.
	From     string   `json:"from"`
	Interval Duration `json:"interval,omitempty"`
	Checks   []Check  `json:"checks"`
}

// RollbackOptions tune how a rollback runs.
type RollbackOptions struct {
	// Traffic restores weights gradually instead of in one flip.
	Traffic *GradualRestore `json:"traffic,omitempty"`
	// Verify runs after the rollback completes, to confirm health.
	Verify *VerifyStep `json:"verify,omitempty"`
	// StuckAfter is how long a failing compensation keeps being retried
	// before the workflow stops in rollback-stuck and asks an operator
	// (default 5m). Conflicts stop it at once.
	StuckAfter Duration `json:"stuckAfter,omitempty"`
}

// GradualRestore describes a stepped traffic restore: canary percentages to
// pass through on the way back to the captured weights.
type GradualRestore struct {
	Steps    []int    `json:"steps"`
	Interval Duration `json:"interval"`
	// CapacityCheck (default true) verifies the stable servers are up
	// before any traffic moves back to them.
	CapacityCheck *bool `json:"capacityCheck,omitempty"`
}

// Duration is a time.Duration written as "10s", "5m" in YAML and JSON.
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts a duration string, or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration must be a string such as \"30s\": %w", err)
		}
		*d = Duration(n)
		return nil
	}
	return d.UnmarshalText([]byte(s))
}

// UnmarshalText parses Go duration syntax ("30s", "2m", "1h30m").
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use Go syntax such as 30s, 5m, 1h)", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes Go duration syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
