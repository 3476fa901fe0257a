package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/pgtest"
)

// One throwaway PostgreSQL for the package; each test gets an empty version-0 schema.
var (
	dbOnce sync.Once
	dbDSN  string
)

// newDB returns a pool on a database reset to the platform's base schema (version 0).
func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	dbOnce.Do(func() { dbDSN = pgtest.Start(&onceTB{t}) })
	if dbDSN == "" {
		t.Fatal("no test database (see the first test's log)")
	}
	require.NoError(t, devstack.ResetDemoSchema(context.Background(), dbDSN))
	db, err := pgxpool.New(context.Background(), dbDSN)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

// onceTB lets the package's database outlive the first test that starts it: its cleanups
// run when the test binary exits (TestMain below), not when that test ends.
type onceTB struct{ *testing.T }

var cleanups []func()

func (o *onceTB) Cleanup(f func()) { cleanups = append(cleanups, f) }

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}

// migrate runs the Up sections of the payments-api expand migrations (what rollbook's
// expand-schema step does), up to and including file n.
func migrate(t *testing.T, db *pgxpool.Pool, n int) {
	t.Helper()
	files, err := filepath.Glob("../../runbooks/payments-api/migrations/*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for i, f := range files {
		if i >= n {
			break
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		up, _, _ := strings.Cut(string(b), "-- +goose Down")
		_, err = db.Exec(context.Background(), up)
		require.NoError(t, err, f)
	}
}

func do(t *testing.T, h http.Handler, method, target, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func count(t *testing.T, db *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

const body1 = `{"accountId":"acct_1","amountCents":1250,"currency":"EUR","reference":"order-1"}`

func created(t *testing.T, w *httptest.ResponseRecorder) createResponse {
	t.Helper()
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	var c createResponse
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &c))
	return c
}

func TestPaymentsReportsVersion(t *testing.T) {
	h := newServer("v2", "canary", newDB(t)).routes()
	w := do(t, h, "GET", "/api/payments", "")
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var got struct{ Version, Instance string }
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != "v2" || got.Instance != "canary" || w.Header().Get("X-Rollbook-Version") != "v2" {
		t.Fatalf("got %+v, header %q", got, w.Header().Get("X-Rollbook-Version"))
	}
}

func TestCreateGetAndList(t *testing.T) {
	db := newDB(t)
	h := newServer("v1", "stable", db).routes()
	c := created(t, do(t, h, "POST", "/api/payments", body1))
	assert.Equal(t, "v1", c.Payment.WrittenBy)
	assert.Equal(t, "order-1", c.Payment.Reference)
	assert.True(t, strings.HasPrefix(c.Payment.ID, "pay_"), c.Payment.ID)

	w := do(t, h, "GET", "/api/payments/"+c.Payment.ID, "")
	require.Equal(t, 200, w.Code, w.Body.String())
	var got struct{ Payment payment }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	assert.Equal(t, c.Payment.ID, got.Payment.ID)
	assert.EqualValues(t, 1250, got.Payment.AmountCents)
	assert.Equal(t, "order-1", got.Payment.Reference)

	assert.Equal(t, 404, do(t, h, "GET", "/api/payments/pay_nope", "").Code)

	for range 3 {
		created(t, do(t, h, "POST", "/api/payments", body1))
	}
	w = do(t, h, "GET", "/api/payments?limit=2", "")
	require.Equal(t, 200, w.Code)
	var list struct{ Payments []payment }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
	assert.Len(t, list.Payments, 2, "the list is bounded by limit")
	assert.Equal(t, 400, do(t, h, "GET", "/api/payments?limit=1000", "").Code)
	assert.Equal(t, 4, count(t, db, `SELECT count(*) FROM payments`), "without a key, every POST is a new payment")
}

func TestBadRequestsStoreNothing(t *testing.T) {
	db := newDB(t)
	h := newServer("v1", "stable", db).routes()
	for _, b := range []string{
		`{`,
		`{"accountId":"a","amountCents":1,"currency":"EUR","extra":1}`,
		`{"accountId":"","amountCents":1,"currency":"EUR"}`,
		`{"accountId":"a","amountCents":0,"currency":"EUR"}`,
		`{"accountId":"a","amountCents":1,"currency":"eur"}`,
		`{"accountId":"a","amountCents":1,"currency":"EUR","reference":"` + strings.Repeat("x", 129) + `"}`,
	} {
		w := do(t, h, "POST", "/api/payments", b, HeaderIdempotencyKey, "k-bad")
		assert.Equal(t, 400, w.Code, "%s: %s", b, w.Body)
	}
	assert.Equal(t, 400, do(t, h, "POST", "/api/payments", body1, HeaderIdempotencyKey, strings.Repeat("k", 256)).Code)
	assert.Zero(t, count(t, db, `SELECT count(*) FROM payments`))
	assert.Zero(t, count(t, db, `SELECT count(*) FROM idempotency_keys`))
}

func TestIdempotencyKeyReplaysTheStoredAnswer(t *testing.T) {
	db := newDB(t)
	migrate(t, db, 3)
	v1 := newServer("v1", "stable", db).routes()
	v2 := newServer("v2", "canary", db).routes()
	w1 := do(t, v1, "POST", "/api/payments", body1, HeaderIdempotencyKey, "key-1")
	first := created(t, w1)
	// The retry lands on the other version: the key lives in the shared database.
	w2 := do(t, v2, "POST", "/api/payments", body1, HeaderIdempotencyKey, "key-1")
	second := created(t, w2)
	assert.Equal(t, first, second, "the stored answer, not a new payment")
	assert.Equal(t, w1.Body.String(), w2.Body.String())
	assert.Equal(t, "true", w2.Header().Get("Idempotent-Replayed"))
	assert.Empty(t, w1.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payments`))

	// Same key, another request: refused, nothing changes.
	w3 := do(t, v2, "POST", "/api/payments", strings.Replace(body1, "1250", "1251", 1), HeaderIdempotencyKey, "key-1")
	assert.Equal(t, http.StatusUnprocessableEntity, w3.Code, w3.Body.String())
	assert.Contains(t, w3.Body.String(), `key-1`)
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payments`))
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM idempotency_keys WHERE payment_id = $1`, first.Payment.ID))
}

func TestConcurrentRepeatsMakeOnePayment(t *testing.T) {
	db := newDB(t)
	servers := []http.Handler{newServer("v1", "stable", db).routes(), newServer("v2", "canary", db).routes()}
	var wg sync.WaitGroup
	ids := make([]string, 16)
	for i := range ids {
		wg.Go(func() {
			w := do(t, servers[i%2], "POST", "/api/payments", body1, HeaderIdempotencyKey, "key-race")
			if w.Code == http.StatusCreated {
				var c createResponse
				_ = json.Unmarshal(w.Body.Bytes(), &c)
				ids[i] = c.Payment.ID
			}
		})
	}
	wg.Wait()
	for i, id := range ids {
		assert.Equal(t, ids[0], id, "answer %d", i)
	}
	assert.NotEmpty(t, ids[0])
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payments`))
}

