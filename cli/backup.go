package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pomona-mdm/pomona/backup"
	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/store/open"
)

// storeFlags locate a local store and its sealing key the way `serve`
// does (--data, --db, --secret-key and their POMONA_ variables).
type storeFlags struct{ data, db, secretKey string }

func (f *storeFlags) register(fs interface {
	StringVar(p *string, name, value, usage string)
}) {
	fs.StringVar(&f.data, "data", "./pomona-data", "the server's data directory")
	fs.StringVar(&f.db, "db", "", "the server's --db, if not the SQLite file in --data (PostgreSQL: use pg_dump, docs/postgresql.md)")
	fs.StringVar(&f.secretKey, "secret-key", "", "the server's sealing key, if not <data>/secret.key")
}

// sqlitePath is the SQLite file these flags name, or a usage error for
// PostgreSQL.
func (f *storeFlags) sqlitePath() (string, error) {
	if f.db == "" {
		return filepath.Join(f.data, "pomona.db"), nil
	}
	if p, ok := open.SQLitePath(f.db); ok {
		return p, nil
	}
	return "", usagef("--db is not SQLite: back up PostgreSQL with pg_dump and restore with pg_restore (docs/postgresql.md, Backups)")
}

// key is the sealing key these flags name, where it came from, and nil
// when there is none (no --secret-key and no <data>/secret.key).
func (f *storeFlags) key() (key []byte, from string, err error) {
	if f.secretKey != "" {
		k, err := seal.ParseKey(f.secretKey)
		if err != nil {
			return nil, "", usagef("--secret-key: %v", err)
		}
		return k, "POMONA_SECRET_KEY / --secret-key", nil
	}
	p := filepath.Join(f.data, "secret.key")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	k, err := seal.ParseKey(string(b))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", p, err)
	}
	return k, p, nil
}

func keyID(k []byte) string {
	s, err := seal.New(k)
	if err != nil {
		return "?"
	}
	return s.KeyID()
}

// runBackup is `pomona backup`: it copies the SQLite store of a running
// (or stopped) server.
func runBackup(fs *flag.FlagSet) func(*call) error {
	var sf storeFlags
	sf.register(fs)
	to := fs.String("to", "", "the backup file to write (must not exist)")
	return func(c *call) error {
		if *to == "" {
			return usagef("--to FILE is required, e.g. --to /backup/pomona-$(date +%%F).db")
		}
		path, err := sf.sqlitePath()
		if err != nil {
			return err
		}
		info, err := backup.SQLite(c.Ctx, path, *to)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "Backed up %s (schema v%d, %d bytes) to %s.\n", path, info.Schema, info.Bytes, info.Path)
		fmt.Fprintln(c.Stdout, "\nThe backup holds the sealed secrets (CA, TLS and push keys, second-factor secrets) but NOT the")
		fmt.Fprintln(c.Stdout, "sealing key that opens them. Keep a copy of the key somewhere other than the backups:")
		k, from, err := sf.key()
		switch {
		case err != nil:
			fmt.Fprintf(c.Stdout, "  (cannot read the key: %v)\n", err)
		case k == nil:
			fmt.Fprintf(c.Stdout, "  no %s here: the server uses POMONA_SECRET_KEY; keep that value\n", filepath.Join(sf.data, "secret.key"))
		default:
			fmt.Fprintf(c.Stdout, "  %s (key ID %s)\n", from, keyID(k))
		}
		fmt.Fprintln(c.Stdout, "Without it a restored server cannot open its CA and refuses to start.")
		return nil
	}
}

// runRestore is `pomona restore`: it puts a backup into a data directory.
func runRestore(fs *flag.FlagSet) func(*call) error {
	var sf storeFlags
	sf.register(fs)
	from := fs.String("from", "", "the backup file (made by pomona backup)")
	force := fs.Bool("force", false, "replace an existing store that no server is using (its files are kept as *.before-restore-<time>)")
	return func(c *call) error {
		if *from == "" {
			return usagef("--from FILE is required")
		}
		if sf.db != "" {
			if _, err := sf.sqlitePath(); err != nil {
				return err
			}
			return usagef("restore writes <data>/pomona.db: give --data, not --db")
		}
		k, keyFrom, err := sf.key()
		if err != nil {
			return err
		}
		info, err := backup.Restore(c.Ctx, *from, sf.data, backup.RestoreOptions{Force: *force, Key: k})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "Restored %s into %s (schema v%d).\n", *from, info.Path, info.Schema)
		if k == nil {
			fmt.Fprintf(c.Stdout, "\nNo sealing key here yet: before `pomona serve --data %s`, put the backed-up server's key into\n", sf.data)
			fmt.Fprintf(c.Stdout, "%s (mode 0600) or set POMONA_SECRET_KEY. Without it the server refuses to start.\n", filepath.Join(sf.data, "secret.key"))
		} else {
			fmt.Fprintf(c.Stdout, "The sealing key from %s (key ID %s) opens it.\n", keyFrom, keyID(k))
		}
		fmt.Fprintf(c.Stdout, "Start the server: pomona serve --data %s\n", sf.data)
		return nil
	}
}
