// Package writecheck proves "every acknowledged write survives": given the writes the API
// acknowledged to its callers (loadgen.Ack: key, id, body), it reads the database directly —
// not through the API — and checks that each one is still there with the values the caller
// sent, in the live tables or in what a rollback preserved (the rollbook_archive schema,
// found through its catalog rollbook_archive.archives), and that no request made two rows.
//
// It knows the demo API's data model (internal/devstack/demoschema.sql and the payments-api
// migrations): a payment is a payments row; its reference is in memo (v1) or
// external_reference (v2, added by an expand migration); v2 also books a ledger_entries row,
// and a version released with -payment-events (the demo's v3) records a payment_events row
// (added by that release's own migration).
// Columns and tables come and go with migrations and rollbacks, so every row is read with
// to_jsonb and whatever columns exist at that moment are used.
package writecheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rollbook/rollbook/internal/loadgen"
)

// ArchiveSchema is where rollbook preserves the data a migration's Down would destroy.
const ArchiveSchema = "rollbook_archive"

// Archive is one row of the archive catalog: one table or column a rollback preserved.
type Archive struct {
	DeploymentID string    `json:"deploymentId"`
	Step         string    `json:"step"`
	Version      int64     `json:"version"`
	Kind         string    `json:"kind"` // "table" or "column"
	SourceTable  string    `json:"sourceTable"`
	SourceColumn string    `json:"sourceColumn,omitempty"`
	ArchiveTable string    `json:"archiveTable"`
	Rows         int64     `json:"rows"`
	CreatedAt    time.Time `json:"createdAt"`
}

func (a Archive) String() string {
	obj := a.SourceTable
	if a.Kind == "column" {
		obj += "." + a.SourceColumn
	}
	return fmt.Sprintf("%s %s: %d rows in %s (step %s, migration %d)", a.Kind, obj, a.Rows, a.qualified(), a.Step, a.Version)
}

// qualified is the archive table's name, schema-qualified.
func (a Archive) qualified() string {
	if strings.Contains(a.ArchiveTable, ".") {
		return a.ArchiveTable
	}
	return ArchiveSchema + "." + a.ArchiveTable
}

func (a Archive) ident() pgx.Identifier {
	schema, table, ok := strings.Cut(a.ArchiveTable, ".")
	if !ok {
		schema, table = ArchiveSchema, a.ArchiveTable
	}
	return pgx.Identifier{schema, table}
}

// Result is what Check found.
type Result struct {
	Acknowledged int `json:"acknowledged"`
	Keyed        int `json:"keyed"`
	Unkeyed      int `json:"unkeyed"`
	Found        int `json:"found"`
	// FoundInArchive counts found writes of which some part (the row, the reference, the
	// ledger entry, the payment event) exists only in the archive.
	FoundInArchive int `json:"foundInArchive"`
	Lost           int `json:"lost"`
	// Duplicated counts acknowledged writes whose request made more than one payment, or
	// whose key was answered with two different payments.
	Duplicated       int       `json:"duplicated"`
	LostSamples      []string  `json:"lostSamples,omitempty"`
	DuplicateSamples []string  `json:"duplicateSamples,omitempty"`
	Archives         []Archive `json:"archives,omitempty"`
	ArchivedRows     int64     `json:"archivedRows"`
}

// OK reports no lost and no duplicated write.
func (r Result) OK() bool { return r.Lost == 0 && r.Duplicated == 0 }

func (r Result) String() string {
	return fmt.Sprintf("acknowledged writes: %d, lost: %d, duplicated: %d (keyed %d, without a key %d; %d found only with the archive)",
		r.Acknowledged, r.Lost, r.Duplicated, r.Keyed, r.Unkeyed, r.FoundInArchive)
}

const maxSamples = 10

// row is what the database holds about one payment, live and archived together.
type row struct {
	accountID, currency string
	amount              int64
	hasRow              bool
	rowArchived         bool // the payments row itself exists only in an archive
	refs                map[string]bool
	archivedRefs        map[string]bool // references found only in archived columns/tables
}

// Check reads the database of dsn and checks acks. An error means the check could not be
// made (the database is unreachable); lost or duplicated writes are in the Result.
func Check(ctx context.Context, dsn string, acks []loadgen.Ack) (Result, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return Result{}, fmt.Errorf("checking acknowledged writes: connecting to the database: %w", err)
	}
	defer conn.Close(context.Background())
	return CheckConn(ctx, conn, acks)
}

