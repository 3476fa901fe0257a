package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/rollbook/rollbook/internal/clip"
	"github.com/rollbook/rollbook/internal/netguard"
	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/runbook"
)

// How a watch reads. HAProxy answers `show stat` in well under a
// millisecond, so a reading every 25 ms costs the router nothing and puts
// the detection of a bad window within a few tens of milliseconds of the
// request that made it bad. Variables so that tests can shorten them.
var (
	watchPoll = 25 * time.Millisecond
	// watchHeartbeatEvery: at most this long between two heartbeats, also
	// while readings are slow (the SDK throttles what it sends to the
	// server anyway).
	watchHeartbeatEvery = 500 * time.Millisecond
	// watchGiveUp: a router that cannot be read for this long ends the
	// watch with WatchResult.Error, which the workflow counts as a failed
	// measurement.
	watchGiveUp = 5 * time.Second
)

// reading is one counter reading of a watched subset.
type reading struct {
	at       time.Time
	requests int64
	errors   int64
}

// watcher is one continuous check's sliding window.
type watcher struct {
	plan     plan
	window   time.Duration
	readings []reading
	judged   bool
}

// add takes a reading and returns a non-nil result when the check trips:
// the subset is DOWN, or over the window the error rate is above
// maxErrorRate with at least minRequests requests.
func (w *watcher) add(r reading, status string) *WatchResult {
	rc := w.plan.check.Router
	if strings.HasPrefix(status, router.StateDown) {
		return &WatchResult{Tripped: w.plan.check.Name, Down: true, At: r.at,
			Reason: fmt.Sprintf("check %s failed: the router marked subset %s DOWN (status %q): HAProxy took it out of rotation", w.plan.check.Name, rc.Subset, clip.Bytes(status, maxEcho))}
	}
	if n := len(w.readings); n > 0 && (r.requests < w.readings[n-1].requests || r.errors < w.readings[n-1].errors) {
		// The router restarted: its counters started again from zero.
		w.readings = w.readings[:0]
	}
	w.readings = append(w.readings, r)
	// Keep one reading at or before the window's start as the base, so
	// that the window spans at least `window` once it has filled.
	cutoff := r.at.Add(-w.window)
	for len(w.readings) >= 2 && !w.readings[1].at.After(cutoff) {
		w.readings = w.readings[1:]
	}
	base := w.readings[0]
	req, errs := r.requests-base.requests, r.errors-base.errors
	if req < int64(max(rc.MinRequests, 1)) {
		return nil
	}
	w.judged = true
	rate := float64(errs) / float64(req)
	if rate <= rc.MaxErrorRate {
		return nil
	}
	span := r.at.Sub(base.at)
	return &WatchResult{Tripped: w.plan.check.Name, Requests: req, Errors: errs, WindowMs: span.Milliseconds(), At: r.at,
		Reason: fmt.Sprintf("check %s failed: error rate %.2f%% (%d/%d) over the last %s above maxErrorRate %.2f%%",
			w.plan.check.Name, rate*100, errs, req, span.Round(time.Millisecond), rc.MaxErrorRate*100)}
}

// watchGroup is the checks read with one Counters call: same router and
// backend.
type watchGroup struct {
	router   router.Router
	backend  string
	subsets  []string
	watchers []*watcher
	// failingSince is when reads of this group started failing.
	failingSince time.Time
	lastErr      error
}