func TestVersionsWriteDifferentlyOnEachOthersSchema(t *testing.T) {
	db := newDB(t)
	v1 := newServer("v1", "stable", db).routes()
	v2 := newServer("v2", "canary", db).routes()

	// Version 0: v2 writes like v1 (no external_reference, no ledger_entries yet).
	p := created(t, do(t, v2, "POST", "/api/payments", body1)).Payment
	assert.False(t, p.LedgerEntry)
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payments WHERE id = $1 AND memo = 'order-1'`, p.ID))

	// Expanded: v2 fills external_reference and books a ledger entry; v1 fills memo.
	migrate(t, db, 3)
	p2 := created(t, do(t, v2, "POST", "/api/payments", body1)).Payment
	assert.True(t, p2.LedgerEntry)
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payments WHERE id = $1 AND external_reference = 'order-1' AND memo IS NULL`, p2.ID))
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM ledger_entries WHERE payment_id = $1 AND amount_cents = 1250`, p2.ID))
	p1 := created(t, do(t, v1, "POST", "/api/payments", body1)).Payment
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payments WHERE id = $1 AND memo = 'order-1' AND external_reference IS NULL`, p1.ID))

	// Both read what the other wrote.
	for _, h := range []http.Handler{v1, v2} {
		for _, id := range []string{p.ID, p1.ID, p2.ID} {
			w := do(t, h, "GET", "/api/payments/"+id, "")
			require.Equal(t, 200, w.Code, w.Body.String())
			assert.Contains(t, w.Body.String(), `"reference":"order-1"`)
		}
	}

	// Contracted: memo moved to external_reference and dropped; reads still find it.
	b, err := os.ReadFile("../../runbooks/payments-api/contract/00004_drop_ledger_memo.sql")
	require.NoError(t, err)
	_, err = db.Exec(context.Background(), string(b))
	require.NoError(t, err)
	w := do(t, v2, "GET", "/api/payments/"+p1.ID, "")
	require.Equal(t, 200, w.Code, w.Body.String())
	assert.Contains(t, w.Body.String(), `"reference":"order-1"`)
	created(t, do(t, v2, "POST", "/api/payments", body1))
}

