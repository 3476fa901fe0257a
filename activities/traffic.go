package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/rollbook/rollbook/internal/clip"
	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/runbook"
)

// Traffic reads and changes route weights on routers the worker knows by
// name.
//
// Weights are compared as integer percentages over the route's subsets;
// "captured" additionally compares the driver's raw weights (HAProxy) and
// the splitter's existence (Consul), so that a restore puts back exactly
// what was there. Each activity reads once and writes once: for HAProxy
// that is two socket round trips, which keeps the abort path fast.
type Traffic struct {
	// Routers maps router names used in runbooks to drivers.
	Routers map[string]router.Router
}

// NewTraffic checks its arguments and returns the traffic activities. With
// no routers, every traffic step fails as ErrInvalid (unknown router).
func NewTraffic(routers map[string]router.Router) (*Traffic, error) {
	for name, r := range routers {
		if name == "" || r == nil {
			return nil, fmt.Errorf("traffic: router %q: empty name or nil driver", name)
		}
	}
	return &Traffic{Routers: maps.Clone(routers)}, nil
}

func resolveRouter(routers map[string]router.Router, route runbook.Route) (router.Router, error) {
	r, ok := routers[route.Router]
	if !ok {
		return nil, invalidf("route %s: unknown router %q (this worker knows: %s)", clip.Bytes(route.Name, maxEcho), clip.Bytes(route.Router, maxEcho), strings.Join(slices.Sorted(maps.Keys(routers)), ", "))
	}
	if route.Backend == "" || len(route.Subsets) == 0 {
		return nil, invalidf("route %s: backend and subsets are required", clip.Bytes(route.Name, maxEcho))
	}
	// A router scoped by the worker's config (routers.<name>.allowedBackends)
	// refuses other backends itself; saying so here names the route.
	if s, ok := r.(interface{ AllowsBackend(string) bool }); ok && !s.AllowsBackend(route.Backend) {
		return nil, invalidf("route %s: backend %q is not among the backends this worker allows on router %s (routers.%s.allowedBackends)",
			clip.Bytes(route.Name, maxEcho), clip.Bytes(route.Backend, maxEcho), route.Router, route.Router)
	}
	return r, nil
}

// routerError maps driver errors to the activity error contract.
func routerError(route runbook.Route, r router.Router, doing string, err error) error {
	switch {
	case errors.Is(err, router.ErrNotFound), errors.Is(err, router.ErrRejected):
		return invalidf("route %s on %s: %s: %v", clip.Bytes(route.Name, maxEcho), r, doing, err)
	case errors.Is(err, router.ErrConflict):
		return conflictf("route %s on %s: %s: %v", clip.Bytes(route.Name, maxEcho), r, doing, err)
	}
	return fmt.Errorf("route %s on %s: %s: %w", clip.Bytes(route.Name, maxEcho), r, doing, err)
}

func toWeightState(st router.State) WeightState {
	ws := WeightState{
		Weights:  st.Weights,
		Raw:      st.Raw,
		Index:    st.Index,
		Initial:  st.Initial,
		Absent:   st.Absent,
		Snapshot: st.Snapshot,
	}
	if len(st.Health) > 0 {
		ws.Health = make(map[string]string, len(st.Health))
		for k, h := range st.Health {
			ws.Health[k] = h.State
		}
	}
	return ws
}

func toRouterState(ws WeightState) router.State {
	return router.State{
		Weights:  ws.Weights,
		Raw:      ws.Raw,
		Index:    ws.Index,
		Initial:  ws.Initial,
		Absent:   ws.Absent,
		Snapshot: ws.Snapshot,
	}
}

// sameAsCaptured compares live weights to a capture: percentages, raw
// weights when both sides have them, and the splitter's existence.
func sameAsCaptured(subsets []string, live router.State, captured WeightState) bool {
	if live.Absent != captured.Absent || !router.EqualWeights(subsets, live.Weights, captured.Weights) {
		return false
	}
	if live.Raw != nil && captured.Raw != nil && !router.EqualWeights(subsets, live.Raw, captured.Raw) {
		return false
	}
	return true
}

