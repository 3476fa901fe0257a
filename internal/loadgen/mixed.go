package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Mix configures StartMixed.
type Mix struct {
	// BaseURL is the API's address (the HAProxy frontend); requests go to
	// BaseURL+"/api/payments".
	BaseURL string
	// Rate is the requests per second, all kinds together (default 100).
	Rate int
	// WriteShare is the fraction of requests that are writes (default 0.3); UnkeyedShare the
	// fraction of writes sent without an Idempotency-Key (default 0.1). Shares are spread
	// evenly, not drawn at random, so runs are repeatable.
	WriteShare, UnkeyedShare float64
	// Retries is how often a client retries a keyed write that failed (5xx, connection error,
	// timeout), with the same key and body, as a real client would (default 3; negative:
	// never, to see what the gateway alone hides). Unkeyed writes and reads are never retried
	// by the client.
	Retries int
	// RetryBackoff is the wait before the first retry, doubled each time (default 100 ms).
	RetryBackoff time.Duration
	// Timeout bounds each attempt (default 5 s).
	Timeout time.Duration
	// Workers bounds the requests in flight (default 32); a tick that finds them all busy is
	// counted as Skipped.
	Workers int
}

// Payment is the body of a write, as the caller sent it.
type Payment struct {
	AccountID   string `json:"accountId"`
	AmountCents int64  `json:"amountCents"`
	Currency    string `json:"currency"`
	Reference   string `json:"reference"`
}

// Ack is a write the API acknowledged (2xx): what the caller was told succeeded.
type Ack struct {
	Key      string    `json:"key,omitempty"` // empty for a write without Idempotency-Key
	ID       string    `json:"id"`            // the payment id in the answer
	Body     Payment   `json:"body"`
	Version  string    `json:"version"`  // the version that wrote it (writtenBy)
	Ledger   bool      `json:"ledger"`   // the answer says a ledger entry was booked
	Event    bool      `json:"event"`    // the answer says a payment_events row was written
	Attempts int       `json:"attempts"` // 1 + the client's retries
	Replayed bool      `json:"replayed"` // answered from the idempotency store
	At       time.Time `json:"at"`
}

// KindCounts are what the clients saw for one kind of request. Sent counts logical requests
// (a keyed write retried 3 times is one); Errors those that ended without a 2xx.
type KindCounts struct {
	Sent    int64 `json:"sent"`
	Errors  int64 `json:"errors"`
	Retried int64 `json:"retried"` // keyed writes the client had to retry
}

// MixedCounts are the counts by kind.
type MixedCounts struct {
	Reads   KindCounts `json:"reads"`
	Keyed   KindCounts `json:"keyedWrites"`
	Unkeyed KindCounts `json:"unkeyedWrites"`
	Skipped int64      `json:"skipped"` // ticks dropped because every worker was busy
}

// Errors is the total of client errors.
func (c MixedCounts) Errors() int64 { return c.Reads.Errors + c.Keyed.Errors + c.Unkeyed.Errors }

// MixedReport is the result of a mixed load.
type MixedReport struct {
	Counts     MixedCounts   `json:"counts"`
	Acks       []Ack         `json:"-"`
	Duration   time.Duration `json:"duration"`
	ErrSamples []string      `json:"errSamples,omitempty"`
}

// MixedLoad sends reads and writes the way the platform's API clients would.
type MixedLoad struct {
	mix     Mix
	client  *http.Client
	run     string // prefix of keys and references, unique per load
	started time.Time
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu         sync.Mutex
	counts     MixedCounts
	acks       []Ack
	errSamples []string
}

// StartMixed begins a mixed load. Stop it with Stop.
func StartMixed(m Mix) *MixedLoad {
	if m.Rate <= 0 {
		m.Rate = 100
	}
	if m.WriteShare == 0 {
		m.WriteShare = 0.3
	}
	if m.UnkeyedShare == 0 {
		m.UnkeyedShare = 0.1
	}
	if m.Retries == 0 {
		m.Retries = 3
	}
	if m.RetryBackoff == 0 {
		m.RetryBackoff = 100 * time.Millisecond
	}
	if m.Timeout == 0 {
		m.Timeout = 5 * time.Second
	}
	if m.Workers == 0 {
		m.Workers = 32
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ctx, cancel := context.WithCancel(context.Background())
	l := &MixedLoad{
		mix:     m,
		client:  &http.Client{Timeout: m.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: m.Workers, MaxConnsPerHost: m.Workers + 8}},
		run:     "lg-" + hex.EncodeToString(b),
		started: time.Now(),
		cancel:  cancel,
	}
	jobs := make(chan int64)
	for range m.Workers {
		l.wg.Go(func() {
			// Not ctx: Stop ends the ticks, but a request in flight (and its retries, each
			// bounded by Timeout) runs to its end, so that an acknowledged write is recorded
			// rather than cut off and miscounted as a client error.
			for n := range jobs {
				l.one(context.Background(), n)
			}
		})
	}
	l.wg.Go(func() {
		defer close(jobs)
		tick := time.NewTicker(time.Second / time.Duration(m.Rate))
		defer tick.Stop()
		for n := int64(0); ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case jobs <- n:
			default:
				l.mu.Lock()
				l.counts.Skipped++
				l.mu.Unlock()
			}
		}
	})
	return l
}