// CheckConn is Check on an open connection.
func CheckConn(ctx context.Context, conn *pgx.Conn, acks []loadgen.Ack) (Result, error) {
	res := Result{Acknowledged: len(acks)}
	archives, err := Archives(ctx, conn)
	if err != nil {
		return res, err
	}
	res.Archives = archives
	for _, a := range archives {
		res.ArchivedRows += a.Rows
	}

	rows := map[string]*row{}
	get := func(id string) *row {
		r := rows[id]
		if r == nil {
			r = &row{refs: map[string]bool{}, archivedRefs: map[string]bool{}}
			rows[id] = r
		}
		return r
	}
	// Payments, live: every column there is now.
	if err := scanJSON(ctx, conn, `SELECT to_jsonb(p) FROM payments p`, func(m map[string]any) {
		r := get(str(m["id"]))
		r.hasRow = true
		r.accountID, r.currency, r.amount = str(m["account_id"]), strings.TrimSpace(str(m["currency"])), num(m["amount_cents"])
		for _, c := range []string{"memo", "external_reference"} {
			if v := str(m[c]); v != "" {
				r.refs[v] = true
			}
		}
	}); err != nil {
		return res, fmt.Errorf("checking acknowledged writes: reading payments: %w", err)
	}
	ledger := map[string]int64{}         // payment id → amount, live
	archivedLedger := map[string]int64{} // payment id → amount, archived only
	events := map[string]int64{}         // payment id → amount of its "created" event, live
	archivedEvents := map[string]int64{} // the same, archived only
	for _, t := range []struct {
		name  string
		event bool
		into  map[string]int64
	}{{"ledger_entries", false, ledger}, {"payment_events", true, events}} {
		if exists, err := tableExists(ctx, conn, "public."+t.name); err != nil {
			return res, err
		} else if exists {
			if err := scanJSON(ctx, conn, `SELECT to_jsonb(l) FROM `+t.name+` l`, func(m map[string]any) {
				if !t.event || str(m["event"]) == "created" {
					t.into[str(m["payment_id"])] = num(m["amount_cents"])
				}
			}); err != nil {
				return res, fmt.Errorf("checking acknowledged writes: reading %s: %w", t.name, err)
			}
		}
	}
	// What rollbacks preserved: whole tables (every column of the original rows) and
	// columns (the primary key plus the column).
	for _, a := range archives {
		q := `SELECT to_jsonb(a) FROM ` + a.ident().Sanitize() + ` a`
		var f func(map[string]any)
		switch {
		case a.SourceTable == "payments" || strings.HasSuffix(a.SourceTable, ".payments"):
			f = func(m map[string]any) {
				r := get(str(m["id"]))
				if a.Kind == "table" && !r.hasRow {
					r.hasRow, r.rowArchived = true, true
					r.accountID, r.currency, r.amount = str(m["account_id"]), strings.TrimSpace(str(m["currency"])), num(m["amount_cents"])
				}
				for _, c := range []string{"memo", "external_reference"} {
					if v := str(m[c]); v != "" && !r.refs[v] {
						r.refs[v], r.archivedRefs[v] = true, true
					}
				}
			}
		case (a.SourceTable == "ledger_entries" || strings.HasSuffix(a.SourceTable, ".ledger_entries")) && a.Kind == "table":
			f = func(m map[string]any) {
				id := str(m["payment_id"])
				if _, live := ledger[id]; !live {
					archivedLedger[id] = num(m["amount_cents"])
				}
			}
		case (a.SourceTable == "payment_events" || strings.HasSuffix(a.SourceTable, ".payment_events")) && a.Kind == "table":
			f = func(m map[string]any) {
				id := str(m["payment_id"])
				if _, live := events[id]; !live && str(m["event"]) == "created" {
					archivedEvents[id] = num(m["amount_cents"])
				}
			}
		default:
			continue
		}
		if err := scanJSON(ctx, conn, q, f); err != nil {
			return res, fmt.Errorf("checking acknowledged writes: reading archive %s: %w", a.qualified(), err)
		}
	}

	// Which payments each request made: every request carries a unique reference, so two
	// payments with one reference are one request stored twice.
	byRef := map[string]map[string]bool{}
	for id, r := range rows {
		for ref := range r.refs {
			if byRef[ref] == nil {
				byRef[ref] = map[string]bool{}
			}
			byRef[ref][id] = true
		}
	}
	stored := map[string]string{} // idempotency key → payment id, as the API stored it
	if exists, err := tableExists(ctx, conn, "public.idempotency_keys"); err != nil {
		return res, err
	} else if exists {
		r, err := conn.Query(ctx, `SELECT key, payment_id FROM idempotency_keys`)
		if err != nil {
			return res, fmt.Errorf("checking acknowledged writes: reading idempotency_keys: %w", err)
		}
		var k, id string
		if _, err := pgx.ForEachRow(r, []any{&k, &id}, func() error { stored[k] = id; return nil }); err != nil {
			return res, fmt.Errorf("checking acknowledged writes: reading idempotency_keys: %w", err)
		}
	}

	answered := map[string]map[string]bool{} // key → payment ids the callers were given
	for _, a := range acks {
		if a.Key != "" {
			if answered[a.Key] == nil {
				answered[a.Key] = map[string]bool{}
			}
			answered[a.Key][a.ID] = true
		}
	}
	lost := func(a loadgen.Ack, why string, args ...any) {
		res.Lost++
		if len(res.LostSamples) < maxSamples {
			res.LostSamples = append(res.LostSamples, describe(a)+": "+fmt.Sprintf(why, args...))
		}
	}
	dup := func(a loadgen.Ack, why string, args ...any) {
		res.Duplicated++
		if len(res.DuplicateSamples) < maxSamples {
			res.DuplicateSamples = append(res.DuplicateSamples, describe(a)+": "+fmt.Sprintf(why, args...))
		}
	}
	for _, a := range acks {
		if a.Key != "" {
			res.Keyed++
		} else {
			res.Unkeyed++
		}
		switch ids := byRef[a.Body.Reference]; {
		case a.Key != "" && len(answered[a.Key]) > 1:
			dup(a, "key answered with %d different payments: %s", len(answered[a.Key]), setString(answered[a.Key]))
		case a.Body.Reference != "" && len(ids) > 1:
			dup(a, "one request stored as %d payments: %s", len(ids), setString(ids))
		case a.Key != "" && stored[a.Key] != "" && stored[a.Key] != a.ID:
			dup(a, "the key is stored for payment %s, but the caller was given %s", stored[a.Key], a.ID)
		}

		r := rows[a.ID]
		switch {
		case r == nil || !r.hasRow:
			lost(a, "no payments row, live or archived")
			continue
		case r.accountID != a.Body.AccountID || r.amount != a.Body.AmountCents || r.currency != a.Body.Currency:
			lost(a, "stored as %s %d %s, sent %s %d %s", r.accountID, r.amount, r.currency, a.Body.AccountID, a.Body.AmountCents, a.Body.Currency)
			continue
		case a.Body.Reference != "" && !r.refs[a.Body.Reference]:
			lost(a, "reference %q in neither memo nor external_reference, live or archived", a.Body.Reference)
			continue
		}
		archived := r.rowArchived || r.archivedRefs[a.Body.Reference]
		if a.Ledger {
			amount, live := ledger[a.ID]
			if !live {
				var ok bool
				if amount, ok = archivedLedger[a.ID]; !ok {
					lost(a, "the answer said a ledger entry was booked; none live or archived")
					continue
				}
				archived = true
			}
			if amount != a.Body.AmountCents {
				lost(a, "ledger entry of %d, sent %d", amount, a.Body.AmountCents)
				continue
			}
		}
		if a.Event {
			amount, live := events[a.ID]
			if !live {
				var ok bool
				if amount, ok = archivedEvents[a.ID]; !ok {
					lost(a, "the answer said a payment event was recorded; none live or archived")
					continue
				}
				archived = true
			}
			if amount != a.Body.AmountCents {
				lost(a, "payment event of %d, sent %d", amount, a.Body.AmountCents)
				continue
			}
		}
		res.Found++
		if archived {
			res.FoundInArchive++
		}
	}
	return res, nil
}

