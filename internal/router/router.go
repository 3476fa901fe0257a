// Package router is the small interface rollbook's traffic steps and router
// checks use to read and change a route's weights, whatever the gateway.
//
// Drivers live in sub-packages: haproxy (runtime API) and consulsplit (Consul
// service-splitter config entries). Weights cross the interface as integer
// percentages per subset; each driver also reports its own representation
// (State.Raw, State.Index, State.Snapshot) so that a capture can be restored
// exactly and a concurrent change can be detected.
package router

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/rollbook/rollbook/internal/clip"
)

// Errors drivers wrap so that callers can classify failures with errors.Is.
// Anything else (connection refused, timeouts) is transient.
var (
	// ErrNotFound: the backend, server or subset does not exist on the
	// router. Retrying does not help.
	ErrNotFound = errors.New("not found")
	// ErrRejected: the router refused a command or write as invalid
	// (weight out of range, permission denied, validation error).
	ErrRejected = errors.New("rejected by router")
	// ErrConflict: a check-and-set write failed because the state changed
	// since it was read.
	ErrConflict = errors.New("changed concurrently")
	// ErrUnsupported: the driver cannot provide this (for example request
	// counters from a Consul service-splitter).
	ErrUnsupported = errors.ErrUnsupported
	// ErrNotAllowed: the backend is not among those the worker's operator
	// allowed on this router (routers.<name>.allowedBackends). Errors
	// wrapping it also wrap ErrRejected.
	ErrNotAllowed = errors.New("not allowed by the worker's configuration")
)

// Health states of a subset, as reported in ServerHealth.State.
const (
	StateUp      = "UP"
	StateDown    = "DOWN"
	StateMaint   = "MAINT"
	StateDrain   = "DRAIN"
	StateUnknown = "UNKNOWN"
)

// ServerHealth is whether a subset (HAProxy server, Consul subset) can take
// traffic.
type ServerHealth struct {
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// Up reports whether the subset can take traffic.
func (h ServerHealth) Up() bool { return h.State == StateUp }

// Counters are cumulative per-subset counters; callers compute deltas
// between two reads. A counter going down means the router restarted.
type Counters struct {
	// Requests is the total number of requests (HAProxy stot: sessions,
	// which is requests for HTTP without keep-alive reuse to the server).
	Requests int64 `json:"requests"`
	// Errors5xx is the total number of 5xx answers (HAProxy hrsp_5xx).
	Errors5xx int64 `json:"errors5xx"`
	// ResponseMs and TotalMs are averages over the router's recent window
	// (HAProxy rtime/ttime: last 1024 requests), not per-request samples.
	ResponseMs int64 `json:"responseMs"`
	TotalMs    int64 `json:"totalMs"`
	// Status is the router's own status text (HAProxy "UP", "DOWN", "MAINT", "no check").
	Status string `json:"status,omitempty"`
}

// State is a route's live state.
type State struct {
	// Weights are percentages per subset. For HAProxy they are computed
	// from Raw (raw*100/sum, largest remainder); rollbook writes raw =
	// percent so its own weights read back exactly.
	Weights map[string]int `json:"weights"`
	// Raw is the driver-level weight per subset (HAProxy uweight 0–256).
	Raw map[string]int `json:"raw,omitempty"`
	// Initial is HAProxy's configured weight per server (iweight): live
	// weights equal to it after we changed them suggest a restart.
	Initial map[string]int `json:"initial,omitempty"`
	// Index is the Consul config entry's ModifyIndex (0 when Absent).
	Index uint64 `json:"index,omitempty"`
	// Absent is true when the Consul service-splitter entry does not exist.
	Absent bool `json:"absent,omitempty"`
	// Snapshot is the driver's exact representation, used to restore
	// (consul-splitter: the JSON of the entry's splits).
	Snapshot string `json:"snapshot,omitempty"`
	// Health of each subset, read in the same round trip as the weights
	// when the driver can.
	Health map[string]ServerHealth `json:"health,omitempty"`
}

// Router reads and changes weights of a backend's subsets.
//
// The expect argument of the write methods is the state the caller read and
// based its decision on. Drivers with check-and-set (consul-splitter) refuse
// the write with ErrConflict when the state changed since; the HAProxy
// runtime API has no check-and-set, so there the read-decide-write window is
// the caller's (two socket round trips, well under a millisecond).
type Router interface {
	// Weights reads the live weights and health of subsets of backend.
	// A missing backend or subset is ErrNotFound.
	Weights(ctx context.Context, backend string, subsets []string) (State, error)
	// SetWeights sets percentages (subsets absent from want get 0) in one
	// atomic write and returns the state after it.
	SetWeights(ctx context.Context, backend string, subsets []string, want map[string]int, expect *State) (State, error)
	// Restore puts a previously read state back exactly (raw weights,
	// absent entry) and returns the state after it.
	Restore(ctx context.Context, backend string, subsets []string, captured State, expect *State) (State, error)
	// Counters reads cumulative request counters per subset; drivers
	// without counters return ErrUnsupported.
	Counters(ctx context.Context, backend string, subsets []string) (map[string]Counters, error)
	// String names the router for log lines (never with credentials).
	String() string
}

// ValidatePercent checks that want gives 0–100 to known subsets only and sums
// to 100.
func ValidatePercent(subsets []string, want map[string]int) error {
	sum := 0
	for _, k := range slices.Sorted(maps.Keys(want)) {
		v := want[k]
		if !slices.Contains(subsets, k) {
			return fmt.Errorf("weight for %q: not a subset of the route (subsets: %s)", k, strings.Join(subsets, ", "))
		}
		if v < 0 || v > 100 {
			return fmt.Errorf("weight for %q: %d is outside 0–100", k, v)
		}
		sum += v
	}
	if sum != 100 {
		return fmt.Errorf("weights %s sum to %d, want 100", FormatWeights(want), sum)
	}
	return nil
}

// Percentages turns raw weights into integer percentages that sum to 100
// (largest remainder method), in subsets order; all zero when the sum is 0.
func Percentages(subsets []string, raw map[string]int) map[string]int {
	out := make(map[string]int, len(subsets))
	sum := 0
	for _, s := range subsets {
		out[s] = 0
		sum += raw[s]
	}
	if sum == 0 {
		return out
	}
	type rem struct {
		subset string
		frac   int
	}
	rems := make([]rem, 0, len(subsets))
	given := 0
	for _, s := range subsets {
		n := raw[s] * 100
		out[s] = n / sum
		given += out[s]
		rems = append(rems, rem{s, n % sum})
	}
	// Stable sort keeps subsets order among equal remainders, so the result
	// is deterministic.
	slices.SortStableFunc(rems, func(a, b rem) int { return b.frac - a.frac })
	for i := 0; given < 100; i++ {
		out[rems[i%len(rems)].subset]++
		given++
	}
	return out
}

// EqualWeights compares two percentage maps over subsets (missing = 0).
func EqualWeights(subsets []string, a, b map[string]int) bool {
	for _, s := range subsets {
		if a[s] != b[s] {
			return false
		}
	}
	return true
}

// FormatWeights renders a driver's weights as "a=10 b=90" in key order,
// for messages about raw router weights; percentages of a route are shown
// with runbook.FormatWeights ("a=10% b=90%").
func FormatWeights(w map[string]int) string {
	if len(w) == 0 {
		return "{}"
	}
	parts := make([]string, 0, len(w))
	for _, k := range slices.Sorted(maps.Keys(w)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, w[k]))
	}
	return strings.Join(parts, " ")
}

