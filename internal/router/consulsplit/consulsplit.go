// Package consulsplit is the router driver for Consul's service mesh: a
// route's backend is a Consul service, its subsets are the subsets of the
// service's service-resolver config entry, and weights live in the
// service's service-splitter config entry, written with check-and-set on the
// entry's ModifyIndex.
//
// A missing service-splitter entry is reported as State.Absent with 100 % to
// the resolver's DefaultSubset (what Consul routes to without a splitter), or
// all subsets at 0 when the resolver has no DefaultSubset (traffic then goes
// to every instance, unsplit). Restoring an absent capture deletes the entry
// again with a check-and-set delete. Consul stores weights as float32
// percentages (0.01 % resolution); State.Raw holds them in basis points and
// State.Snapshot the whole entry, so a restore writes back exactly what was
// captured, including splits to other services that rollbook does not manage.
//
// The service needs protocol http (service-defaults or proxy-defaults) for
// Consul to accept a splitter; that is the platform's configuration, not
// rollbook's.
package consulsplit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/rollbook/rollbook/internal/router"
)

// Router reads and writes service-splitter entries through a Consul agent.
type Router struct {
	client *consulapi.Client
	name   string
}

var _ router.Router = (*Router)(nil)

// New returns a driver using client; name is used in log lines only (for
// example the Consul address, never a token).
func New(client *consulapi.Client, name string) (*Router, error) {
	if client == nil {
		return nil, errors.New("consul-splitter router: nil Consul client")
	}
	return &Router{client: client, name: name}, nil
}

func (r *Router) String() string { return "consul-splitter(" + r.name + ")" }

// maxNameLen bounds a service or subset name (Consul's own limit for
// service names is 256 bytes; DNS labels are far shorter).
const maxNameLen = 128

// ValidName checks a service or subset name before it reaches Consul; see
// router.ValidConsulName, where it lives so that configuration checks can
// use it without linking the Consul client.
func ValidName(name string) error { return router.ValidConsulName(name) }

func checkNames(backend string, subsets []string) error {
	if err := ValidName(backend); err != nil {
		return fmt.Errorf("service name %q: %v: %w", router.Clip(backend, maxNameLen), err, router.ErrRejected)
	}
	for _, s := range subsets {
		if err := ValidName(s); err != nil {
			return fmt.Errorf("service %s: subset name %q: %v: %w", backend, router.Clip(s, maxNameLen), err, router.ErrRejected)
		}
	}
	return nil
}

