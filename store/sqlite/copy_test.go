package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// TestEveryTableCopiedOrSkipped: `pomona store migrate` copies
// sqlstore.Tables; a table a migration adds must be listed there (or in
// NotCopied, with its reason), or a move between stores silently loses it
// (renewals, tombstones and the re-sent profiles' keys once were).
func TestEveryTableCopiedOrSkipped(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pomona.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(sqlstore.Tables, name) && !slices.Contains(sqlstore.NotCopied, name) {
			t.Errorf("table %s is neither copied by store migrate (sqlstore.Tables) nor listed in sqlstore.NotCopied", name)
		}
	}
	for _, name := range append(slices.Clone(sqlstore.Tables), sqlstore.NotCopied...) {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, name).Scan(&n); err != nil || n != 1 {
			t.Errorf("sqlstore lists %s, which is not a table (%v)", name, err)
		}
	}
}