// Clip cuts s to at most n bytes on a rune boundary and says how much was
// left out; names in error messages come from runbooks and may be huge.
func Clip(s string, n int) string { return clip.Bytes(s, n) }

// Scoped is a driver limited to the backends the worker's operator listed:
// every call for another backend fails with ErrNotAllowed (and
// ErrRejected) before the driver sees it. A runbook then cannot move the
// traffic of a service its operator did not hand to rollbook.
type Scoped struct {
	Router
	allowed []string
}

var _ Router = (*Scoped)(nil)

// Scope limits r to backends (exact names).
func Scope(r Router, backends []string) *Scoped {
	return &Scoped{Router: r, allowed: slices.Clone(backends)}
}

// AllowsBackend reports whether backend is listed.
func (s *Scoped) AllowsBackend(backend string) bool { return slices.Contains(s.allowed, backend) }

// AllowedBackends returns the listed backends.
func (s *Scoped) AllowedBackends() []string { return slices.Clone(s.allowed) }

func (s *Scoped) check(backend string) error {
	if s.AllowsBackend(backend) {
		return nil
	}
	return fmt.Errorf("backend %q is not among the backends this worker allows on %s (allowedBackends: %s): %w: %w",
		Clip(backend, 128), s.Router, strings.Join(s.allowed, ", "), ErrNotAllowed, ErrRejected)
}

// Weights implements Router for allowed backends only.
func (s *Scoped) Weights(ctx context.Context, backend string, subsets []string) (State, error) {
	if err := s.check(backend); err != nil {
		return State{}, err
	}
	return s.Router.Weights(ctx, backend, subsets)
}

// SetWeights implements Router for allowed backends only.
func (s *Scoped) SetWeights(ctx context.Context, backend string, subsets []string, want map[string]int, expect *State) (State, error) {
	if err := s.check(backend); err != nil {
		return State{}, err
	}
	return s.Router.SetWeights(ctx, backend, subsets, want, expect)
}

// Restore implements Router for allowed backends only.
func (s *Scoped) Restore(ctx context.Context, backend string, subsets []string, captured State, expect *State) (State, error) {
	if err := s.check(backend); err != nil {
		return State{}, err
	}
	return s.Router.Restore(ctx, backend, subsets, captured, expect)
}

// Counters implements Router for allowed backends only.
func (s *Scoped) Counters(ctx context.Context, backend string, subsets []string) (map[string]Counters, error) {
	if err := s.check(backend); err != nil {
		return nil, err
	}
	return s.Router.Counters(ctx, backend, subsets)
}
