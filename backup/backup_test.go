package backup_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/backup"
	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// newStoreBackup makes a store, backs it up, and returns the backup path.
func newStoreBackup(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "pomona.db")
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutSecret(ctx, "marker", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	to := filepath.Join(t.TempDir(), "b.db")
	info, err := backup.SQLite(ctx, db, to)
	if err != nil {
		t.Fatal(err)
	}
	if info.Schema == 0 || info.Bytes == 0 {
		t.Fatalf("info %+v", info)
	}
	return to
}

func TestRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, bak, dir string) string // returns the file to restore
		check func(error) bool
	}{
		{"newer schema", func(t *testing.T, bak, dir string) string {
			db, _ := sql.Open("sqlite", "file:"+bak)
			defer db.Close()
			if _, err := db.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)"); err != nil {
				t.Fatal(err)
			}
			return bak
		}, func(err error) bool { var e *sqlstore.SchemaTooNewError; return errors.As(err, &e) }},
		{"truncated file", func(t *testing.T, bak, dir string) string {
			b, _ := os.ReadFile(bak)
			p := bak + ".cut"
			os.WriteFile(p, b[:len(b)/3], 0o600)
			return p
		}, func(err error) bool {
			return err != nil && (strings.Contains(err.Error(), "damaged") || strings.Contains(err.Error(), "not a"))
		}},
		{"existing store without force", func(t *testing.T, bak, dir string) string {
			os.MkdirAll(dir, 0o700)
			os.WriteFile(filepath.Join(dir, "pomona.db"), []byte("old"), 0o600)
			return bak
		}, func(err error) bool { return errors.Is(err, backup.ErrExists) }},
		{"live store", func(t *testing.T, bak, dir string) string {
			unlock, err := sqlite.Lock(filepath.Join(dir, "pomona.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(unlock)
			return bak
		}, func(err error) bool { return errors.Is(err, backup.ErrLive) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bak := newStoreBackup(t)
			dir := t.TempDir()
			from := tc.setup(t, bak, dir)
			_, err := backup.Restore(ctx, from, dir, backup.RestoreOptions{})
			if !tc.check(err) {
				t.Fatalf("err = %v", err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "pomona.db")); len(b) > 3 {
				t.Fatal("a refused restore wrote the store")
			}
		})
	}
}

func TestRestoreForceKeepsTheOldStore(t *testing.T) {
	ctx := context.Background()
	bak := newStoreBackup(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pomona.db"), []byte("old"), 0o600)
	info, err := backup.Restore(ctx, bak, dir, backup.RestoreOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "pomona.db.before-restore-*"))
	if len(kept) != 1 {
		t.Fatalf("kept %v", kept)
	}
	if b, _ := os.ReadFile(kept[0]); string(b) != "old" {
		t.Fatalf("kept file holds %q", b)
	}
	st, err := sqlite.Open(ctx, info.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, err := st.Secret(ctx, "marker"); err != nil || string(v) != "kept" {
		t.Fatalf("restored data: %q %v", v, err)
	}
	if _, err := backup.SQLite(ctx, info.Path, bak); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("backup over an existing file: %v", err)
	}
}
