package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// foreignKeysOff marks a SQLite migration that rebuilds a table other
// tables reference (see migrateForeignKeysOff).
const foreignKeysOff = "-- migrate: foreign_keys off\n"

// migrateForeignKeysOff runs a SQLite migration marked foreignKeysOff
// the way SQLite documents for schema changes ALTER TABLE cannot make
// (https://sqlite.org/lang_altertable.html#otheralter): foreign keys
// off on the writer's connection, outside the transaction (inside one the
// PRAGMA does nothing), the migration (body) in one transaction that
// checks every reference the migration can have broken (fkCheckTables:
// PRAGMA foreign_key_check per table) before it commits, and foreign keys
// on again. With them on, dropping a rebuilt table would cascade-delete
// every row referring to it (queue's rows of channels), and renaming it
// would rewrite the references to follow the old table.
// Runs at Open, before anything else uses the connection; the setting
// is put back as it was (on, from the DSN), and an error doing so is
// returned (the caller closes the store), so no connection is left
// without them.
func (s *Store) migrateForeignKeysOff(ctx context.Context, body string, apply func(*Tx) error) (err error) {
	conn, err := s.w.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Back to the connection's own setting afterwards (the DSN's: on).
	var was int
	if err := conn.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&was); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
		return err
	}
	defer func() {
		if _, e := conn.ExecContext(context.Background(), fmt.Sprintf("PRAGMA foreign_keys = %d", was)); e != nil && err == nil {
			err = fmt.Errorf("turn foreign keys back on: %w", e)
		}
	}()
	t, err := conn.BeginTx(ctx, s.d.TxOptions)
	if err != nil {
		return err
	}
	if err := checkedForeignKeysOff(ctx, t, body, func() error { return apply(&Tx{Tx: t, d: s.d, db: s.w}) }); err != nil {
		t.Rollback()
		return err
	}
	return t.Commit()
}

// checkedForeignKeysOff runs apply (the migration body) in t and returns
// an error if a row of a table fkCheckTables names breaks a reference;
// the caller then rolls t back.
func checkedForeignKeysOff(ctx context.Context, t *sql.Tx, body string, apply func() error) error {
	before, err := schemaTables(ctx, t)
	if err != nil {
		return err
	}
	if err := apply(); err != nil {
		return err
	}
	tables, err := fkCheckTables(ctx, t, before, body)
	if err != nil {
		return err
	}
	for _, table := range tables {
		// The first violation is enough: the migration is rolled back.
		var child, parent string
		var rowid sql.NullInt64
		err := t.QueryRowContext(ctx, `SELECT "table", rowid, parent FROM pragma_foreign_key_check(?) LIMIT 1`, table).Scan(&child, &rowid, &parent)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("foreign key check of %s: %w", table, err)
		}
		row := "a row of " + child
		if rowid.Valid { // NULL for a WITHOUT ROWID table
			row += fmt.Sprintf(" (rowid %d)", rowid.Int64)
		}
		return fmt.Errorf("foreign key violations after the migration (rolled back): %s refers to a missing %s row", row, parent)
	}
	return nil
}

// schemaTables is every table of the main schema (lower-cased name) with
// its root page and CREATE statement: a table rebuilt under its old name
// has a new root page, an altered one a new statement.
func schemaTables(ctx context.Context, t *sql.Tx) (map[string]string, error) {
	rows, err := t.QueryContext(ctx, `SELECT name, rootpage, sql FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var name string
		var root int64
		var ddl sql.NullString
		if err := rows.Scan(&name, &root, &ddl); err != nil {
			return nil, err
		}
		m[strings.ToLower(name)] = fmt.Sprint(root, "\x00", ddl.String)
	}
	return m, rows.Err()
}

// fkCheckTables is, sorted, every table (lower-cased) whose rows a
// migration run with foreign keys off can have left referring to a
// missing row, given the schema before it (schemaTables) and its text:
// the tables it touched — created, rebuilt or altered (root page or
// statement changed), dropped, or written by an INSERT, REPLACE, UPDATE
// or DELETE of the text or of a trigger on a touched table — and every
// table that references a touched one (pragma_foreign_key_list, so a
// referencing table added later is not forgotten). A table's own check
// covers its references to others; the referencing tables' checks cover
// references to it. Checking only these instead of the whole database
// (0027 at 100,000 devices: docs/benchmarks.md, Session 12 — hygiene)
// still finds every violation the migration can have made; one that was
// there before, in a table it did not touch, is not its to refuse.
func fkCheckTables(ctx context.Context, t *sql.Tx, before map[string]string, body string) ([]string, error) {
	after, err := schemaTables(ctx, t)
	if err != nil {
		return nil, err
	}
	touched := map[string]bool{}
	for name, v := range after {
		if before[name] != v {
			touched[name] = true
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			touched[name] = true
		}
	}
	for _, name := range writtenTables(body) {
		touched[name] = true
	}
	// Triggers on a touched table can write others (to a fixed point).
	type trigger struct{ table, sql string }
	var triggers []trigger
	rows, err := t.QueryContext(ctx, `SELECT tbl_name, sql FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var tr trigger
		var ddl sql.NullString
		if err := rows.Scan(&tr.table, &ddl); err != nil {
			rows.Close()
			return nil, err
		}
		tr.table, tr.sql = strings.ToLower(tr.table), ddl.String
		triggers = append(triggers, tr)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for grew := true; grew; {
		grew = false
		for _, tr := range triggers {
			if !touched[tr.table] {
				continue
			}
			for _, name := range writtenTables(tr.sql) {
				if !touched[name] {
					touched[name], grew = true, true
				}
			}
		}
	}
	check := map[string]bool{}
	for name := range touched {
		if _, ok := after[name]; ok {
			check[name] = true
		}
	}
	rows, err = t.QueryContext(ctx, `SELECT m.name, f."table" FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			return nil, err
		}
		if touched[strings.ToLower(parent)] {
			check[strings.ToLower(child)] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(check))
	for name := range check {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// writeTarget matches the table an INSERT, REPLACE, UPDATE or DELETE
// writes (with an optional OR-clause and schema), bare or quoted.
var writeTarget = regexp.MustCompile("(?i)\\b(?:INSERT|REPLACE|UPDATE|DELETE)(?:\\s+OR\\s+\\w+)?(?:\\s+(?:INTO|FROM))?\\s+" +
	"(?:(?:\\w+|\"[^\"]*\")\\.)?(\\w+|\"[^\"]*\"|`[^`]*`|\\[[^\\]]*\\])")

// writtenTables is the lower-cased names sql's statements write to. It
// reads text, comments included, so it can name more than is written
// (a word after ON DELETE, say, that is no table): extra names cost a
// check at most; a name it missed would skip one, so it errs wide.
func writtenTables(sql string) []string {
	var out []string
	for _, m := range writeTarget.FindAllStringSubmatch(sql, -1) {
		name := m[1]
		if len(name) >= 2 && strings.ContainsAny(name[:1], "\"`[") {
			name = name[1 : len(name)-1]
		}
		out = append(out, strings.ToLower(name))
	}
	return out
}
