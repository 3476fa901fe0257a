package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// HeaderIdempotencyKey is the request header that makes a write safe to retry.
const HeaderIdempotencyKey = "Idempotency-Key"

// headerReplayed marks an answer replayed from the idempotency store (Stripe's name).
const headerReplayed = "Idempotent-Replayed"

const (
	maxKeyLen       = 255 // idempotency_keys.key
	maxReferenceLen = 128 // payments.external_reference (memo takes 256)
	maxListLimit    = 100
)

var currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)

// paymentRequest is the body of POST /api/payments.
type paymentRequest struct {
	AccountID   string `json:"accountId"`
	AmountCents int64  `json:"amountCents"`
	Currency    string `json:"currency"`
	// Reference is the caller's own reference: v1 stores it in memo, v2 in external_reference.
	Reference string `json:"reference,omitempty"`
}

func (p paymentRequest) validate() error {
	switch {
	case p.AccountID == "" || len(p.AccountID) > 64:
		return errors.New("accountId: required, at most 64 characters")
	case p.AmountCents <= 0:
		return errors.New("amountCents: must be a positive integer")
	case !currencyRe.MatchString(p.Currency):
		return fmt.Errorf("currency: %q is not a three-letter ISO 4217 code in capitals", p.Currency)
	case len(p.Reference) > maxReferenceLen:
		return fmt.Errorf("reference: at most %d characters", maxReferenceLen)
	}
	return nil
}

// payment is what the API answers.
type payment struct {
	ID          string    `json:"id"`
	AccountID   string    `json:"accountId"`
	AmountCents int64     `json:"amountCents"`
	Currency    string    `json:"currency"`
	Reference   string    `json:"reference,omitempty"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"createdAt"`
	// WrittenBy, LedgerEntry and PaymentEvent say how the payment was stored: by which
	// version, whether a ledger entry was booked with it (v2 on the expanded schema), and
	// whether a payment_events row was written with it (a version released with
	// -payment-events, on the schema of its migration 00005).
	WrittenBy    string `json:"writtenBy,omitempty"`
	LedgerEntry  bool   `json:"ledgerEntry,omitempty"`
	PaymentEvent bool   `json:"paymentEvent,omitempty"`
}

// createResponse is the body of a 201, stored with the idempotency key and replayed as is.
type createResponse struct {
	Version string  `json:"version"`
	Payment payment `json:"payment"`
}

func (s *server) createPayment(w http.ResponseWriter, r *http.Request, failAt string) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<16))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "reading the body: " + err.Error()})
		return
	}
	var req paymentRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "bad JSON: " + err.Error()})
		return
	}
	if err := req.validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return
	}
	key := r.Header.Get(HeaderIdempotencyKey)
	if len(key) > maxKeyLen {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": fmt.Sprintf("%s: at most %d characters", HeaderIdempotencyKey, maxKeyLen)})
		return
	}
	// The request a key stands for: a repeat of the key must be the same request.
	sum := sha256.Sum256([]byte(r.Method + " " + r.URL.Path + "\n" + string(raw)))
	out, err := s.writePayment(r.Context(), key, hex.EncodeToString(sum[:]), req, failAt)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			writeJSON(w, ae.code, map[string]any{"error": ae.msg, "version": s.version})
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": err.Error(), "version": s.version})
		return
	}
	if out.replayed {
		w.Header().Set(headerReplayed, "true")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(out.code)
	_, _ = w.Write(out.body)
}

// apiError is an answer other than 201 that the handler chose (422, injected 500).
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

type writeOutcome struct {
	code     int
	body     []byte
	replayed bool
}

