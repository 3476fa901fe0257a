// Package haproxywatch observes an HAProxy backend's stable/canary weights
// from the outside: it polls the runtime API every few milliseconds on its
// own connection, independently of rollbook, and timestamps every change.
// The demo, the benchmark and the crash campaign use it to report what really
// happened at the gateway rather than what rollbook says it did.
package haproxywatch

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Command sends one runtime API command batch (";"-separated) over the unix
// socket and returns the answer.
func Command(socket, cmd string) (string, error) {
	conn, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, strings.TrimRight(cmd, "\n")+"\n"); err != nil {
		return "", err
	}
	out, err := io.ReadAll(conn)
	return string(out), err
}

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

// Read asks HAProxy once for the weights of backend's servers "stable" and
// "canary".
func Read(socket, backend string) (Weights, error) {
	out, err := Command(socket, fmt.Sprintf("get weight %s/stable; get weight %s/canary", backend, backend))
	if err != nil {
		return Weights{}, err
	}
	// "100 (initial 256)\n\n0 (initial 0)\n"
	f := strings.Fields(out)
	if len(f) < 6 {
		return Weights{}, fmt.Errorf("unexpected answer %q", out)
	}
	s, err1 := strconv.Atoi(f[0])
	c, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return Weights{}, fmt.Errorf("unexpected answer %q", out)
	}
	return Weights{s, c}, nil
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
	socket, backend string
	every           time.Duration

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
	o := &Observer{socket: socket, backend: backend, every: every, done: make(chan struct{})}
	w, err := Read(socket, backend)
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
		w, err := Read(o.socket, o.backend)
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