// Archives reads the archive catalog; none when it does not exist (no rollback archived
// anything yet).
func Archives(ctx context.Context, conn *pgx.Conn) ([]Archive, error) {
	exists, err := tableExists(ctx, conn, ArchiveSchema+".archives")
	if err != nil || !exists {
		return nil, err
	}
	r, err := conn.Query(ctx, `SELECT deployment_id, step, version, kind, source_table, source_column, archive_table, rows, created_at
		FROM `+ArchiveSchema+`.archives ORDER BY created_at, archive_table`)
	if err != nil {
		return nil, fmt.Errorf("reading the archive catalog %s.archives: %w", ArchiveSchema, err)
	}
	var out []Archive
	var a Archive
	var col *string
	if _, err := pgx.ForEachRow(r, []any{&a.DeploymentID, &a.Step, &a.Version, &a.Kind, &a.SourceTable, &col, &a.ArchiveTable, &a.Rows, &a.CreatedAt}, func() error {
		a.SourceColumn = ""
		if col != nil {
			a.SourceColumn = *col
		}
		out = append(out, a)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading the archive catalog %s.archives: %w", ArchiveSchema, err)
	}
	return out, nil
}

func tableExists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("looking for table %s: %w", name, err)
	}
	return ok, nil
}

func scanJSON(ctx context.Context, conn *pgx.Conn, q string, f func(map[string]any)) error {
	r, err := conn.Query(ctx, q)
	if err != nil {
		return err
	}
	var raw []byte
	_, err = pgx.ForEachRow(r, []any{&raw}, func() error {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(string(raw)))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			return err
		}
		f(m)
		return nil
	})
	return err
}

func str(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case json.Number:
		return s.String()
	}
	return ""
}

func num(v any) int64 {
	if n, ok := v.(json.Number); ok {
		i, _ := n.Int64()
		return i
	}
	return -1
}

func describe(a loadgen.Ack) string {
	k := a.Key
	if k == "" {
		k = "(no key)"
	}
	return fmt.Sprintf("payment %s, key %s, written by %s", a.ID, k, a.Version)
}

func setString(m map[string]bool) string {
	s := make([]string, 0, len(m))
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// ErrLost is returned by Require when a write was lost or duplicated.
var ErrLost = errors.New("acknowledged writes lost or duplicated")

// Require returns an error wrapping ErrLost, with samples, unless r is OK.
func (r Result) Require() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("%w: %s; lost: %s; duplicated: %s", ErrLost, r, strings.Join(r.LostSamples, "; "), strings.Join(r.DuplicateSamples, "; "))
}
