package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/runbook"
)

func watchedCheck(name string, maxRate float64, minReq int, window time.Duration) runbook.Check {
	return runbook.Check{Name: name, Continuous: true, Window: runbook.Duration(window),
		Router: &runbook.RouterCheck{Route: "payments", Subset: "canary", MaxErrorRate: maxRate, MinRequests: minReq}}
}

// TestWatcherWindow drives one check's sliding window with readings at
// chosen times: errors count only while their readings are inside the
// window, minRequests holds a window back, a counter reset restarts it.
func TestWatcherWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	newW := func() *watcher {
		return &watcher{plan: plan{check: watchedCheck("w", 0.05, 10, time.Second)}, window: time.Second}
	}

	w := newW()
	require.Nil(t, w.add(reading{at(0), 0, 0}, "UP"))
	require.Nil(t, w.add(reading{at(100), 5, 5}, "UP"), "5 requests: below minRequests, not judged")
	require.False(t, w.judged)
	res := w.add(reading{at(150), 12, 5}, "UP")
	require.NotNil(t, res, "5/12 over the window")
	require.True(t, w.judged)
	require.Equal(t, "w", res.Tripped)
	require.EqualValues(t, 12, res.Requests)
	require.EqualValues(t, 5, res.Errors)
	require.EqualValues(t, 150, res.WindowMs)
	require.Equal(t, at(150), res.At)
	require.Contains(t, res.Reason, "error rate 41.67% (5/12) over the last 150ms above maxErrorRate 5.00%")

	// Old errors slide out of the window.
	w = newW()
	require.Nil(t, w.add(reading{at(0), 0, 0}, "UP"))
	require.Nil(t, w.add(reading{at(500), 100, 4}, "UP"), "4% is within 5%")
	require.Nil(t, w.add(reading{at(1600), 200, 4}, "UP"), "window 500ms..1600ms: 100 requests, 0 errors")
	require.Len(t, w.readings, 2, "the reading at 0 left the window")
	require.Nil(t, w.add(reading{at(1700), 210, 9}, "UP"), "5/110 = 4.5%")
	res = w.add(reading{at(1800), 215, 15}, "UP")
	require.NotNil(t, res)
	require.EqualValues(t, 115, res.Requests)
	require.EqualValues(t, 11, res.Errors)
	require.EqualValues(t, 1300, res.WindowMs)

	// A router restart: counters go down, the window starts again instead
	// of seeing negative counts.
	w = newW()
	require.Nil(t, w.add(reading{at(0), 1000, 900}, "UP"))
	require.Nil(t, w.add(reading{at(100), 5, 0}, "UP"))
	require.Len(t, w.readings, 1)
	require.Nil(t, w.add(reading{at(200), 25, 0}, "UP"), "20 clean requests since the restart")
	res = w.add(reading{at(300), 45, 10}, "UP")
	require.NotNil(t, res)
	require.EqualValues(t, 40, res.Requests)
	require.EqualValues(t, 10, res.Errors)

	// DOWN fails at once, whatever the counts.
	w = newW()
	res = w.add(reading{at(0), 0, 0}, "DOWN 1/2")
	require.NotNil(t, res)
	require.True(t, res.Down)
	require.Contains(t, res.Reason, `marked subset canary DOWN (status "DOWN 1/2")`)
	require.Nil(t, newW().add(reading{at(0), 0, 0}, "MAINT"), "maintenance is an operator's choice, not a failure")
}

func (f *fakeRouter) setCounters(subset string, c router.Counters) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counters[subset] = c
}