func isNotFound(err error) bool {
	var se consulapi.StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// classify marks Consul's refusals (4xx, and validation errors that Consul
// reports as 500 with a message) so that they are not retried forever.
func classify(err error) error {
	var se consulapi.StatusError
	if errors.As(err, &se) {
		switch {
		case se.Code == http.StatusNotFound:
			return fmt.Errorf("%w: %w", err, router.ErrNotFound)
		case se.Code >= 400 && se.Code < 500 && se.Code != http.StatusTooManyRequests:
			return fmt.Errorf("%w: %w", err, router.ErrRejected)
		case se.Code == http.StatusInternalServerError && (strings.Contains(se.Body, "does not permit") ||
			strings.Contains(se.Body, "must be") || strings.Contains(se.Body, "does not have a subset") ||
			strings.Contains(se.Body, "not defined")):
			return fmt.Errorf("%w: %w", err, router.ErrRejected)
		}
	}
	return err
}

func (r *Router) resolver(ctx context.Context, backend string) (*consulapi.ServiceResolverConfigEntry, error) {
	e, _, err := r.client.ConfigEntries().Get(consulapi.ServiceResolver, backend, (&consulapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("service-resolver %q does not exist (it defines the route's subsets): %w", backend, router.ErrNotFound)
		}
		return nil, fmt.Errorf("reading service-resolver %q: %w", backend, classify(err))
	}
	res, ok := e.(*consulapi.ServiceResolverConfigEntry)
	if !ok {
		return nil, fmt.Errorf("service-resolver %q: unexpected entry type %T", backend, e)
	}
	return res, nil
}

func (r *Router) splitter(ctx context.Context, backend string) (*consulapi.ServiceSplitterConfigEntry, error) {
	e, _, err := r.client.ConfigEntries().Get(consulapi.ServiceSplitter, backend, (&consulapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading service-splitter %q: %w", backend, classify(err))
	}
	sp, ok := e.(*consulapi.ServiceSplitterConfigEntry)
	if !ok {
		return nil, fmt.Errorf("service-splitter %q: unexpected entry type %T", backend, e)
	}
	return sp, nil
}

// Weights reads the resolver (to validate subsets and read health filters),
// the splitter and each subset's health.
func (r *Router) Weights(ctx context.Context, backend string, subsets []string) (router.State, error) {
	if err := checkNames(backend, subsets); err != nil {
		return router.State{}, err
	}
	res, err := r.resolver(ctx, backend)
	if err != nil {
		return router.State{}, err
	}
	if err := checkSubsets(res, backend, subsets); err != nil {
		return router.State{}, err
	}
	sp, err := r.splitter(ctx, backend)
	if err != nil {
		return router.State{}, err
	}
	st, err := stateOf(backend, subsets, res, sp)
	if err != nil {
		return router.State{}, err
	}
	st.Health = make(map[string]router.ServerHealth, len(subsets))
	for _, s := range subsets {
		h, err := r.health(ctx, backend, s, res.Subsets[s])
		if err != nil {
			return router.State{}, err
		}
		st.Health[s] = h
	}
	return st, nil
}

func checkSubsets(res *consulapi.ServiceResolverConfigEntry, backend string, subsets []string) error {
	if len(subsets) == 0 {
		return fmt.Errorf("service %s: no subsets given: %w", backend, router.ErrRejected)
	}
	for _, s := range subsets {
		if _, ok := res.Subsets[s]; !ok {
			return fmt.Errorf("subset %q is not defined in service-resolver %q: %w", s, backend, router.ErrNotFound)
		}
	}
	return nil
}

// snapshot is what State.Snapshot holds: the entry minus its indexes.
type snapshot struct {
	Splits []consulapi.ServiceSplit `json:"splits"`
	Meta   map[string]string        `json:"meta,omitempty"`
}

func stateOf(backend string, subsets []string, res *consulapi.ServiceResolverConfigEntry, sp *consulapi.ServiceSplitterConfigEntry) (router.State, error) {
	st := router.State{Weights: make(map[string]int, len(subsets)), Raw: make(map[string]int, len(subsets))}
	for _, s := range subsets {
		st.Weights[s], st.Raw[s] = 0, 0
	}
	if sp == nil {
		st.Absent = true
		if _, ok := st.Weights[res.DefaultSubset]; ok && res.DefaultSubset != "" {
			st.Weights[res.DefaultSubset] = 100
			st.Raw[res.DefaultSubset] = 10000
		}
		return st, nil
	}
	st.Index = sp.ModifyIndex
	total := 0
	for _, split := range sp.Splits {
		if split.Service != "" && split.Service != backend {
			continue
		}
		if _, ok := st.Weights[split.ServiceSubset]; !ok {
			continue
		}
		bp := int(math.Round(float64(split.Weight) * 100))
		st.Raw[split.ServiceSubset] += bp
		total += bp
	}
	if total == 10000 {
		// Every split goes to the route's subsets: integer percentages
		// that still sum to 100 (99.5/0.5 reads as 99/1, not 100/1).
		st.Weights = router.Percentages(subsets, st.Raw)
	} else {
		for s, bp := range st.Raw {
			st.Weights[s] = int(math.Round(float64(bp) / 100))
		}
	}
	b, err := json.Marshal(snapshot{Splits: sp.Splits, Meta: sp.Meta})
	if err != nil {
		return router.State{}, fmt.Errorf("encoding service-splitter %q: %w", backend, err)
	}
	st.Snapshot = string(b)
	return st, nil
}

// health reports a subset UP when at least one of its instances is not
// critical (Consul's maintenance mode is a critical check).
func (r *Router) health(ctx context.Context, backend, subset string, def consulapi.ServiceResolverSubset) (router.ServerHealth, error) {
	q := (&consulapi.QueryOptions{Filter: def.Filter}).WithContext(ctx)
	entries, _, err := r.client.Health().Service(backend, "", false, q)
	if err != nil {
		return router.ServerHealth{}, fmt.Errorf("reading health of service %s subset %s: %w", backend, subset, classify(err))
	}
	up, total := 0, 0
	for _, e := range entries {
		total++
		status := e.Checks.AggregatedStatus()
		if status == consulapi.HealthPassing || (!def.OnlyPassing && status == consulapi.HealthWarning) {
			up++
		}
	}
	switch {
	case total == 0:
		return router.ServerHealth{State: router.StateDown, Detail: "no instances registered"}, nil
	case up == 0:
		return router.ServerHealth{State: router.StateDown, Detail: fmt.Sprintf("0 of %d instances healthy", total)}, nil
	}
	return router.ServerHealth{State: router.StateUp, Detail: fmt.Sprintf("%d of %d instances healthy", up, total)}, nil
}

// SetWeights writes a splitter with one split per subset (in subsets order,
// zero weights included), with check-and-set against expect (create-only
// when expect is Absent; unconditional when expect is nil).
func (r *Router) SetWeights(ctx context.Context, backend string, subsets []string, want map[string]int, expect *router.State) (router.State, error) {
	if err := checkNames(backend, subsets); err != nil {
		return router.State{}, err
	}
	if err := router.ValidatePercent(subsets, want); err != nil {
		return router.State{}, fmt.Errorf("service %s: %w: %w", backend, err, router.ErrRejected)
	}
	entry := &consulapi.ServiceSplitterConfigEntry{Kind: consulapi.ServiceSplitter, Name: backend}
	for _, s := range subsets {
		entry.Splits = append(entry.Splits, consulapi.ServiceSplit{Weight: float32(want[s]), ServiceSubset: s})
	}
	if err := r.write(ctx, entry, expect); err != nil {
		return router.State{}, err
	}
	return r.Weights(ctx, backend, subsets)
}

// Restore writes the captured entry back (or deletes the entry when it was
// absent), with check-and-set against expect.
func (r *Router) Restore(ctx context.Context, backend string, subsets []string, captured router.State, expect *router.State) (router.State, error) {
	if err := checkNames(backend, subsets); err != nil {
		return router.State{}, err
	}
	if captured.Absent {
		if expect != nil && expect.Absent {
			return r.Weights(ctx, backend, subsets)
		}
		wo := (&consulapi.WriteOptions{}).WithContext(ctx)
		if expect == nil {
			if _, err := r.client.ConfigEntries().Delete(consulapi.ServiceSplitter, backend, wo); err != nil {
				return router.State{}, fmt.Errorf("deleting service-splitter %q: %w", backend, classify(err))
			}
		} else {
			ok, _, err := r.client.ConfigEntries().DeleteCAS(consulapi.ServiceSplitter, backend, expect.Index, wo)
			if err != nil {
				return router.State{}, fmt.Errorf("deleting service-splitter %q at index %d: %w", backend, expect.Index, classify(err))
			}
			if !ok {
				return router.State{}, fmt.Errorf("deleting service-splitter %q: ModifyIndex is no longer %d: %w", backend, expect.Index, router.ErrConflict)
			}
		}
		return r.Weights(ctx, backend, subsets)
	}
	var snap snapshot
	if err := json.Unmarshal([]byte(captured.Snapshot), &snap); err != nil || len(snap.Splits) == 0 {
		return router.State{}, fmt.Errorf("service-splitter %q: captured snapshot is unusable (%v): %w", backend, err, router.ErrRejected)
	}
	entry := &consulapi.ServiceSplitterConfigEntry{Kind: consulapi.ServiceSplitter, Name: backend, Splits: snap.Splits, Meta: snap.Meta}
	if err := r.write(ctx, entry, expect); err != nil {
		return router.State{}, err
	}
	return r.Weights(ctx, backend, subsets)
}

func (r *Router) write(ctx context.Context, entry *consulapi.ServiceSplitterConfigEntry, expect *router.State) error {
	wo := (&consulapi.WriteOptions{}).WithContext(ctx)
	if expect == nil {
		if _, _, err := r.client.ConfigEntries().Set(entry, wo); err != nil {
			return fmt.Errorf("writing service-splitter %q: %w", entry.Name, classify(err))
		}
		return nil
	}
	index := expect.Index
	if expect.Absent {
		index = 0 // Consul: CAS index 0 creates only if absent
	}
	ok, _, err := r.client.ConfigEntries().CAS(entry, index, wo)
	if err != nil {
		return fmt.Errorf("writing service-splitter %q with check-and-set at index %d: %w", entry.Name, index, classify(err))
	}
	if !ok {
		if expect.Absent {
			return fmt.Errorf("creating service-splitter %q: it was created by someone else meanwhile: %w", entry.Name, router.ErrConflict)
		}
		return fmt.Errorf("writing service-splitter %q: ModifyIndex is no longer %d: %w", entry.Name, index, router.ErrConflict)
	}
	return nil
}

// Counters is not available from Consul's config entries; use a Prometheus
// check on the mesh's metrics instead.
func (r *Router) Counters(ctx context.Context, backend string, subsets []string) (map[string]router.Counters, error) {
	if err := checkNames(backend, subsets); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("service %s: request counters are not available from a Consul service-splitter (use a prometheus check on Envoy metrics): %w", backend, router.ErrUnsupported)
}
