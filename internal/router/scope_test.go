package router

import (
	"context"
	"errors"
	"testing"
)

type countingRouter struct{ calls int }

func (c *countingRouter) Weights(context.Context, string, []string) (State, error) {
	c.calls++
	return State{}, nil
}
func (c *countingRouter) SetWeights(context.Context, string, []string, map[string]int, *State) (State, error) {
	c.calls++
	return State{}, nil
}
func (c *countingRouter) Restore(context.Context, string, []string, State, *State) (State, error) {
	c.calls++
	return State{}, nil
}
func (c *countingRouter) Counters(context.Context, string, []string) (map[string]Counters, error) {
	c.calls++
	return nil, nil
}
func (c *countingRouter) String() string { return "counting" }

func TestScopeRefusesUnlistedBackends(t *testing.T) {
	inner := &countingRouter{}
	s := Scope(inner, []string{"payments_api"})
	ctx := context.Background()
	sub := []string{"a"}
	for _, call := range []func(string) error{
		func(b string) error { _, err := s.Weights(ctx, b, sub); return err },
		func(b string) error { _, err := s.SetWeights(ctx, b, sub, map[string]int{"a": 100}, nil); return err },
		func(b string) error { _, err := s.Restore(ctx, b, sub, State{}, nil); return err },
		func(b string) error { _, err := s.Counters(ctx, b, sub); return err },
	} {
		err := call("billing_api")
		if !errors.Is(err, ErrNotAllowed) || !errors.Is(err, ErrRejected) {
			t.Fatalf("unlisted backend: %v", err)
		}
		if err := call("payments_api"); err != nil {
			t.Fatalf("listed backend: %v", err)
		}
	}
	if inner.calls != 4 {
		t.Fatalf("driver calls = %d, want 4 (listed backend only)", inner.calls)
	}
	if s.String() != "counting" || !s.AllowsBackend("payments_api") || s.AllowsBackend("payments") {
		t.Fatal("String/AllowsBackend")
	}
}

func TestClip(t *testing.T) {
	if got := Clip("aé", 2); got != "a…(2 more bytes)" {
		t.Fatal(got)
	}
}