// writePayment stores a payment and, with a key, the answer to it, in one transaction. A key
// seen before returns the stored answer; the transaction-scoped advisory lock makes a
// concurrent repeat of the key (a client retrying while the first attempt still runs, on
// this server or the other one) wait for the first and then replay its answer.
func (s *server) writePayment(ctx context.Context, key, hash string, req paymentRequest, failAt string) (writeOutcome, error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return writeOutcome{}, fmt.Errorf("database: beginning a transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if key != "" {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, key); err != nil {
			return writeOutcome{}, fmt.Errorf("database: locking idempotency key %q: %w", key, err)
		}
		var storedHash string
		var code int
		var body []byte
		err := tx.QueryRow(ctx, `SELECT request_hash, status_code, response FROM idempotency_keys WHERE key = $1`, key).Scan(&storedHash, &code, &body)
		switch {
		case err == nil && storedHash != hash:
			return writeOutcome{}, &apiError{http.StatusUnprocessableEntity,
				fmt.Sprintf("%s %q was already used with a different request", HeaderIdempotencyKey, key)}
		case err == nil:
			return writeOutcome{code: code, body: body, replayed: true}, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return writeOutcome{}, fmt.Errorf("database: reading idempotency key %q: %w", key, err)
		}
	}

	p := payment{
		ID: "pay_" + uuid.NewString(), AccountID: req.AccountID, AmountCents: req.AmountCents,
		Currency: req.Currency, Reference: req.Reference, Status: "pending", WrittenBy: s.version,
	}
	if err := s.insert(ctx, tx, &p); err != nil {
		return writeOutcome{}, err
	}
	body, err := json.Marshal(createResponse{Version: s.version, Payment: p})
	if err != nil {
		return writeOutcome{}, err
	}
	if key != "" {
		if _, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (key, request_hash, payment_id, status_code, response) VALUES ($1, $2, $3, $4, $5)`,
			key, hash, p.ID, http.StatusCreated, string(body)); err != nil {
			return writeOutcome{}, fmt.Errorf("database: storing idempotency key %q: %w", key, err)
		}
	}
	if failAt == failBeforeCommit {
		return writeOutcome{}, &apiError{http.StatusInternalServerError, "injected failure before commit (bad mode): nothing stored"}
	}
	if err := tx.Commit(ctx); err != nil {
		return writeOutcome{}, fmt.Errorf("database: committing payment %s: %w", p.ID, err)
	}
	if failAt == failAfterCommit {
		return writeOutcome{}, &apiError{http.StatusInternalServerError, "injected failure after commit (bad mode): the payment is stored"}
	}
	return writeOutcome{code: http.StatusCreated, body: body}, nil
}

// insert writes the payment the way this version does. v1 keeps the reference in memo. v2
// keeps it in external_reference and books a ledger entry; where the expand migrations have
// not run (or were rolled back) it writes like v1, inside a savepoint so that the failed
// attempt does not spoil the transaction. A version released with -payment-events also
// records the payment's "created" event, where that table exists.
func (s *server) insert(ctx context.Context, tx pgx.Tx, p *payment) error {
	if err := s.insertPayment(ctx, tx, p); err != nil {
		return err
	}
	if !s.paymentEvents {
		return nil
	}
	return s.insertEvent(ctx, tx, p)
}

func (s *server) insertPayment(ctx context.Context, tx pgx.Tx, p *payment) error {
	if s.version != "v1" {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("database: savepoint: %w", err)
		}
		err = s.insertV2(ctx, sp, p)
		if err == nil {
			if err := sp.Commit(ctx); err != nil {
				return fmt.Errorf("database: releasing savepoint: %w", err)
			}
			p.LedgerEntry = true
			return nil
		}
		_ = sp.Rollback(ctx)
		if !isMissingSchema(err) {
			return err
		}
	}
	if err := tx.QueryRow(ctx, `INSERT INTO payments (id, account_id, amount_cents, currency, memo, status) VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`,
		p.ID, p.AccountID, p.AmountCents, p.Currency, nullable(p.Reference), p.Status).Scan(&p.CreatedAt); err != nil {
		return fmt.Errorf("database: inserting payment %s: %w", p.ID, err)
	}
	return nil
}

func (s *server) insertV2(ctx context.Context, tx pgx.Tx, p *payment) error {
	if err := tx.QueryRow(ctx, `INSERT INTO payments (id, account_id, amount_cents, currency, external_reference, status) VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`,
		p.ID, p.AccountID, p.AmountCents, p.Currency, nullable(p.Reference), p.Status).Scan(&p.CreatedAt); err != nil {
		return fmt.Errorf("database: inserting payment %s: %w", p.ID, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO ledger_entries (payment_id, account_id, amount_cents, currency) VALUES ($1, $2, $3, $4)`,
		p.ID, p.AccountID, p.AmountCents, p.Currency); err != nil {
		return fmt.Errorf("database: booking the ledger entry of payment %s: %w", p.ID, err)
	}
	return nil
}