// WatchRouter watches continuous router checks: it reads the routers'
// counters every 25 ms (the first reading at once), judges each check's
// sliding window, and returns as soon as one trips, when in.Until passes, or
// when the counters could not be read for 5 s (WatchResult.Error). It
// heartbeats as it reads, so a crashed worker is noticed within the
// heartbeat timeout and the retry starts with a fresh window. A check that
// cannot run on this worker (unknown router, route or subset) is ErrInvalid.
func (c *Checks) WatchRouter(ctx context.Context, in WatchInput) (WatchResult, error) {
	groups, err := c.watchGroups(in)
	if err != nil {
		return WatchResult{}, err
	}
	t := time.NewTicker(watchPoll)
	defer t.Stop()
	var beat time.Time
	for n := 1; ; n++ {
		if res := readGroups(ctx, groups); res != nil {
			res.Readings = n
			res.Judged = judged(groups)
			return *res, nil
		}
		if time.Since(beat) >= watchHeartbeatEvery && activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, n)
			beat = time.Now()
		}
		if !in.Until.IsZero() && !time.Now().Before(in.Until) {
			return WatchResult{At: time.Now().UTC(), Readings: n, Judged: judged(groups)}, nil
		}
		select {
		case <-ctx.Done():
			return WatchResult{}, fmt.Errorf("watching %d checks of %s: %w", len(in.Checks), clip.Bytes(in.Step, maxEcho), ctx.Err())
		case <-t.C:
		}
	}
}

// watchGroups resolves the checks and groups them by router and backend.
func (c *Checks) watchGroups(in WatchInput) ([]*watchGroup, error) {
	var groups []*watchGroup
	for _, ch := range in.Checks {
		if ch.Kind() != runbook.CheckRouter {
			return nil, invalidf("check %q: only router checks can be watched, not %s", clip.Bytes(ch.Name, maxEcho), clip.Bytes(ch.Kind(), maxEcho))
		}
		p, err := c.resolve(ch, in.Routes)
		if err != nil {
			return nil, invalidf("check %q: %s", clip.Bytes(ch.Name, maxEcho), netguard.RedactError(err))
		}
		window := ch.Window.D()
		if window <= 0 {
			window = in.DefaultWindow
		}
		if window <= 0 {
			return nil, invalidf("check %q: no window (the check has none and the input's default is %s)", clip.Bytes(ch.Name, maxEcho), in.DefaultWindow)
		}
		w := &watcher{plan: p, window: window}
		var g *watchGroup
		for _, x := range groups {
			if x.router == p.router && x.backend == p.route.Backend {
				g = x
			}
		}
		if g == nil {
			g = &watchGroup{router: p.router, backend: p.route.Backend}
			groups = append(groups, g)
		}
		if !slices.Contains(g.subsets, p.subsets[0]) {
			g.subsets = append(g.subsets, p.subsets[0])
		}
		g.watchers = append(g.watchers, w)
	}
	return groups, nil
}

// readGroups takes one reading of every group and returns the first trip,
// or a result with Error when a group could not be read for watchGiveUp.
func readGroups(ctx context.Context, groups []*watchGroup) *WatchResult {
	for _, g := range groups {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		cs, err := g.router.Counters(rctx, g.backend, g.subsets)
		cancel()
		now := time.Now().UTC()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if g.failingSince.IsZero() {
				g.failingSince = now
			}
			g.lastErr = err
			if now.Sub(g.failingSince) >= watchGiveUp {
				w := g.watchers[0]
				return &WatchResult{Check: w.plan.check.Name, At: now, Error: fmt.Sprintf("reading counters of route %s on %s failed for %s: %s",
					clip.Bytes(w.plan.route.Name, maxEcho), g.router, now.Sub(g.failingSince).Round(time.Millisecond), clip.Bytes(netguard.RedactError(err), 4*maxEcho))}
			}
			continue
		}
		g.failingSince = time.Time{}
		for _, w := range g.watchers {
			s := cs[w.plan.subsets[0]]
			if res := w.add(reading{at: now, requests: s.Requests, errors: s.Errors5xx}, s.Status); res != nil {
				return res
			}
		}
	}
	return nil
}

func judged(groups []*watchGroup) []string {
	var out []string
	for _, g := range groups {
		for _, w := range g.watchers {
			if w.judged {
				out = append(out, w.plan.check.Name)
			}
		}
	}
	return out
}
