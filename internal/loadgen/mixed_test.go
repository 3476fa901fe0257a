package loadgen

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// flaky answers every first attempt of a write with 500 and the second with 201; reads
// always succeed. It records the requests it saw.
type flaky struct {
	mu       sync.Mutex
	attempts map[string]int // by reference
	keys     map[string]string
	reads    int
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodGet {
		f.reads++
		w.WriteHeader(200)
		return
	}
	var p Payment
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		w.WriteHeader(400)
		return
	}
	f.attempts[p.Reference]++
	f.keys[p.Reference] = r.Header.Get("Idempotency-Key")
	if f.attempts[p.Reference] == 1 {
		w.WriteHeader(500)
		return
	}
	w.WriteHeader(201)
	fmt.Fprintf(w, `{"version":"v2","payment":{"id":"pay_%s","writtenBy":"v2","ledgerEntry":true,"paymentEvent":true}}`, p.Reference)
}

func TestMixedRetriesKeyedWritesOnlyAndRecordsAcks(t *testing.T) {
	f := &flaky{attempts: map[string]int{}, keys: map[string]string{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	l := StartMixed(Mix{BaseURL: srv.URL, Rate: 200, WriteShare: 0.5, UnkeyedShare: 0.25, RetryBackoff: time.Millisecond})
	time.Sleep(time.Second)
	rep := l.Stop()
	c := rep.Counts

	require.Greater(t, c.Keyed.Sent, int64(20), "%+v", c)
	require.Greater(t, c.Unkeyed.Sent, int64(5), "%+v", c)
	// Every keyed write failed once and was retried with the same key: all acknowledged.
	assert.Zero(t, c.Keyed.Errors)
	assert.Equal(t, c.Keyed.Sent, c.Keyed.Retried)
	// Unkeyed writes are never retried: every one failed.
	assert.Equal(t, c.Unkeyed.Sent, c.Unkeyed.Errors)
	assert.Zero(t, c.Unkeyed.Retried)
	assert.Zero(t, c.Reads.Errors)
	// The shares hold per cycle of 8 requests (4 reads, 3 keyed writes, 1
	// without a key); Stop may cut one cycle short, and requests in flight
	// finish in any order: one cycle's worth of slack, no more.
	assert.InDelta(t, float64(c.Reads.Sent), float64(c.Keyed.Sent+c.Unkeyed.Sent), 4, "half reads")
	assert.InDelta(t, 3*float64(c.Unkeyed.Sent), float64(c.Keyed.Sent), 3, "a quarter of the writes without a key")

	require.Len(t, rep.Acks, int(c.Keyed.Sent))
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range rep.Acks {
		assert.Equal(t, "pay_"+a.Body.Reference, a.ID)
		assert.Equal(t, 2, a.Attempts)
		assert.True(t, a.Ledger)
		assert.True(t, a.Event)
		assert.Equal(t, "v2", a.Version)
		assert.Equal(t, a.Key, f.keys[a.Body.Reference], "the retry carries the same key")
		assert.Equal(t, 2, f.attempts[a.Body.Reference])
		assert.True(t, strings.HasPrefix(a.Key, "lg-"), a.Key)
		assert.NotEmpty(t, a.Body.Currency)
		assert.Positive(t, a.Body.AmountCents)
	}
	for ref, n := range f.attempts {
		if f.keys[ref] == "" {
			assert.Equal(t, 1, n, "an unkeyed write is sent once: %s", ref)
		}
	}
	assert.Equal(t, rep.Counts, l.Stop().Counts, "stopping twice")
}
