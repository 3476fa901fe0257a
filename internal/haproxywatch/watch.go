// Package haproxywatch observes an HAProxy backend's stable/canary weights
// from the outside: it polls the runtime API every few milliseconds on its
// own connection, independently of the worker (it shares only the router
// driver's reader of the runtime API), and timestamps every change.
// The demo, the benchmark and the crash campaign use it to report what really
// happened at the gateway rather than what rollbook says it did.
package haproxywatch

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rollbook/rollbook/internal/router/haproxy"
)

// Weights are the live weights of a backend's two servers.
type Weights struct{ Stable, Canary int }

func (w Weights) String() string { return fmt.Sprintf("%d/%d", w.Stable, w.Canary) }

// Restored: all traffic on stable.
func (w Weights) Restored() bool { return w.Canary == 0 && w.Stable > 0 }

// CanaryPct is the canary's share in percent.
func (w Weights) CanaryPct() int {
	if w.Stable+w.Canary == 0 {
		return 0
	}
	return w.Canary * 100 / (w.Stable + w.Canary)
}

// Read asks HAProxy once for the live weights of backend's servers "stable"
// and "canary", through the router driver's reader of "show servers state".
func Read(ctx context.Context, rt *haproxy.Router, backend string) (Weights, error) {
	servers, err := rt.Servers(ctx, backend)
	if err != nil {
		return Weights{}, err
	}
	s, ok1 := servers["stable"]
	c, ok2 := servers["canary"]
	if !ok1 || !ok2 {
		return Weights{}, fmt.Errorf("backend %s lacks a stable or canary server", backend)
	}
	return Weights{s.UWeight, c.UWeight}, nil
}

// Sample is one observed state and when its answer arrived.
type Sample struct {
	At time.Time
	W  Weights
}

// Stats say how finely the observer saw the gateway.
type Stats struct {
	PollEveryMs  float64 `json:"poll_every_ms"`
	MeanPeriodMs float64 `json:"mean_poll_period_ms"`
	Polls        int64   `json:"polls"`
}

// Observer records every change of a backend's weights. The time of a change
// is the moment the answer that first shows it arrived: an upper bound, at
// most one poll period after the real change.
type Observer struct {
	rt      *haproxy.Router
	backend string
	every   time.Duration

	mu    sync.Mutex
	log   []Sample
	polls atomic.Int64
	first time.Time
	last  time.Time

	cancel context.CancelFunc
	done   chan struct{}
}

// Start reads the weights once (an error if HAProxy does not answer) and
// polls them every `every` until Stop.
func Start(socket, backend string, every time.Duration) (*Observer, error) {
	rt, err := haproxy.New(socket)
	if err != nil {
		return nil, fmt.Errorf("observer: %w", err)
	}
	o := &Observer{rt: rt, backend: backend, every: every, done: make(chan struct{})}
	w, err := Read(context.Background(), rt, backend)
	if err != nil {
		return nil, fmt.Errorf("observer: reading %s weights: %w", backend, err)
	}
	now := time.Now()
	o.log = []Sample{{now, w}}
	o.first = now
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	go o.loop(ctx)
	return o, nil
}

func (o *Observer) loop(ctx context.Context) {
	defer close(o.done)
	t := time.NewTicker(o.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w, err := Read(ctx, o.rt, o.backend)
		now := time.Now()
		o.polls.Add(1)
		if err != nil {
			continue // HAProxy restarting: the next answer tells
		}
		o.mu.Lock()
		o.last = now
		if o.log[len(o.log)-1].W != w {
			o.log = append(o.log, Sample{now, w})
		}
		o.mu.Unlock()
	}
}

// Current is the last observed state.
func (o *Observer) Current() Weights {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.log[len(o.log)-1].W
}

// WaitFor returns the time of the first state observed at or after since
// that satisfies cond, waiting up to timeout for it.
func (o *Observer) WaitFor(ctx context.Context, since time.Time, timeout time.Duration, cond func(Weights) bool) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		if at := o.FirstAfter(since, cond); !at.IsZero() {
			return at, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("observer: %s did not reach the expected weights within %s (now %s)", o.backend, timeout, o.Current())
		}
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		time.Sleep(time.Millisecond)
	}
}

// FirstAfter returns the time of the first state observed at or after since
// that satisfies cond, or the zero time.
func (o *Observer) FirstAfter(since time.Time, cond func(Weights) bool) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.log {
		if !s.At.Before(since) && cond(s.W) {
			return s.At
		}
	}
	return time.Time{}
}

// ChangesSince returns the observed states from since on.
func (o *Observer) ChangesSince(since time.Time) []Sample {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Sample
	for _, s := range o.log {
		if !s.At.Before(since) {
			out = append(out, s)
		}
	}
	return out
}

// Stop ends the polling and says how finely it saw.
func (o *Observer) Stop() Stats {
	o.cancel()
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.polls.Load()
	st := Stats{PollEveryMs: float64(o.every) / float64(time.Millisecond), Polls: n}
	if n > 1 {
		p := float64(o.last.Sub(o.first)) / float64(time.Millisecond) / float64(n)
		st.MeanPeriodMs = float64(int64(p*100+0.5)) / 100
	}
	return st
}