// every reports whether request n is one of a share spread evenly over the requests.
func every(n int64, share float64) bool {
	return int64(float64(n+1)*share) > int64(float64(n)*share)
}

func (l *MixedLoad) one(ctx context.Context, n int64) {
	if !every(n, l.mix.WriteShare) {
		l.read(ctx, n)
		return
	}
	w := int64(float64(n) * l.mix.WriteShare) // index among writes
	keyed := !every(w, l.mix.UnkeyedShare)
	p := Payment{
		AccountID:   "acct_" + strconv.FormatInt(n%50, 10),
		AmountCents: 100 + n%9900,
		Currency:    []string{"EUR", "USD", "GBP"}[n%3],
		Reference:   fmt.Sprintf("%s-%d", l.run, n),
	}
	key := ""
	if keyed {
		key = fmt.Sprintf("%s-key-%d", l.run, n)
	}
	l.write(ctx, key, p)
}

// read alternates between the list and the latest acknowledged payment.
func (l *MixedLoad) read(ctx context.Context, n int64) {
	url := l.mix.BaseURL + "/api/payments?limit=5"
	if n%2 == 1 {
		l.mu.Lock()
		if len(l.acks) > 0 {
			url = l.mix.BaseURL + "/api/payments/" + l.acks[len(l.acks)-1].ID
		}
		l.mu.Unlock()
	}
	code, _, _, err := l.do(ctx, http.MethodGet, url, "", nil)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts.Reads.Sent++
	if err != nil || code/100 != 2 {
		l.counts.Reads.Errors++
		l.sample("GET", url, code, err)
	}
}

type createAnswer struct {
	Payment struct {
		ID           string `json:"id"`
		WrittenBy    string `json:"writtenBy"`
		LedgerEntry  bool   `json:"ledgerEntry"`
		PaymentEvent bool   `json:"paymentEvent"`
	} `json:"payment"`
}

func (l *MixedLoad) write(ctx context.Context, key string, p Payment) {
	body, _ := json.Marshal(p)
	attempts := 1
	if key != "" && l.mix.Retries > 0 {
		attempts += l.mix.Retries
	}
	var (
		code     int
		resp     []byte
		replayed bool
		err      error
		tries    int
	)
	backoff := l.mix.RetryBackoff
	for tries = 1; tries <= attempts; tries++ {
		code, resp, replayed, err = l.do(ctx, http.MethodPost, l.mix.BaseURL+"/api/payments", key, body)
		// 4xx is the caller's mistake (or a key reused with another body): retrying the
		// same request cannot help.
		if err == nil && code < 500 {
			break
		}
		if tries == attempts || ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff *= 2
	}
	kind := &l.counts.Unkeyed
	if key != "" {
		kind = &l.counts.Keyed
	}
	var ans createAnswer
	ok := err == nil && code/100 == 2 && json.Unmarshal(resp, &ans) == nil && ans.Payment.ID != ""
	l.mu.Lock()
	defer l.mu.Unlock()
	kind.Sent++
	if tries > 1 {
		kind.Retried++
	}
	if !ok {
		kind.Errors++
		l.sample("POST", key, code, err)
		return
	}
	l.acks = append(l.acks, Ack{
		Key: key, ID: ans.Payment.ID, Body: p, Version: ans.Payment.WrittenBy, Ledger: ans.Payment.LedgerEntry, Event: ans.Payment.PaymentEvent,
		Attempts: min(tries, attempts), Replayed: replayed, At: time.Now(),
	})
}

func (l *MixedLoad) do(ctx context.Context, method, url, key string, body []byte) (int, []byte, bool, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, false, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, resp.Header.Get("Idempotent-Replayed") == "true", err
}

// sample keeps a few error descriptions; l.mu is held.
func (l *MixedLoad) sample(method, what string, code int, err error) {
	if len(l.errSamples) >= 10 {
		return
	}
	s := fmt.Sprintf("%s %s %s: status %d", time.Now().Format("15:04:05.000"), method, what, code)
	if err != nil {
		s += ": " + err.Error()
	}
	l.errSamples = append(l.errSamples, s)
}

// Counts returns the counts so far.
func (l *MixedLoad) Counts() MixedCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts
}

// Stop ends the load, waits for the requests in flight (retries included, each bounded by
// Timeout) and returns what the clients saw. Stopping twice returns the same report.
func (l *MixedLoad) Stop() MixedReport {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return MixedReport{Counts: l.counts, Acks: append([]Ack(nil), l.acks...), Duration: time.Since(l.started), ErrSamples: append([]string(nil), l.errSamples...)}
}