// unexpected builds the error for live weights that are none of the states
// we accept: ErrMismatch when HAProxy is back at its configured weights
// (a restart or reload lost the runtime weights), ErrConflict otherwise.
func unexpected(route runbook.Route, r router.Router, live router.State, accepted string) error {
	if live.Initial != nil && router.EqualWeights(route.Subsets, live.Raw, live.Initial) {
		return mismatchf("route %s on %s: live weights %s (raw %s) are back at the configured initial weights, and are not %s: the router was probably restarted or reloaded and lost its runtime weights",
			clip.Bytes(route.Name, maxEcho), r, runbook.FormatWeights(live.Weights), router.FormatWeights(live.Raw), accepted)
	}
	return conflictf("route %s on %s: live weights %s are not %s: someone else changed them; not overwriting",
		clip.Bytes(route.Name, maxEcho), r, runbook.FormatWeights(live.Weights), accepted)
}

// CaptureWeights reads the route's live weights and health.
//
// Errors: ErrInvalid for an unknown router, backend or subset; plain errors
// when the router cannot be reached.
func (t *Traffic) CaptureWeights(ctx context.Context, in TrafficInput) (WeightState, error) {
	r, err := resolveRouter(t.Routers, in.Route)
	if err != nil {
		return WeightState{}, err
	}
	live, err := r.Weights(ctx, in.Route.Backend, in.Route.Subsets)
	if err != nil {
		return WeightState{}, routerError(in.Route, r, "reading weights", err)
	}
	logger(ctx).Info("captured weights", "route", in.Route.Name, "router", r.String(), "weights", runbook.FormatWeights(live.Weights))
	return toWeightState(live), nil
}

// SetWeights sets the route's weights (percent per subset, summing to 100).
// Live weights already at the target are a success without a write (a retry
// after a lost answer); live weights that are neither the captured nor the
// target ones are a non-retryable ErrConflict (or ErrMismatch after a router
// restart), and nothing is written.
func (t *Traffic) SetWeights(ctx context.Context, in SetWeightsInput) (WeightState, error) {
	r, err := resolveRouter(t.Routers, in.Route)
	if err != nil {
		return WeightState{}, err
	}
	if err := router.ValidatePercent(in.Route.Subsets, in.Weights); err != nil {
		return WeightState{}, invalidf("route %s: %s", clip.Bytes(in.Route.Name, maxEcho), clip.Bytes(err.Error(), 4*maxEcho))
	}
	live, err := r.Weights(ctx, in.Route.Backend, in.Route.Subsets)
	if err != nil {
		return WeightState{}, routerError(in.Route, r, "reading weights", err)
	}
	if router.EqualWeights(in.Route.Subsets, live.Weights, in.Weights) {
		logger(ctx).Info("weights already at target", "route", in.Route.Name, "weights", runbook.FormatWeights(live.Weights))
		return toWeightState(live), nil
	}
	if !sameAsCaptured(in.Route.Subsets, live, in.Captured) {
		return WeightState{}, unexpected(in.Route, r, live,
			fmt.Sprintf("the captured %s nor the target %s", runbook.FormatWeights(in.Captured.Weights), runbook.FormatWeights(in.Weights)))
	}
	st, err := r.SetWeights(ctx, in.Route.Backend, in.Route.Subsets, in.Weights, &live)
	if err != nil {
		return WeightState{}, routerError(in.Route, r, "setting weights "+runbook.FormatWeights(in.Weights), err)
	}
	logger(ctx).Info("set weights", "route", in.Route.Name, "router", r.String(), "from", runbook.FormatWeights(live.Weights), "to", runbook.FormatWeights(st.Weights))
	return toWeightState(st), nil
}