func (f *fakeRouter) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func TestWatchRouterTripsOnBadWindow(t *testing.T) {
	f := &fakeRouter{counters: map[string]router.Counters{"canary": {Requests: 500, Errors5xx: 3, Status: "UP"}}}
	c, err := NewChecks(ChecksConfig{Routers: map[string]router.Router{"edge": f}})
	require.NoError(t, err)
	in := WatchInput{Checks: []runbook.Check{watchedCheck("canary-errors", 0.05, 10, 0)}, Routes: []runbook.Route{testRoute},
		DefaultWindow: time.Second}
	// The canary turns bad 100 ms after the watch started: 20 requests
	// every 20 ms, half of them failing.
	go func() {
		time.Sleep(100 * time.Millisecond)
		for i := int64(1); i <= 100; i++ {
			f.setCounters("canary", router.Counters{Requests: 500 + 20*i, Errors5xx: 3 + 10*i, Status: "UP"})
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	res, err := runActivity[WatchResult](t, c, c.WatchRouter, in)
	took := time.Since(start)
	require.NoError(t, err)
	require.Equal(t, "canary-errors", res.Tripped)
	require.GreaterOrEqual(t, res.Requests, int64(10))
	require.Greater(t, float64(res.Errors)/float64(res.Requests), 0.05)
	require.Less(t, took, time.Second, "the first bad readings must trip it, not a round later")
	require.Greater(t, res.Readings, 1)
	t.Logf("tripped after %s, %d readings: %s", took, res.Readings, res.Reason)
}

func TestWatchRouterUntilDownAndInvalid(t *testing.T) {
	f := &fakeRouter{counters: map[string]router.Counters{"canary": {Requests: 10, Status: "UP"}}}
	c, err := NewChecks(ChecksConfig{Routers: map[string]router.Router{"edge": f}})
	require.NoError(t, err)
	routes := []runbook.Route{testRoute}

	// Healthy traffic until Until: no trip, the check was judged.
	go func() {
		for i := int64(1); i <= 20; i++ {
			f.setCounters("canary", router.Counters{Requests: 10 + 5*i, Status: "UP"})
			time.Sleep(10 * time.Millisecond)
		}
	}()
	in := WatchInput{Checks: []runbook.Check{watchedCheck("canary-errors", 0.01, 10, 200*time.Millisecond)}, Routes: routes,
		Until: time.Now().Add(300 * time.Millisecond)}
	res, err := runActivity[WatchResult](t, c, c.WatchRouter, in)
	require.NoError(t, err)
	require.Empty(t, res.Tripped)
	require.Empty(t, res.Error)
	require.Equal(t, []string{"canary-errors"}, res.Judged)

	// HAProxy marked the canary down.
	f.setCounters("canary", router.Counters{Requests: 200, Status: "DOWN"})
	in.Until = time.Now().Add(5 * time.Second)
	res, err = runActivity[WatchResult](t, c, c.WatchRouter, in)
	require.NoError(t, err)
	require.True(t, res.Down)
	require.Equal(t, "canary-errors", res.Tripped)
	require.Equal(t, 1, res.Readings, "the first reading, taken at once, sees it")

	// Unknown subset, a non-router check: the watch cannot run here.
	bad := watchedCheck("x", 0, 0, time.Second)
	bad.Router.Subset = "blue"
	_, err = runActivity[WatchResult](t, c, c.WatchRouter, WatchInput{Checks: []runbook.Check{bad}, Routes: routes})
	requireErrType(t, err, ErrInvalid)
	probe := runbook.Check{Name: "h", Continuous: true, HTTP: &runbook.HTTPCheck{URL: "http://x/"}}
	_, err = runActivity[WatchResult](t, c, c.WatchRouter, WatchInput{Checks: []runbook.Check{probe}, Routes: routes, DefaultWindow: time.Second})
	requireErrType(t, err, ErrInvalid)
}

func TestWatchRouterReadErrorsAndCancel(t *testing.T) {
	defer func(d time.Duration) { watchGiveUp = d }(watchGiveUp)
	watchGiveUp = 200 * time.Millisecond
	f := &fakeRouter{counters: map[string]router.Counters{"canary": {Requests: 10, Status: "UP"}}}
	c, err := NewChecks(ChecksConfig{Routers: map[string]router.Router{"edge": f}})
	require.NoError(t, err)
	in := WatchInput{Checks: []runbook.Check{watchedCheck("canary-errors", 0.01, 10, time.Second)}, Routes: []runbook.Route{testRoute}}

	// A router that stays unreadable ends the watch with Error after the
	// bound; a short blip does not.
	f.setErr(errors.New("connection refused"))
	go func() { time.Sleep(100 * time.Millisecond); f.setErr(nil) }()
	in.Until = time.Now().Add(400 * time.Millisecond)
	res, err := runActivity[WatchResult](t, c, c.WatchRouter, in)
	require.NoError(t, err)
	require.Empty(t, res.Error, "a 100ms blip is retried inside the watch")

	f.setErr(errors.New("connection refused"))
	in.Until = time.Now().Add(5 * time.Second)
	start := time.Now()
	res, err = runActivity[WatchResult](t, c, c.WatchRouter, in)
	require.NoError(t, err)
	require.Equal(t, "canary-errors", res.Check)
	require.Contains(t, res.Error, "connection refused")
	require.Less(t, time.Since(start), 2*time.Second)

	// Cancellation ends the watch promptly (called directly: the test
	// activity environment has no cancel).
	f.setErr(nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	start = time.Now()
	_, err = c.WatchRouter(ctx, WatchInput{Checks: in.Checks, Routes: in.Routes})
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), 300*time.Millisecond)
}
