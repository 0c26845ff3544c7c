package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// foreignKeysOff marks a SQLite migration that rebuilds a table other
// tables reference (see migrateForeignKeysOff).
const foreignKeysOff = "-- migrate: foreign_keys off\n"

// markedForeignKeysOff reports whether a migration's text has the
// foreignKeysOff line, whatever its line ends: a checkout that turned
// them into CRLF (Windows, core.autocrlf) embedded files whose marker
// "…off\n" was no longer found, and the rebuild ran with foreign keys
// on — its DROP TABLE cascade-deleting every referring row (0027: the
// queue) before anything could check it.
func markedForeignKeysOff(body string) bool {
	want := strings.TrimSuffix(foreignKeysOff, "\n")
	for line := range strings.Lines(body) {
		if strings.TrimRight(line, "\r\n") == want {
			return true
		}
	}
	return false
}

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

// schemaSnapshot is what fkCheckTables compares and reads: every table
// of the main schema (lower-cased name) with its root page and CREATE
// statement — a table rebuilt under its old name has a new root page, an
// altered one a new statement — and every trigger.
type schemaSnapshot struct {
	tables   map[string]string
	triggers []trigger
}

// trigger is a trigger's table (lower-cased) and CREATE statement.
type trigger struct{ table, sql string }

// schemaTables reads the schema's tables and triggers (schemaSnapshot).
func schemaTables(ctx context.Context, t *sql.Tx) (schemaSnapshot, error) {
	rows, err := t.QueryContext(ctx, `SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master WHERE type IN ('table', 'trigger')`)
	if err != nil {
		return schemaSnapshot{}, err
	}
	defer rows.Close()
	m := schemaSnapshot{tables: map[string]string{}}
	for rows.Next() {
		var typ, name, table string
		var root sql.NullInt64
		var ddl sql.NullString
		if err := rows.Scan(&typ, &name, &table, &root, &ddl); err != nil {
			return schemaSnapshot{}, err
		}
		if typ == "trigger" {
			m.triggers = append(m.triggers, trigger{strings.ToLower(table), ddl.String})
			continue
		}
		m.tables[strings.ToLower(name)] = fmt.Sprint(root.Int64, "\x00", ddl.String)
	}
	return m, rows.Err()
}

