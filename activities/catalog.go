package activities

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// The catalog diff: what a migration file created, learned by reading the
// database's catalog (tables and their columns, names only) before and after
// the file runs. A rollback then knows which data a file's Down destroys
// without parsing SQL.
//
// Only the schema the migrations run in is read: PostgreSQL's current_schema()
// (the first schema of the DSN's search_path, where goose's own version
// table lives) and SQLite's main database. Objects a migration creates in
// another schema are not tracked (docs/archive.md says so).

// catalog maps a table name to its column names in column order.
type catalog map[string][]string

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readCatalog reads the tables and columns of the migrations' schema,
// leaving out goose's version table and rollbook's own archive tables.
func readCatalog(ctx context.Context, q querier, dialect string) (catalog, error) {
	query := `SELECT c.relname, a.attname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum`
	if dialect == DialectSQLite {
		query = `SELECT m.name, p.name
FROM sqlite_master m JOIN pragma_table_info(m.name) p
WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\'
ORDER BY m.name, p.cid`
	}
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	defer rows.Close()
	cat := catalog{}
	for rows.Next() {
		var table, column string
		if err := rows.Scan(&table, &column); err != nil {
			return nil, fmt.Errorf("reading the catalog: %w", err)
		}
		if table == gooseTable || strings.HasPrefix(table, sqliteArchivePrefix) {
			continue
		}
		cat[table] = append(cat[table], column)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	return cat, nil
}

// diffCatalog returns what after has and before had not: new tables (their
// columns are implied) and new columns of tables that existed, sorted.
func diffCatalog(before, after catalog) []CatalogObject {
	var out []CatalogObject
	for _, table := range sortedKeys(after) {
		cols, existed := before[table]
		if !existed {
			out = append(out, CatalogObject{Kind: ObjectTable, Table: table})
			continue
		}
		for _, c := range after[table] {
			if !slices.Contains(cols, c) {
				out = append(out, CatalogObject{Kind: ObjectColumn, Table: table, Column: c})
			}
		}
	}
	return out
}

func sortedKeys(c catalog) []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
