// Package open opens a Pomona store by its database URL, picking the
// backend: sqlite://<path> (or sqlite:<path>) for the embedded SQLite
// store, postgres:// or postgresql:// for PostgreSQL. The server, the CLI's
// store copy and the benchmark's seeding all open stores through it.
package open

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/pomona-mdm/pomona/store/postgres"
	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// SQLitePath is the file of a sqlite:// (or sqlite:) database URL; ok is
// false for other URLs.
func SQLitePath(dbURL string) (path string, ok bool) {
	if !strings.HasPrefix(dbURL, "sqlite:") {
		return "", false
	}
	return strings.TrimPrefix(strings.TrimPrefix(dbURL, "sqlite:"), "//"), true
}

// DB opens a store by URL, applying pending migrations. desc names it for
// output ("sqlite <path> (schema vN)", "postgres <URL without password>
// (schema vN)"). Any other URL is an error that says which forms work.
func DB(ctx context.Context, dbURL string) (st *sqlstore.Store, desc string, err error) {
	switch {
	case strings.HasPrefix(dbURL, "sqlite:"):
		path, _ := SQLitePath(dbURL)
		st, err = sqlite.Open(ctx, path)
		if err != nil {
			return nil, "", fmt.Errorf("cannot open the SQLite store: %w", err)
		}
		desc = "sqlite " + path
	case strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://"):
		st, err = postgres.Open(ctx, dbURL)
		if err != nil {
			return nil, "", err
		}
		desc = "postgres " + postgres.Redact(dbURL)
	default:
		return nil, "", fmt.Errorf("--db %q: use sqlite://<path> or postgres://user:password@host/db (or leave it empty for the SQLite file in --data)", dbURL)
	}
	v, _ := st.SchemaVersion(ctx)
	return st, fmt.Sprintf("%s (schema v%d)", desc, v), nil
}

// Serving opens the store a server runs on: dbURL, or when empty the
// SQLite file pomona.db in dataDir. A SQLite store is locked for as long
// as the server runs (unlock releases it; a no-op for PostgreSQL), so
// `pomona restore` can refuse to overwrite it and two servers cannot
// share the file.
func Serving(ctx context.Context, dbURL, dataDir string) (st *sqlstore.Store, desc string, unlock func(), err error) {
	if dbURL == "" {
		dbURL = "sqlite://" + filepath.Join(dataDir, "pomona.db")
	}
	unlock = func() {}
	if path, ok := SQLitePath(dbURL); ok {
		if unlock, err = sqlite.Lock(path); err != nil {
			if errors.Is(err, sqlite.ErrLocked) {
				return nil, "", nil, fmt.Errorf("%w: another `pomona serve` uses %s (stop it, or give this one another --data)", err, path)
			}
			return nil, "", nil, err
		}
	}
	st, desc, err = DB(ctx, dbURL)
	if err != nil {
		unlock()
		return nil, "", nil, err
	}
	return st, desc, unlock, nil
}
