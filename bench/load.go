package main

import (
	"net/http"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// loadCounts are what the clients saw.
type loadCounts struct {
	Requests  int64
	Errors    int64            // non-2xx, connection errors, timeouts
	ByVersion map[string]int64 // X-Rollbook-Version of the answers
	Latencies []time.Duration  // only when kept
}

func (c loadCounts) minus(o loadCounts) loadCounts {
	d := loadCounts{Requests: c.Requests - o.Requests, Errors: c.Errors - o.Errors, ByVersion: map[string]int64{}}
	for k, v := range c.ByVersion {
		d.ByVersion[k] = v - o.ByVersion[k]
	}
	return d
}

// load sends GET requests at a constant rate with vegeta and counts every
// answer by outcome and by the version that served it.
type load struct {
	atk     *vegeta.Attacker
	started time.Time

	mu         sync.Mutex
	counts     loadCounts
	keepLat    bool
	errSamples []string
	done       chan struct{}
}

func startLoad(url string, rps int, keepLatencies bool) *load {
	l := &load{
		atk: vegeta.NewAttacker(
			vegeta.Timeout(5*time.Second),
			vegeta.KeepAlive(true),
			vegeta.MaxBody(0),
			vegeta.Workers(16),
		),
		started: time.Now(),
		counts:  loadCounts{ByVersion: map[string]int64{}},
		keepLat: keepLatencies,
		done:    make(chan struct{}),
	}
	tgt := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: url})
	res := l.atk.Attack(tgt, vegeta.Rate{Freq: rps, Per: time.Second}, 0, "rollbook-bench")
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

// snapshot returns the counts so far (without latencies).
func (l *load) snapshot() loadCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := loadCounts{Requests: l.counts.Requests, Errors: l.counts.Errors, ByVersion: make(map[string]int64, len(l.counts.ByVersion))}
	for k, v := range l.counts.ByVersion {
		c.ByVersion[k] = v
	}
	return c
}

// stop ends the attack, waits for the answers in flight and returns the
// totals, the elapsed time and a few error samples.
func (l *load) stop() (loadCounts, time.Duration, []string) {
	l.atk.Stop()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts, time.Since(l.started), l.errSamples
}
