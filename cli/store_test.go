package cli_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/store/sqlite"
)

// `pomona store migrate` refuses a SQLite file a server holds, on either
// side, and copies between two files no server uses.
func TestStoreMigrateRefusesALockedSQLiteFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.db"), filepath.Join(dir, "dst.db")
	st, err := sqlite.Open(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, locked := range []string{src, dst} {
		unlock, err := sqlite.Lock(locked)
		if err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, nil, "", nil, "store", "migrate", "--from", "sqlite://"+src, "--to", "sqlite://"+dst)
		unlock()
		if r.code != 1 || !strings.Contains(r.stderr, "another `pomona serve` uses "+locked) {
			t.Fatalf("%s locked: exit %d\nstdout: %s\nstderr: %s", filepath.Base(locked), r.code, r.stdout, r.stderr)
		}
	}
	r := mustOK(t, runCLI(t, nil, "", nil, "store", "migrate", "--from", "sqlite://"+src, "--to", "sqlite://"+dst))
	if !strings.Contains(r.stdout, "verified") {
		t.Fatalf("no verification line:\n%s", r.stdout)
	}
	// The locks were given back: a server can start on either file.
	for _, p := range []string{src, dst} {
		unlock, err := sqlite.Lock(p)
		if err != nil {
			t.Fatalf("%s still locked after the migration: %v", filepath.Base(p), err)
		}
		unlock()
	}
}
