package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rollbook/rollbook/internal/router/haproxy"
)

// seedLoop is the peer of rollbook's detection in the benchmark: the seed's
// algorithm, faithfully, without Temporal —
//
//	while True:
//	    check_health()
//	    if not healthy:
//	        rollback()
//	    sleep(1)
//
// check_health reads the canary server's counters from HAProxy's runtime API
// (show stat: stot, hrsp_5xx) and judges the requests since the previous
// reading, with the same threshold as the benchmark's router check (5xx share
// above maxErrorRate with at least minRequests requests); rollback() puts the
// weights back on stable with one runtime-API write, as rollbook's haproxy
// driver does. It shares nothing with rollbook but the runtime API reader.
type seedLoop struct {
	rt           *haproxy.Router
	backend      string
	every        time.Duration // the seed sleeps 1 s between checks
	maxErrorRate float64
	minRequests  int64
	stableWeight int // what rollback() writes for stable (canary: 0)
}

// canaryCounts is one check_health reading.
type canaryCounts struct{ requests, errors int64 }

func (l seedLoop) read(ctx context.Context) (canaryCounts, error) {
	rows, err := l.rt.Stats(ctx, l.backend)
	if err != nil {
		return canaryCounts{}, fmt.Errorf("seed loop: show stat %s: %w", l.backend, err)
	}
	row, ok := rows["canary"]
	if !ok {
		return canaryCounts{}, fmt.Errorf("seed loop: no canary server in backend %s", l.backend)
	}
	req, err := row.Int("stot")
	if err != nil {
		return canaryCounts{}, err
	}
	errs, err := row.Int("hrsp_5xx")
	if err != nil {
		return canaryCounts{}, err
	}
	return canaryCounts{req, errs}, nil
}

// healthy judges the requests between two readings.
func (l seedLoop) healthy(prev, cur canaryCounts) bool {
	req, errs := cur.requests-prev.requests, cur.errors-prev.errors
	if req < max(l.minRequests, 1) {
		return true // too little traffic to say; the seed treats it as healthy
	}
	return float64(errs)/float64(req) <= l.maxErrorRate
}

// rollback puts all traffic on stable in one write.
func (l seedLoop) rollback(ctx context.Context) error {
	_, err := l.rt.Exec(ctx, fmt.Sprintf("set server %s/stable weight %d", l.backend, l.stableWeight), fmt.Sprintf("set server %s/canary weight 0", l.backend))
	return err
}

// run loops until it rolls back (and returns when it wrote the weights) or
// ctx ends. Its first check_health only takes the baseline reading, like the
// seed's first delta.
func (l seedLoop) run(ctx context.Context) (rolledBack time.Time, err error) {
	prev, err := l.read(ctx)
	if err != nil {
		return time.Time{}, err
	}
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(l.every):
		}
		cur, err := l.read(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if !l.healthy(prev, cur) {
			if err := l.rollback(ctx); err != nil {
				return time.Time{}, fmt.Errorf("seed loop: rollback: %w", err)
			}
			return time.Now(), nil
		}
		prev = cur
	}
}