// RestoreWeights puts the captured weights back (or, for a gradual restore,
// sets in.Target). Live weights already there are AlreadyRestored; live
// weights must otherwise be ours (in.Expect, or in.Applied) — anything else
// is a non-retryable ErrConflict/ErrMismatch and nothing is written.
//
// With CheckCapacity, a subset that would receive traffic but is not UP
// (DOWN, MAINT, DRAIN) makes the activity fail with a non-retryable
// ErrNoCapacity error: traffic is never flipped onto a down pool.
func (t *Traffic) RestoreWeights(ctx context.Context, in RestoreWeightsInput) (RestoreResult, error) {
	r, err := resolveRouter(t.Routers, in.Route)
	if err != nil {
		return RestoreResult{}, err
	}
	dest := in.Captured.Weights
	if in.Target != nil {
		if err := router.ValidatePercent(in.Route.Subsets, in.Target); err != nil {
			return RestoreResult{}, invalidf("route %s: restore stage: %s", clip.Bytes(in.Route.Name, maxEcho), clip.Bytes(err.Error(), 4*maxEcho))
		}
		dest = in.Target
	}
	live, err := r.Weights(ctx, in.Route.Backend, in.Route.Subsets)
	if err != nil {
		return RestoreResult{}, routerError(in.Route, r, "reading weights", err)
	}
	if (in.Target == nil && sameAsCaptured(in.Route.Subsets, live, in.Captured)) ||
		(in.Target != nil && router.EqualWeights(in.Route.Subsets, live.Weights, in.Target)) {
		return RestoreResult{AlreadyRestored: true, Detail: fmt.Sprintf("route %s already at %s", in.Route.Name, runbook.FormatWeights(live.Weights))}, nil
	}
	expect := in.Applied
	if in.Expect != nil {
		expect = in.Expect
	}
	ours := expect != nil && router.EqualWeights(in.Route.Subsets, live.Weights, expect)
	// During a gradual restore a stage's answer may have been lost, or an
	// earlier stage never ran: the apply's weights are ours as well.
	ours = ours || (in.Expect != nil && in.Applied != nil && router.EqualWeights(in.Route.Subsets, live.Weights, in.Applied))
	if !ours {
		accepted := fmt.Sprintf("ours (%s) nor the restore target %s", runbook.FormatWeights(expect), runbook.FormatWeights(dest))
		return RestoreResult{}, unexpected(in.Route, r, live, accepted)
	}
	if in.CheckCapacity {
		for _, s := range in.Route.Subsets {
			h, ok := live.Health[s]
			if dest[s] == 0 || !ok || h.Up() {
				continue
			}
			role := "server"
			if s == in.Route.Stable {
				role = "stable server"
			}
			// Not retried blindly: the workflow stops in rollback-stuck at
			// once, so an operator sees that the pool traffic would go back
			// to is down, fixes it and sends retry (or decides otherwise).
			return RestoreResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("route %s: %s %s/%s is %s%s, not moving traffic to it (wanted %d%%)",
				in.Route.Name, role, in.Route.Backend, s, h.State, detail(h.Detail), dest[s]), ErrNoCapacity, nil)
		}
	}
	var st router.State
	if in.Target == nil {
		st, err = r.Restore(ctx, in.Route.Backend, in.Route.Subsets, toRouterState(in.Captured), &live)
	} else {
		st, err = r.SetWeights(ctx, in.Route.Backend, in.Route.Subsets, in.Target, &live)
	}
	if err != nil {
		return RestoreResult{}, routerError(in.Route, r, "restoring weights "+runbook.FormatWeights(dest), err)
	}
	logger(ctx).Info("restored weights", "route", in.Route.Name, "router", r.String(), "from", runbook.FormatWeights(live.Weights), "to", runbook.FormatWeights(st.Weights))
	return RestoreResult{Detail: fmt.Sprintf("route %s: %s → %s", in.Route.Name, runbook.FormatWeights(live.Weights), runbook.FormatWeights(st.Weights))}, nil
}

func detail(d string) string {
	if d == "" {
		return ""
	}
	return " (" + d + ")"
}
