package writecheck

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/loadgen"
	"github.com/rollbook/rollbook/internal/pgtest"
)

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	_, err := conn.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

// expand runs the Up sections of the payments-api expand migrations 00001 and 00002.
func expand(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	for _, f := range []string{"00001_create_ledger_entries.sql", "00002_add_ledger_reference.sql"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "runbooks", "payments-api", "migrations", f))
		require.NoError(t, err)
		up, _, _ := strings.Cut(string(b), "-- +goose Down")
		exec(t, conn, up)
	}
}

func ack(key, id, ref string, amount int64, version string, ledger bool) loadgen.Ack {
	return loadgen.Ack{Key: key, ID: id, Version: version, Ledger: ledger,
		Body: loadgen.Payment{AccountID: "acct_1", AmountCents: amount, Currency: "EUR", Reference: ref}}
}

func TestCheckFindsLiveArchivedLostAndDuplicated(t *testing.T) {
	ctx := context.Background()
	dsn := startDB(t)
	require.NoError(t, devstack.ResetDemoSchema(ctx, dsn))
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	expand(t, conn)

	pay := `INSERT INTO payments (id, account_id, amount_cents, currency, memo, external_reference) VALUES ($1, 'acct_1', $2, 'EUR', $3, $4)`
	key := `INSERT INTO idempotency_keys (key, request_hash, payment_id, status_code, response) VALUES ($1, 'h', $2, 201, '{}')`
	// v1, keyed: memo.
	exec(t, conn, pay, "p1", 100, "ref-1", nil)
	exec(t, conn, key, "k1", "p1")
	// v2, keyed: external_reference and a ledger entry, both to be archived by the rollback.
	exec(t, conn, pay, "p2", 200, nil, "ref-2")
	exec(t, conn, `INSERT INTO ledger_entries (payment_id, account_id, amount_cents, currency) VALUES ('p2', 'acct_1', 200, 'EUR')`)
	exec(t, conn, key, "k2", "p2")
	// One request stored twice (what a retry without a key stored for the key would do).
	exec(t, conn, pay, "p4", 400, "ref-4", nil)
	exec(t, conn, pay, "p4b", 400, "ref-4", nil)
	// Stored with another amount than the caller sent.
	exec(t, conn, pay, "p5", 999, "ref-5", nil)

	acks := []loadgen.Ack{
		ack("k1", "p1", "ref-1", 100, "v1", false),
		ack("k2", "p2", "ref-2", 200, "v2", true),
		ack("", "p3", "ref-3", 300, "v1", false), // acknowledged, never stored
		ack("k4", "p4", "ref-4", 400, "v1", false),
		ack("", "p5", "ref-5", 500, "v1", false),
	}
	res, err := Check(ctx, dsn, acks)
	require.NoError(t, err)
	assert.Equal(t, 5, res.Acknowledged)
	assert.Equal(t, 3, res.Keyed)
	assert.Equal(t, 2, res.Unkeyed)
	assert.Equal(t, 2, res.Lost, res.LostSamples)
	assert.Equal(t, 1, res.Duplicated, res.DuplicateSamples)
	assert.Equal(t, 3, res.Found)
	assert.Zero(t, res.FoundInArchive)
	assert.Contains(t, strings.Join(res.LostSamples, "\n"), "payment p3")
	assert.Contains(t, strings.Join(res.LostSamples, "\n"), "stored as acct_1 999 EUR, sent acct_1 500 EUR")
	assert.Contains(t, strings.Join(res.DuplicateSamples, "\n"), "p4, p4b")
	require.ErrorIs(t, res.Require(), ErrLost)

	// A rollback that drops what the expand migrations added, without an archive: p2's
	// reference and ledger entry are gone.
	exec(t, conn, `CREATE TABLE saved_ledger AS SELECT * FROM ledger_entries; CREATE TABLE saved_ref AS SELECT id, external_reference FROM payments`)
	exec(t, conn, `DROP TABLE ledger_entries; ALTER TABLE payments DROP COLUMN external_reference`)
	two := acks[:2]
	res, err = Check(ctx, dsn, two)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Lost, "p2 is lost without the archive")
	assert.Contains(t, res.LostSamples[0], `reference "ref-2" in neither memo nor external_reference`)

	// The same rollback with rollbook's archive (catalog + copies): p2 is found there.
	exec(t, conn, `CREATE SCHEMA rollbook_archive;
		CREATE TABLE rollbook_archive.archives (deployment_id text, step text, version bigint, kind text, source_table text,
			source_column text, archive_table text, rows bigint, created_at timestamptz DEFAULT now());
		CREATE TABLE rollbook_archive.d1_expand_ledger_entries AS SELECT * FROM saved_ledger;
		CREATE TABLE rollbook_archive.d1_expand_payments_external_reference AS SELECT * FROM saved_ref WHERE external_reference IS NOT NULL;
		INSERT INTO rollbook_archive.archives (deployment_id, step, version, kind, source_table, source_column, archive_table, rows) VALUES
			('d1', 'expand-schema', 2, 'column', 'payments', 'external_reference', 'd1_expand_payments_external_reference', 1),
			('d1', 'expand-schema', 1, 'table', 'ledger_entries', NULL, 'rollbook_archive.d1_expand_ledger_entries', 1)`)
	res, err = Check(ctx, dsn, two)
	require.NoError(t, err)
	require.NoError(t, res.Require())
	assert.Equal(t, 2, res.Found)
	assert.Equal(t, 1, res.FoundInArchive)
	assert.EqualValues(t, 2, res.ArchivedRows)
	require.Len(t, res.Archives, 2)
	assert.Equal(t, "column payments.external_reference: 1 rows in rollbook_archive.d1_expand_payments_external_reference (step expand-schema, migration 2)", res.Archives[0].String())

	// An archived ledger entry with another amount is not "found".
	exec(t, conn, `UPDATE rollbook_archive.d1_expand_ledger_entries SET amount_cents = 1`)
	res, err = Check(ctx, dsn, two)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Lost, res.LostSamples)

	// A key answered with two payments is a duplicate even when each row looks fine.
	res, err = Check(ctx, dsn, []loadgen.Ack{acks[0], ack("k1", "p5", "ref-5", 999, "v1", false)})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Duplicated, res.DuplicateSamples)
}

