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

// TestCopyKeepsRevocationCount: revocation_count is not copied; the
// target's trigger counts the revoked_certs rows the copy inserts, so the
// CRL's change check agrees with the records after a move.
func TestCopyKeepsRevocationCount(t *testing.T) {
	ctx := context.Background()
	src, srcPath := openAt(t, "src.db")
	raw, err := sql.Open("sqlite", "file:"+srcPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, serial := range []string{"0a", "0b", "0c"} {
		if _, err := raw.ExecContext(ctx, `INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason) VALUES (?, 'user', 1, 1, 0)`, serial); err != nil {
			t.Fatal(err)
		}
	}
	dst, _ := openAt(t, "dst.db")
	if _, err := src.CopyTo(ctx, dst, nil); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*sqlstore.Store{"source": src, "target": dst} {
		if n, err := s.RevokedCount(ctx); err != nil || n != 3 {
			t.Errorf("%s counts %d revocations (%v), want 3", name, n, err)
		}
	}
}

func openAt(t *testing.T, name string) (*sqlstore.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}
