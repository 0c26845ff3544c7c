package open_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/store/open"
	"github.com/pomona-mdm/pomona/store/sqlite"
)

func TestSQLitePath(t *testing.T) {
	for _, c := range []struct {
		url, path string
		ok        bool
	}{
		{"sqlite:///var/lib/pomona/pomona.db", "/var/lib/pomona/pomona.db", true},
		{"sqlite:data/p.db", "data/p.db", true},
		{"postgres://u@h/db", "", false},
		{"", "", false},
	} {
		if p, ok := open.SQLitePath(c.url); p != c.path || ok != c.ok {
			t.Errorf("SQLitePath(%q) = %q, %v; want %q, %v", c.url, p, ok, c.path, c.ok)
		}
	}
}

func TestDBRefusesOtherURLs(t *testing.T) {
	_, _, err := open.DB(context.Background(), "mysql://u@h/db")
	if err == nil || !strings.Contains(err.Error(), "sqlite://") {
		t.Fatalf("err = %v, want one naming the forms that work", err)
	}
}

func TestServingLocksTheSQLiteFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, desc, unlock, err := open.Serving(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := "sqlite " + filepath.Join(dir, "pomona.db"); !strings.HasPrefix(desc, want) {
		t.Errorf("desc = %q, want it to start with %q", desc, want)
	}
	if _, _, _, err := open.Serving(ctx, "", dir); !errors.Is(err, sqlite.ErrLocked) {
		t.Errorf("second open: err = %v, want sqlite.ErrLocked", err)
	}
	st.Close()
	unlock()
	st, _, unlock, err = open.Serving(ctx, "", dir)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	st.Close()
	unlock()
}