// v3's payment_events (its own migration 00005, examples/demo/v3-release): an acknowledged
// write whose answer says an event was recorded needs that event, live or, after the
// rollback that archived and dropped the table, in the archive.
func TestCheckFindsPaymentEventsLiveAndArchived(t *testing.T) {
	ctx := context.Background()
	dsn := startDB(t)
	require.NoError(t, devstack.ResetDemoSchema(ctx, dsn))
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	expand(t, conn)
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "demo", "v3-release", "payments-api", "migrations", "00005_create_payment_events.sql"))
	require.NoError(t, err)
	up, _, _ := strings.Cut(string(b), "-- +goose Down")
	exec(t, conn, up)

	pay := `INSERT INTO payments (id, account_id, amount_cents, currency, external_reference) VALUES ($1, 'acct_1', $2, 'EUR', $3)`
	event := `INSERT INTO payment_events (payment_id, event, amount_cents, currency, written_by) VALUES ($1, 'created', $2, 'EUR', 'v3')`
	exec(t, conn, pay, "p1", 100, "ref-1")
	exec(t, conn, event, "p1", 100)
	exec(t, conn, pay, "p2", 200, "ref-2")
	exec(t, conn, event, "p2", 200)
	exec(t, conn, pay, "p3", 300, "ref-3") // the answer said an event was recorded; there is none
	withEvent := func(a loadgen.Ack) loadgen.Ack { a.Event = true; return a }
	acks := []loadgen.Ack{
		withEvent(ack("k1", "p1", "ref-1", 100, "v3", false)),
		withEvent(ack("", "p2", "ref-2", 200, "v3", false)),
		withEvent(ack("k3", "p3", "ref-3", 300, "v3", false)),
	}
	res, err := Check(ctx, dsn, acks)
	require.NoError(t, err)
	assert.Equal(t, 2, res.Found)
	assert.Zero(t, res.FoundInArchive)
	require.Equal(t, 1, res.Lost, res.LostSamples)
	assert.Contains(t, res.LostSamples[0], "payment p3")
	assert.Contains(t, res.LostSamples[0], "payment event")

	// The rollback archives payment_events, then its Down drops it: found in the archive.
	exec(t, conn, `CREATE SCHEMA rollbook_archive;
		CREATE TABLE rollbook_archive.archives (deployment_id text, step text, version bigint, kind text, source_table text,
			source_column text, archive_table text, rows bigint, created_at timestamptz DEFAULT now());
		CREATE TABLE rollbook_archive.d2_expand_payment_events AS SELECT * FROM payment_events;
		INSERT INTO rollbook_archive.archives (deployment_id, step, version, kind, source_table, source_column, archive_table, rows) VALUES
			('d2', 'expand-schema', 5, 'table', 'payment_events', NULL, 'd2_expand_payment_events', 2);
		DROP TABLE payment_events`)
	res, err = Check(ctx, dsn, acks[:2])
	require.NoError(t, err)
	require.NoError(t, res.Require())
	assert.Equal(t, 2, res.FoundInArchive)
	assert.EqualValues(t, 2, res.ArchivedRows)

	// An archived event with another amount than the caller sent is not "found".
	exec(t, conn, `UPDATE rollbook_archive.d2_expand_payment_events SET amount_cents = 1 WHERE payment_id = 'p2'`)
	res, err = Check(ctx, dsn, acks[:2])
	require.NoError(t, err)
	require.Equal(t, 1, res.Lost, res.LostSamples)
	assert.Contains(t, res.LostSamples[0], "payment event of 1, sent 200")
}

func startDB(t *testing.T) string { return pgtest.Start(t) }