func TestWriteFailureBeforeCommitStoresNothing(t *testing.T) {
	db := newDB(t)
	h := newServer("v2", "canary", db).routes()
	require.Equal(t, 200, do(t, h, "POST", "/admin/bad", `{"errorRate":1,"writeFailure":"before-commit"}`).Code)
	w := do(t, h, "POST", "/api/payments", body1, HeaderIdempotencyKey, "k1")
	assert.Equal(t, 500, w.Code)
	assert.Contains(t, w.Body.String(), "before commit")
	assert.Zero(t, count(t, db, `SELECT count(*) FROM payments`))
	assert.Zero(t, count(t, db, `SELECT count(*) FROM idempotency_keys`))
	// Reads fail early in bad mode too.
	assert.Equal(t, 500, do(t, h, "GET", "/api/payments", "").Code)
}

func TestWriteFailureAfterCommitStoresAndTheRetryReplays(t *testing.T) {
	db := newDB(t)
	bad := newServer("v2", "canary", db).routes()
	good := newServer("v1", "stable", db).routes()
	require.Equal(t, 200, do(t, bad, "POST", "/admin/bad?errorRate=1&writeFailure=after-commit", "").Code)
	w := do(t, bad, "POST", "/api/payments", body1, HeaderIdempotencyKey, "k-after")
	assert.Equal(t, 500, w.Code)
	assert.Contains(t, w.Body.String(), "after commit")
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payments`), "committed before the 500")

	// The client (or HAProxy) retries with the same key on the healthy server: the stored
	// answer, no second payment.
	w2 := do(t, good, "POST", "/api/payments", body1, HeaderIdempotencyKey, "k-after")
	c := created(t, w2)
	assert.Equal(t, "true", w2.Header().Get("Idempotent-Replayed"))
	assert.Equal(t, "v2", c.Payment.WrittenBy, "the answer of the attempt that stored it")
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payments`))
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payments WHERE id = $1`, c.Payment.ID))

	// Without a key, the same failure leaves a payment the caller was told failed.
	assert.Equal(t, 500, do(t, bad, "POST", "/api/payments", body1).Code)
	assert.Equal(t, 2, count(t, db, `SELECT count(*) FROM payments`))
}

func TestWriteFailureBothAlternates(t *testing.T) {
	db := newDB(t)
	h := newServer("v1", "canary", db).routes()
	require.Equal(t, 200, do(t, h, "POST", "/admin/bad", `{"errorRate":0.5,"writeFailure":"both"}`).Code)
	var codes []int
	for i := range 8 {
		codes = append(codes, do(t, h, "POST", "/api/payments", body1, HeaderIdempotencyKey, fmt.Sprintf("k%d", i)).Code)
	}
	assert.Equal(t, []int{201, 500, 201, 500, 201, 500, 201, 500}, codes)
	// 4 succeeded, 4 failed: 2 before the commit (nothing), 2 after it (stored).
	assert.Equal(t, 6, count(t, db, `SELECT count(*) FROM payments`))
	assert.Equal(t, 6, count(t, db, `SELECT count(*) FROM idempotency_keys`))
}

func TestBadModeFailsExactlyTheRate(t *testing.T) {
	h := newServer("v2", "canary", newDB(t)).routes()
	if w := do(t, h, "POST", "/admin/bad", `{"errorRate":0.25}`); w.Code != 200 {
		t.Fatalf("admin/bad: %d %s", w.Code, w.Body)
	}
	failed := 0
	for range 100 {
		if do(t, h, "GET", "/api/payments", "").Code == 500 {
			failed++
		}
	}
	if failed != 25 {
		t.Fatalf("failed %d of 100, want 25", failed)
	}
	if w := do(t, h, "GET", "/healthz", ""); w.Code != 200 {
		t.Fatalf("healthz in bad mode: %d", w.Code)
	}
	do(t, h, "POST", "/admin/good", "")
	for range 10 {
		if c := do(t, h, "GET", "/api/payments", "").Code; c != 200 {
			t.Fatalf("after good: %d", c)
		}
	}
}

func TestBadModeQueryParamsAndLatency(t *testing.T) {
	h := newServer("v1", "stable", newDB(t)).routes()
	if w := do(t, h, "POST", "/admin/bad?latencyMs=30", ""); w.Code != 200 {
		t.Fatalf("admin/bad: %d %s", w.Code, w.Body)
	}
	start := time.Now()
	if c := do(t, h, "GET", "/api/payments", "").Code; c != 200 {
		t.Fatalf("latency only must not fail, got %d", c)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("not delayed: %v", d)
	}
	if w := do(t, h, "POST", "/admin/bad", ""); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if c := do(t, h, "GET", "/api/payments", "").Code; c != 500 {
		t.Fatalf("bad with no parameters fails every request, got %d", c)
	}
}

func TestBadModeRejectsNonsense(t *testing.T) {
	h := newServer("v1", "", nil).routes()
	for _, body := range []string{`{"errorRate":2}`, `{"latencyMs":-1}`, `{"nope":1}`, `{`, `{"writeFailure":"sometimes"}`} {
		if w := do(t, h, "POST", "/admin/bad", body); w.Code != 400 {
			t.Errorf("%s: status %d, want 400", body, w.Code)
		}
	}
	if w := do(t, h, "POST", "/admin/bad?errorRate=x", ""); w.Code != 400 {
		t.Errorf("errorRate=x: %d", w.Code)
	}
	w := do(t, h, "GET", "/admin/state", "")
	assert.Contains(t, w.Body.String(), `"bad":false`, "a refused mode changes nothing")
}

// TestMetrics: requests and their latency by method, route (the pattern, not the id) and
// code, with the version on every series, which the runbook's PromQL checks and the alert
// rules query.
func TestMetrics(t *testing.T) {
	h := newServer("v1", "stable", newDB(t)).routes()
	do(t, h, "GET", "/api/payments", "")
	do(t, h, "GET", "/api/payments/12345", "")
	do(t, h, "POST", "/admin/bad?errorRate=1&latencyMs=30", "")
	do(t, h, "GET", "/api/payments", "")
	w := do(t, h, "GET", "/metrics", "")
	require.Equal(t, 200, w.Code)
	body := w.Body.String()
	for _, want := range []string{
		`demoapi_http_requests_total{code="200",method="GET",route="/api/payments",version="v1"} 1`,
		`demoapi_http_requests_total{code="500",method="GET",route="/api/payments",version="v1"} 1`,
		`demoapi_http_requests_total{code="404",method="GET",route="/api/payments/{id}",version="v1"} 1`,
		`demoapi_http_request_duration_seconds_count{code="500",method="GET",route="/api/payments",version="v1"} 1`,
		// the injected 30 ms delay is in the latency: not in the 25 ms bucket, in the 50 ms one
		`demoapi_http_request_duration_seconds_bucket{code="500",method="GET",route="/api/payments",version="v1",le="0.025"} 0`,
		`demoapi_http_request_duration_seconds_bucket{code="500",method="GET",route="/api/payments",version="v1",le="0.05"} 1`,
		`demoapi_build_info{instance="stable",version="v1"} 1`,
	} {
		assert.Contains(t, body, want)
	}
}

// A version can be bad from its start: the flags a release chooses (-error-rate,
// -write-failure) set the mode before the first request; /healthz is unaffected, so the
// release's health check passes and only rollbook's verification sees the errors.
func TestModeFromReleaseFlags(t *testing.T) {
	db := newDB(t)
	m := mode{Bad: true, ErrorRate: 0.5, WriteFailure: failBeforeCommit}
	require.NoError(t, m.check())
	s := newServer("v3", "canary", db)
	s.setMode(m)
	h := s.routes()
	codes := map[int]int{}
	for range 4 {
		codes[do(t, h, "GET", "/api/payments", "").Code]++
	}
	assert.Equal(t, map[int]int{200: 2, 500: 2}, codes, "exactly half of the reads fail")
	assert.Equal(t, 200, do(t, h, "GET", "/healthz", "").Code)
	w := do(t, h, "GET", "/admin/state", "")
	assert.Contains(t, w.Body.String(), `"errorRate":0.5`)

	for _, bad := range []mode{{ErrorRate: 1.5}, {LatencyMs: -1}, {WriteFailure: "sometimes"}} {
		assert.Error(t, bad.check(), "%+v", bad)
	}
}

// applySQL runs one section ("Up" or "Down") of a goose migration file.
func applySQL(t *testing.T, db *pgxpool.Pool, file, section string) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	up, down, ok := strings.Cut(string(b), "-- +goose Down")
	require.True(t, ok, "%s has no Down section", file)
	sql := strings.Replace(up, "-- +goose Up", "", 1)
	if section == "Down" {
		sql = down
	}
	_, err = db.Exec(context.Background(), sql)
	require.NoError(t, err, "%s %s", file, section)
}

// v3 (released with -payment-events) records each payment it creates in payment_events,
// the table its own migration 00005 brings; before that migration and after its Down it
// writes like v2, and v2 works on both schemas without touching the table.
func TestPaymentEventsOnEitherSchema(t *testing.T) {
	const events = "../demo/v3-release/payments-api/migrations/00005_create_payment_events.sql"
	db := newDB(t)
	migrate(t, db, 3)
	s3 := newServer("v3", "canary", db)
	s3.paymentEvents = true
	v3 := s3.routes()
	v2 := newServer("v2", "stable", db).routes()

	// Schema without 00005: v3 stores the payment (and its ledger entry), no event.
	p := created(t, do(t, v3, "POST", "/api/payments", body1, HeaderIdempotencyKey, "k-before")).Payment
	assert.False(t, p.PaymentEvent)
	assert.True(t, p.LedgerEntry)
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payments WHERE id = $1 AND external_reference = 'order-1'`, p.ID))

	applySQL(t, db, events, "Up")
	w := do(t, v3, "POST", "/api/payments", body1, HeaderIdempotencyKey, "k-v3")
	p3 := created(t, w).Payment
	assert.True(t, p3.PaymentEvent)
	assert.Equal(t, "v3", p3.WrittenBy)
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payment_events WHERE payment_id = $1 AND event = 'created' AND amount_cents = 1250 AND currency = 'EUR' AND written_by = 'v3'`, p3.ID))
	p2 := created(t, do(t, v2, "POST", "/api/payments", body1)).Payment
	assert.False(t, p2.PaymentEvent)
	assert.True(t, p2.LedgerEntry, "v2 writes as before on the schema with payment_events")
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payment_events`), "v2 writes no event")
	// v2 replays v3's stored answer (a retry that HAProxy sent to the other server).
	r := do(t, v2, "POST", "/api/payments", body1, HeaderIdempotencyKey, "k-v3")
	assert.Equal(t, w.Body.String(), r.Body.String())

	// A failed write leaves no event: the event is in the payment's transaction.
	s3.setMode(mode{Bad: true, ErrorRate: 1, WriteFailure: failBeforeCommit})
	assert.Equal(t, 500, do(t, v3, "POST", "/api/payments", body1, HeaderIdempotencyKey, "k-fail").Code)
	assert.Equal(t, 1, count(t, db, `SELECT count(*) FROM payment_events`))
	s3.setMode(mode{})

	// After the migration's Down (a rollback), both versions still write.
	applySQL(t, db, events, "Down")
	assert.False(t, created(t, do(t, v3, "POST", "/api/payments", body1)).Payment.PaymentEvent)
	created(t, do(t, v2, "POST", "/api/payments", body1))
	assert.Equal(t, 5, count(t, db, `SELECT count(*) FROM payments`))
}