// insertEvent records the payment's "created" event in payment_events (the next release's
// own migration, 00005), in the payment's transaction. Where the table does not exist
// (before that migration ran, or after a rollback archived and dropped it) the payment is
// stored without it, like the previous version stores it: the savepoint keeps the failed
// attempt from spoiling the transaction.
func (s *server) insertEvent(ctx context.Context, tx pgx.Tx, p *payment) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("database: savepoint: %w", err)
	}
	_, err = sp.Exec(ctx, `INSERT INTO payment_events (payment_id, event, amount_cents, currency, written_by) VALUES ($1, 'created', $2, $3, $4)`,
		p.ID, p.AmountCents, p.Currency, s.version)
	if err == nil {
		if err := sp.Commit(ctx); err != nil {
			return fmt.Errorf("database: releasing savepoint: %w", err)
		}
		p.PaymentEvent = true
		return nil
	}
	_ = sp.Rollback(ctx)
	if isMissingSchema(err) {
		return nil
	}
	return fmt.Errorf("database: recording the created event of payment %s: %w", p.ID, err)
}

// isMissingSchema reports an undefined column or table: the schema v2 expects is not there.
func isMissingSchema(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42703" || pe.Code == "42P01")
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// paymentRow is a payments row as to_jsonb gives it: whatever columns the schema has now
// (memo is dropped by the contract migration, external_reference exists only after 00002),
// so reads work on every schema either version meets.
type paymentRow struct {
	ID                string    `json:"id"`
	AccountID         string    `json:"account_id"`
	AmountCents       int64     `json:"amount_cents"`
	Currency          string    `json:"currency"`
	Memo              *string   `json:"memo"`
	ExternalReference *string   `json:"external_reference"`
	Status            string    `json:"status"`
	CreatedAt         time.Time `json:"created_at"`
}

func (r paymentRow) payment() payment {
	p := payment{ID: r.ID, AccountID: r.AccountID, AmountCents: r.AmountCents, Currency: r.Currency, Status: r.Status, CreatedAt: r.CreatedAt}
	switch {
	case r.ExternalReference != nil:
		p.Reference = *r.ExternalReference
	case r.Memo != nil:
		p.Reference = *r.Memo
	}
	return p
}

func (s *server) getPayment(w http.ResponseWriter, r *http.Request, _ string) {
	id := r.PathValue("id")
	var raw []byte
	err := s.db.QueryRow(r.Context(), `SELECT to_jsonb(p) FROM payments p WHERE id = $1`, id).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no payment " + strconv.Quote(id)})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": fmt.Sprintf("database: reading payment %q: %v", id, err)})
		return
	}
	var row paymentRow
	if err := json.Unmarshal(raw, &row); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "decoding payment: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": s.version, "payment": row.payment()})
}

func (s *server) listPayments(w http.ResponseWriter, r *http.Request, _ string) {
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": fmt.Sprintf("limit: want 1 to %d, got %q", maxListLimit, v)})
			return
		}
		limit = n
	}
	rows, err := s.db.Query(r.Context(), `SELECT to_jsonb(p) FROM payments p ORDER BY created_at DESC, id LIMIT $1`, limit)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "database: listing payments: " + err.Error()})
		return
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "database: listing payments: " + err.Error()})
		return
	}
	list := make([]payment, 0, len(raws))
	for _, raw := range raws {
		var row paymentRow
		if err := json.Unmarshal(raw, &row); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "decoding payment: " + err.Error()})
			return
		}
		list = append(list, row.payment())
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"service":  "payments-api",
		"version":  s.version,
		"instance": s.name,
		"payments": list,
	})
}
