// Package backup copies a SQLite store while the server runs and restores
// such a copy into a data directory. The copy is a plain SQLite database
// file (made with VACUUM INTO, a consistent snapshot taken in one read
// transaction: https://sqlite.org/lang_vacuum.html#vacuuminto), so it can
// also be inspected with any SQLite tool. It holds the sealed secrets (CA,
// TLS and push keys, TOTP secrets) but never the sealing key that opens
// them: that key must be kept separately (docs/deployment.md, Backups).
//
// PostgreSQL stores are backed up with pg_dump (docs/postgresql.md).
package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// Info describes a backup file.
type Info struct {
	Path   string
	Bytes  int64
	Schema int // newest migration in the copy
}

// SQLite copies the database at dbPath into the new file to, consistently
// even while a server writes to it (WAL mode lets the snapshot proceed
// beside writers). to must not exist; the copy is written next to it and
// renamed into place only when complete, with mode 0600.
func SQLite(ctx context.Context, dbPath, to string) (*Info, error) {
	if _, err := os.Stat(dbPath); err != nil {
		return nil, fmt.Errorf("no SQLite store at %s: %w", dbPath, err)
	}
	if _, err := os.Stat(to); err == nil {
		return nil, fmt.Errorf("%s exists: choose a new file name (backups are never overwritten)", to)
	}
	// Read-only: the backup never migrates or otherwise changes the live
	// store, whatever version of Pomona runs it.
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	tmp := filepath.Join(filepath.Dir(to), "."+filepath.Base(to)+".partial")
	os.Remove(tmp)
	defer os.Remove(tmp)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		return nil, fmt.Errorf("copy %s: %w", dbPath, err)
	}
	if err := syncFile(tmp); err != nil {
		return nil, err
	}
	info, err := Inspect(ctx, tmp)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, to); err != nil {
		return nil, err
	}
	info.Path = to
	return info, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	return f.Sync()
}

// Inspect checks that path is an intact Pomona SQLite database (PRAGMA
// integrity_check) and reports its schema version.
func Inspect(ctx context.Context, path string) (*Info, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
		return nil, fmt.Errorf("%s is not a SQLite database: %w", path, err)
	}
	if check != "ok" {
		return nil, fmt.Errorf("%s is damaged: %s", path, check)
	}
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&v); err != nil {
		return nil, fmt.Errorf("%s is not a Pomona store: %w", path, err)
	}
	return &Info{Path: path, Bytes: st.Size(), Schema: int(v.Int64)}, nil
}

// RestoreOptions change what Restore accepts.
type RestoreOptions struct {
	// Force replaces an existing store that no server is using. The old
	// files are kept beside it as pomona.db.before-restore-<time>.
	Force bool
	// Key is the sealing key the restored server will use (nil: not
	// known yet). When given, Restore checks that it opens the backup's
	// secrets and refuses a backup sealed with another key.
	Key []byte
	Now func() time.Time
}

// Errors of Restore, for errors.Is.
var (
	ErrLive     = errors.New("a running server uses this store")
	ErrExists   = errors.New("a store exists in the data directory")
	ErrWrongKey = errors.New("the sealing key does not open this backup")
)

// Restore puts the backup file from into dataDir as pomona.db. It refuses
// when a server runs on that store (ErrLive, even with Force), when a
// store exists there (ErrExists, unless Force), when from is not an
// intact Pomona store, when its schema is newer than this binary
// (sqlstore.SchemaTooNewError), and when opts.Key is given but does not
// open its secrets (ErrWrongKey). Older schemas are migrated forward, as
// `pomona serve` would. Nothing in dataDir changes unless Restore succeeds.
func Restore(ctx context.Context, from, dataDir string, opts RestoreOptions) (*Info, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if _, err := Inspect(ctx, from); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	dst := filepath.Join(dataDir, "pomona.db")
	unlock, err := sqlite.Lock(dst)
	if err != nil {
		if errors.Is(err, sqlite.ErrLocked) {
			return nil, fmt.Errorf("%w: %s (stop the server first; restore never replaces a live store)", ErrLive, dst)
		}
		return nil, err
	}
	defer unlock()
	_, statErr := os.Stat(dst)
	exists := statErr == nil
	if exists && !opts.Force {
		return nil, fmt.Errorf("%w: %s (restore into an empty --data directory, or add --force to replace it; the old files are kept as pomona.db.before-restore-<time>)", ErrExists, dst)
	}

	// Work on a copy beside the destination: migrate it and check the key
	// before anything in the data directory changes.
	tmp := filepath.Join(dataDir, ".pomona.db.restoring")
	cleanTmp := func() {
		for _, sfx := range []string{"", "-wal", "-shm"} {
			os.Remove(tmp + sfx)
		}
	}
	cleanTmp()
	defer cleanTmp()
	if err := copyFile(from, tmp); err != nil {
		return nil, err
	}
	st, err := sqlite.Open(ctx, tmp)
	if err != nil {
		return nil, err // includes SchemaTooNewError
	}
	if err := checkKey(ctx, st, opts.Key); err != nil {
		st.Close()
		return nil, err
	}
	schema, _ := st.SchemaVersion(ctx)
	if err := st.Close(); err != nil {
		return nil, err
	}
	// Fold the WAL back into the file so one file is all there is to move.
	if err := checkpoint(ctx, tmp); err != nil {
		return nil, err
	}
	if err := syncFile(tmp); err != nil {
		return nil, err
	}

	if exists {
		stamp := opts.Now().UTC().Format("20060102T150405Z")
		for _, sfx := range []string{"", "-wal", "-shm"} {
			if _, err := os.Stat(dst + sfx); err == nil {
				if err := os.Rename(dst+sfx, dst+sfx+".before-restore-"+stamp); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return nil, err
	}
	fi, _ := os.Stat(dst)
	return &Info{Path: dst, Bytes: fi.Size(), Schema: schema}, nil
}

// checkKey opens the backup's CA (or, in a store without one, any
// secret) with key.
func checkKey(ctx context.Context, st *sqlstore.Store, key []byte) error {
	if key == nil {
		return nil
	}
	sealer, err := seal.New(key)
	if err != nil {
		return err
	}
	const name = "pki/ca" // pki's name and sealing context for the CA
	v, err := st.Secret(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil // no CA yet: nothing sealed to check against
	}
	if err != nil {
		return err
	}
	if _, err := sealer.Open(v, name); err != nil {
		return fmt.Errorf("%w (key ID %s): restore with the key the backed-up server used: %v", ErrWrongKey, sealer.KeyID(), err)
	}
	return nil
}

func checkpoint(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
