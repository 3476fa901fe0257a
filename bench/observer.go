package main

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

// haproxyCmd sends one runtime API command batch (";"-separated) over a unix
// socket and returns the answer.
func haproxyCmd(socket, cmd string) (string, error) {
	conn, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", err
	}
	out, err := io.ReadAll(conn)
	return string(out), err
}

// weights are the live HAProxy weights of a route's two servers.
type weights struct{ stable, canary int }

func (w weights) String() string { return fmt.Sprintf("%d/%d", w.stable, w.canary) }

// restored: all traffic on stable.
func (w weights) restored() bool { return w.canary == 0 && w.stable > 0 }

// canaryPct is the canary's share in percent.
func (w weights) canaryPct() int {
	if w.stable+w.canary == 0 {
		return 0
	}
	return w.canary * 100 / (w.stable + w.canary)
}

type sample struct {
	at time.Time
	w  weights
}

// observer polls the HAProxy runtime API every few milliseconds, on its own
// connection and independently of rollbook, and timestamps every change of a
// backend's stable/canary weights. The time of a change is the moment the
// answer that first shows it arrived: an upper bound, at most one poll
// period after the real change.
type observer struct {
	socket, backend string
	every           time.Duration

	mu    sync.Mutex
	log   []sample
	polls atomic.Int64
	first time.Time
	last  time.Time

	cancel context.CancelFunc
	done   chan struct{}
}

func startObserver(socket, backend string, every time.Duration) (*observer, error) {
	o := &observer{socket: socket, backend: backend, every: every, done: make(chan struct{})}
	w, err := o.read()
	if err != nil {
		return nil, fmt.Errorf("observer: reading %s weights: %w", backend, err)
	}
	now := time.Now()
	o.log = []sample{{now, w}}
	o.first = now
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	go o.loop(ctx)
	return o, nil
}

func (o *observer) loop(ctx context.Context) {
	defer close(o.done)
	t := time.NewTicker(o.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w, err := o.read()
		now := time.Now()
		o.polls.Add(1)
		if err != nil {
			continue
		}
		o.mu.Lock()
		o.last = now
		if o.log[len(o.log)-1].w != w {
			o.log = append(o.log, sample{now, w})
		}
		o.mu.Unlock()
	}
}

func (o *observer) read() (weights, error) {
	out, err := haproxyCmd(o.socket, fmt.Sprintf("get weight %s/stable; get weight %s/canary", o.backend, o.backend))
	if err != nil {
		return weights{}, err
	}
	// "100 (initial 256)\n\n0 (initial 0)\n"
	f := strings.Fields(out)
	if len(f) < 6 {
		return weights{}, fmt.Errorf("unexpected answer %q", out)
	}
	s, err1 := strconv.Atoi(f[0])
	c, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return weights{}, fmt.Errorf("unexpected answer %q", out)
	}
	return weights{s, c}, nil
}

func (o *observer) current() weights {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.log[len(o.log)-1].w
}

// waitFor returns the time of the first state observed at or after since
// that satisfies cond.
func (o *observer) waitFor(ctx context.Context, since time.Time, timeout time.Duration, cond func(weights) bool) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		o.mu.Lock()
		for _, s := range o.log {
			if !s.at.Before(since) && cond(s.w) {
				o.mu.Unlock()
				return s.at, nil
			}
		}
		cur := o.log[len(o.log)-1]
		o.mu.Unlock()
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("observer: %s did not reach the expected weights within %s (now %s)", o.backend, timeout, cur.w)
		}
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		time.Sleep(time.Millisecond)
	}
}

// changesSince returns the observed states from since on.
func (o *observer) changesSince(since time.Time) []sample {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []sample
	for _, s := range o.log {
		if !s.at.Before(since) {
			out = append(out, s)
		}
	}
	return out
}

func (o *observer) stop() ObserverStats {
	o.cancel()
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.polls.Load()
	st := ObserverStats{PollEveryMs: ms(o.every), Polls: n}
	if n > 1 {
		st.MeanPeriodMs = round2(ms(o.last.Sub(o.first)) / float64(n))
	}
	return st
}

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }
