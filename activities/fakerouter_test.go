package activities

import (
	"context"
	"maps"
	"sync"

	"github.com/rollbook/rollbook/internal/router"
)

// fakeRouter is an in-memory router: raw weights equal percentages, like
// rollbook's HAProxy writes.
type fakeRouter struct {
	mu       sync.Mutex
	raw      map[string]int
	initial  map[string]int
	health   map[string]router.ServerHealth
	counters map[string]router.Counters
	err      error // returned by every call when set
	writes   int
}

var _ router.Router = (*fakeRouter)(nil)

func (f *fakeRouter) String() string { return "fake" }

func (f *fakeRouter) state(subsets []string) router.State {
	st := router.State{Raw: map[string]int{}, Initial: maps.Clone(f.initial), Health: map[string]router.ServerHealth{}}
	for _, s := range subsets {
		st.Raw[s] = f.raw[s]
		h, ok := f.health[s]
		if !ok {
			h = router.ServerHealth{State: router.StateUp}
		}
		st.Health[s] = h
	}
	st.Weights = router.Percentages(subsets, st.Raw)
	return st
}

func (f *fakeRouter) Weights(_ context.Context, _ string, subsets []string) (router.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return router.State{}, f.err
	}
	return f.state(subsets), nil
}

func (f *fakeRouter) SetWeights(_ context.Context, _ string, subsets []string, want map[string]int, _ *router.State) (router.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return router.State{}, f.err
	}
	f.writes++
	for _, s := range subsets {
		f.raw[s] = want[s]
	}
	return f.state(subsets), nil
}

func (f *fakeRouter) Restore(_ context.Context, _ string, subsets []string, captured router.State, _ *router.State) (router.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return router.State{}, f.err
	}
	f.writes++
	for _, s := range subsets {
		f.raw[s] = captured.Raw[s]
	}
	return f.state(subsets), nil
}

func (f *fakeRouter) Counters(_ context.Context, _ string, subsets []string) (map[string]router.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := map[string]router.Counters{}
	for _, s := range subsets {
		out[s] = f.counters[s]
	}
	return out, nil
}
