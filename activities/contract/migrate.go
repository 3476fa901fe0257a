package contract

import (
	"fmt"
)

// ErrArchive: the data a Down would destroy could not be preserved
// (permissions, disk, a missing catalog diff). Non-retryable: the Down does
// not run, and the workflow stops in rollback-stuck with the reason.
const ErrArchive = "RollbookArchive"

// ArchivedObject is one preserved table or column.
type ArchivedObject struct {
	// Version is the migration file whose Down removed the object.
	Version int64  `json:"version"`
	Kind    string `json:"kind"`
	Table   string `json:"table"`
	Column  string `json:"column,omitempty"`
	// ArchiveTable is where the data is, usable after FROM as is.
	ArchiveTable string `json:"archiveTable"`
	Rows         int64  `json:"rows"`
}

func (a ArchivedObject) String() string {
	what := a.Table
	if a.Kind == ObjectColumn {
		what = a.Table + "." + a.Column
	}
	return fmt.Sprintf("%s (%d rows) → %s", what, a.Rows, a.ArchiveTable)
}

// Kinds of CatalogObject, as stored in rollbook_archive.archives.kind.
const (
	ObjectTable  = "table"
	ObjectColumn = "column"
)

// CatalogObject is a table, or a column of a table that existed before,
// that a migration file's Up created.
type CatalogObject struct {
	Kind   string `json:"kind"`
	Table  string `json:"table"`
	Column string `json:"column,omitempty"`
}

func (o CatalogObject) String() string {
	if o.Kind == ObjectColumn {
		return o.Table + "." + o.Column
	}
	return o.Table
}

// FileObjects is the catalog diff of one migration file.
type FileObjects struct {
	Version int64           `json:"version"`
	Created []CatalogObject `json:"created,omitempty"`
}
