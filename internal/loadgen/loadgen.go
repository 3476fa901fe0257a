// Package loadgen is the platform's API clients, simulated:
//
//   - Start sends steady GET traffic with vegeta and counts every answer by
//     outcome and by the version that served it (X-Rollbook-Version);
//   - StartMixed sends what real callers send: reads, writes with an
//     Idempotency-Key (retried with the same key when they fail, as a client
//     library would) and a few writes without one (never retried), counts
//     client errors by kind and records every acknowledged write (key, id,
//     body) for internal/writecheck to look for in the database afterwards.
//
// The demo, the benchmark, the crash campaign and the e2e tests measure
// "imperceptible" with it.
package loadgen

import (
	"maps"
	"net/http"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Counts are what the clients saw.
type Counts struct {
	Requests  int64
	Errors    int64            // non-2xx, connection errors, timeouts
	ByVersion map[string]int64 // X-Rollbook-Version of the answers
	Latencies []time.Duration  // only when kept
}

// Minus returns the counts since o (without latencies).
func (c Counts) Minus(o Counts) Counts {
	d := Counts{Requests: c.Requests - o.Requests, Errors: c.Errors - o.Errors, ByVersion: map[string]int64{}}
	for k, v := range c.ByVersion {
		d.ByVersion[k] = v - o.ByVersion[k]
	}
	return d
}

// Load sends GET requests at a constant rate with vegeta.
type Load struct {
	atk     *vegeta.Attacker
	started time.Time

	mu         sync.Mutex
	counts     Counts
	taken      Counts
	keepLat    bool
	errSamples []string
	done       chan struct{}
}

// Start begins the load: rps GET requests per second to url, with a 5 s
// timeout each. keepLatencies keeps every request's latency in the counts.
func Start(url string, rps int, keepLatencies bool) *Load {
	l := &Load{
		atk: vegeta.NewAttacker(
			vegeta.Timeout(5*time.Second),
			vegeta.KeepAlive(true),
			vegeta.MaxBody(0),
			vegeta.Workers(16),
		),
		started: time.Now(),
		counts:  Counts{ByVersion: map[string]int64{}},
		keepLat: keepLatencies,
		done:    make(chan struct{}),
	}
	tgt := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: url})
	res := l.atk.Attack(tgt, vegeta.Rate{Freq: rps, Per: time.Second}, 0, "rollbook-load")
	go func() {
		defer close(l.done)
		for r := range res {
			l.mu.Lock()
			l.counts.Requests++
			if r.Error != "" || r.Code < 200 || r.Code >= 300 {
				l.counts.Errors++
				if len(l.errSamples) < 5 {
					l.errSamples = append(l.errSamples, r.Timestamp.Format("15:04:05.000")+" "+r.Error)
				}
			}
			if v := r.Headers.Get("X-Rollbook-Version"); v != "" {
				l.counts.ByVersion[v]++
			}
			if l.keepLat {
				l.counts.Latencies = append(l.counts.Latencies, r.Latency)
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// Snapshot returns the counts so far (without latencies).
func (l *Load) Snapshot() Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Counts{Requests: l.counts.Requests, Errors: l.counts.Errors, ByVersion: maps.Clone(l.counts.ByVersion)}
}

// Take returns the counts since the previous Take (or the start).
func (l *Load) Take() Counts {
	now := l.Snapshot()
	l.mu.Lock()
	defer l.mu.Unlock()
	d := now.Minus(l.taken)
	l.taken = now
	return d
}

// Stop ends the attack, waits for the answers in flight and returns the
// totals, the elapsed time and a few error samples. Stopping twice is safe.
func (l *Load) Stop() (Counts, time.Duration, []string) {
	l.atk.Stop()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts, time.Since(l.started), l.errSamples
}