// fkCheckTables is, sorted, every table (lower-cased) whose rows a
// migration run with foreign keys off can have left referring to a
// missing row, given the schema before it (schemaTables) and its text:
// the tables it touched — created, rebuilt or altered (root page or
// statement changed), dropped, or written by an INSERT, REPLACE, UPDATE
// or DELETE of the text or of a trigger on a touched table, one there
// before or after it (writtenTables; a write whose table it cannot read
// makes every table touched) — and every
// table that references a touched one (pragma_foreign_key_list, so a
// referencing table added later is not forgotten). A table's own check
// covers its references to others; the referencing tables' checks cover
// references to it. Checking only these instead of the whole database
// (0027 at 100,000 devices: docs/benchmarks.md, Session 12 — hygiene)
// still finds every violation the migration can have made; one that was
// there before, in a table it did not touch, is not its to refuse.
func fkCheckTables(ctx context.Context, t *sql.Tx, before schemaSnapshot, body string) ([]string, error) {
	after, err := schemaTables(ctx, t)
	if err != nil {
		return nil, err
	}
	touched := map[string]bool{}
	for name, v := range after.tables {
		if before.tables[name] != v {
			touched[name] = true
		}
	}
	for name := range before.tables {
		if _, ok := after.tables[name]; !ok {
			touched[name] = true
		}
	}
	// A write whose table the text does not name plainly: every table.
	written, sure := writtenTables(body)
	for _, name := range written {
		touched[name] = true
	}
	// Triggers on a touched table can write others (to a fixed point):
	// those of before too, as the migration may have dropped one that
	// had written.
	triggers := append(append([]trigger(nil), before.triggers...), after.triggers...)
	for grew := true; grew; {
		grew = false
		for _, tr := range triggers {
			if !touched[tr.table] {
				continue
			}
			names, ok := writtenTables(tr.sql)
			sure = sure && ok
			for _, name := range names {
				if !touched[name] {
					touched[name], grew = true, true
				}
			}
		}
	}
	if !sure {
		for name := range after.tables {
			touched[name] = true
		}
	}
	check := map[string]bool{}
	for name := range touched {
		if _, ok := after.tables[name]; ok {
			check[name] = true
		}
	}
	rows, err := t.QueryContext(ctx, `SELECT m.name, f."table" FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table'`)
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

// writtenTables is the lower-cased names sql's statements write to: the
// table after INSERT [OR …] INTO, REPLACE INTO, DELETE FROM and UPDATE
// [OR …] (not after ON or DO: a foreign key's or an upsert's action),
// read from SQLite's tokens (sqlTokens: comments, quoted names, a schema
// before the name), not from the text's spelling, so a comment or no
// space between the words hides none. It can name more than is written
// (UPDATE in a trigger's event, say, names its next word): extra names
// cost a check at most. sure is false when a write's table is not a name
// it can read; the caller then checks every table.
func writtenTables(sql string) (names []string, sure bool) {
	toks := sqlTokens(sql)
	is := func(i int, word string) bool {
		return i >= 0 && i < len(toks) && toks[i].kind == tokWord && strings.EqualFold(toks[i].text, word)
	}
	sure = true
	for i, tk := range toks {
		if tk.kind != tokWord {
			continue
		}
		j := i + 1
		switch strings.ToUpper(tk.text) {
		case "INSERT":
			if is(j, "OR") {
				j += 2
			}
			if !is(j, "INTO") {
				continue // a trigger's event: INSERT ON
			}
			j++
		case "REPLACE":
			if !is(j, "INTO") {
				continue // replace(…), OR REPLACE, ON CONFLICT REPLACE
			}
			j++
		case "DELETE":
			if !is(j, "FROM") {
				continue // ON DELETE action, a trigger's event
			}
			j++
		case "UPDATE":
			if is(i-1, "ON") || is(i-1, "DO") {
				continue // ON UPDATE action, DO UPDATE SET
			}
			if is(j, "OR") {
				j += 2
			}
		default:
			continue
		}
		// [schema .] table
		if j+2 < len(toks) && toks[j+1].kind == tokPunct && toks[j+1].text == "." {
			j += 2
		}
		if j >= len(toks) || (toks[j].kind != tokWord && toks[j].kind != tokQuoted) {
			sure = false
			continue
		}
		names = append(names, strings.ToLower(toks[j].text))
	}
	return names, sure
}

// Kinds of sqlToken.
const (
	tokWord   = iota // a bare word: keyword or name
	tokQuoted        // "…", `…`, […] or '…' (SQLite takes a string as a name), unquoted
	tokPunct         // one other character
	tokNumber
)

// sqlToken is one token of SQL text.
type sqlToken struct {
	kind int
	text string
}

// sqlTokens splits SQL text into tokens as SQLite's tokenizer does for
// what writtenTables reads: whitespace and comments (--, /* */) between
// them dropped, quoted names and strings with their doubled quote
// characters undone, a word of letters, digits, _, $ and any non-ASCII
// byte. Unterminated quotes and comments run to the end.
func sqlTokens(s string) []sqlToken {
	word := func(c byte, first bool) bool {
		return c == '_' || c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' ||
			!first && ('0' <= c && c <= '9' || c == '$')
	}
	var toks []sqlToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case strings.HasPrefix(s[i:], "--"):
			if n := strings.IndexByte(s[i:], '\n'); n >= 0 {
				i += n + 1
			} else {
				i = len(s)
			}
		case strings.HasPrefix(s[i:], "/*"):
			if n := strings.Index(s[i+2:], "*/"); n >= 0 {
				i += 2 + n + 2
			} else {
				i = len(s)
			}
		case c == '"' || c == '`' || c == '\'' || c == '[':
			end := c
			if c == '[' {
				end = ']'
			}
			var b strings.Builder
			j := i + 1
			for j < len(s) {
				if s[j] != end {
					b.WriteByte(s[j])
					j++
					continue
				}
				if end != ']' && j+1 < len(s) && s[j+1] == end { // doubled
					b.WriteByte(end)
					j += 2
					continue
				}
				j++
				break
			}
			toks = append(toks, sqlToken{tokQuoted, b.String()})
			i = j
		case word(c, true):
			j := i + 1
			for j < len(s) && word(s[j], false) {
				j++
			}
			toks = append(toks, sqlToken{tokWord, s[i:j]})
			i = j
		case '0' <= c && c <= '9':
			j := i + 1
			for j < len(s) && (word(s[j], false) || s[j] == '.') {
				j++
			}
			toks = append(toks, sqlToken{tokNumber, s[i:j]})
			i = j
		default:
			toks = append(toks, sqlToken{tokPunct, s[i : i+1]})
			i++
		}
	}
	return toks
}
