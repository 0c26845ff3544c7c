package sqlstore_test

import (
	"context"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// Migration 0027 (channels rebuilt) checks 2 of the schema's 22 tables
// with references: channels (its own references to enrollments) and
// queue (the one table referencing channels) — not the whole database,
// which at 100,000 devices is 3.4 times the SQLite VM steps
// (docs/benchmarks.md, Session 12 — hygiene).
func TestMigration0027ChecksChannelsAndQueue(t *testing.T) {
	ctx := context.Background()
	dir := os.DirFS("../sqlite")
	files, err := fs.Glob(dir, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	before := fstest.MapFS{}
	var body string
	for _, f := range files {
		b, err := fs.ReadFile(dir, f)
		if err != nil {
			t.Fatal(err)
		}
		if base := filepath.Base(f); base < "0027" {
			before[f] = &fstest.MapFile{Data: b}
		} else if strings.HasPrefix(base, "0027_") {
			body = string(b)
		}
	}
	if body == "" {
		t.Fatal("no migration 0027")
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "db")+"?_pragma=foreign_keys(1)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	s := sqlstore.New(sqlite.Dialect, db, db, "test")
	defer s.Close()
	if err := s.Migrate(ctx, before, "migrations"); err != nil {
		t.Fatal(err)
	}
	var referring int
	if err := db.QueryRow(`SELECT COUNT(DISTINCT m.name) FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'`).Scan(&referring); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA foreign_keys = OFF`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	tables, err := sqlstore.SchemaTables(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(body); err != nil {
		t.Fatal(err)
	}
	got, err := sqlstore.FKCheckTables(ctx, tx, tables, body)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"channels", "queue"}; !slices.Equal(got, want) {
		t.Fatalf("0027 checks %v, want %v (of %d tables with references)", got, want, referring)
	}
	t.Logf("0027 checks %v of %d tables with references", got, referring)
}
