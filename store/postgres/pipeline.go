package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// pipeline is the dialect's sqlstore.Dialect.Pipeline: fn's transaction
// runs on pgx's own API on one connection of db's pool, whose BEGIN is
// sent in one network write with the first statement and whose last
// statement may carry the COMMIT (pgx.Batch: the statements, then one
// Sync; an error skips the rest up to the Sync, so a COMMIT behind a
// failed statement never runs). database/sql sends BEGIN and waits for
// it, and COMMIT on its own: on a device's result (RecordResultNext)
// that is two of a transaction's four to six round trips, each waiting
// for the Go server to be scheduled and PostgreSQL to answer ("Session
// 14 — pgwave6", docs/benchmarks.md).
//
// A transaction fn leaves open (an error, or a statement's failure) is
// rolled back before the connection goes back to the pool; when that
// fails the connection is closed (stdlib's ResetSession then drops it
// from the pool, as it drops any connection left in a transaction).
func pipeline(ctx context.Context, db *sql.DB, iso sql.IsolationLevel, fn func(sqlstore.PipeTx) error) error {
	begin, err := beginSQL(iso)
	if err != nil {
		return err
	}
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("postgres: connection is a %T, not pgx's", dc)
		}
		conn := sc.Conn()
		p := &pipeTx{conn: conn, begin: begin}
		err := fn(p)
		if conn.IsClosed() || conn.PgConn().TxStatus() == 'I' {
			return err
		}
		// Open, or failed: roll back. Without the caller's
		// cancellation: the rollback is what returns the connection to
		// a clean state.
		if _, rerr := conn.Exec(context.WithoutCancel(ctx), "rollback"); rerr != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
		if err == nil {
			err = errors.New("postgres: piped transaction left open")
		}
		return err
	})
}

// beginSQL is BEGIN at isolation iso.
func beginSQL(iso sql.IsolationLevel) (string, error) {
	switch iso {
	case sql.LevelDefault:
		return "begin", nil
	case sql.LevelReadCommitted:
		return "begin isolation level read committed", nil
	case sql.LevelRepeatableRead:
		return "begin isolation level repeatable read", nil
	case sql.LevelSerializable:
		return "begin isolation level serializable", nil
	}
	return "", fmt.Errorf("postgres: isolation level %v not supported", iso)
}

// pipeTx is a sqlstore.PipeTx on one pgx connection. begin is the BEGIN
// not yet sent ("" once sent); later the statements queued to go out
// with the next one, before it (Later); ahead those to go out after it
// (Ahead); done: RowCommit committed.
type pipeTx struct {
	conn  *pgx.Conn
	begin string
	later []laterStmt
	ahead []*aheadRows
	done  bool
}

// aheadRows is a statement of PipeTx.Ahead and, once sent, its answer:
// every row's values as PostgreSQL sent them (copied: pgx reuses its
// buffers), scanned at Scan with the connection's types (pgx.ScanRow);
// or the statement's error. i is the row Next moved to (1-based).
type aheadRows struct {
	q      string
	args   []any
	conn   *pgx.Conn
	sent   bool
	fields []pgconn.FieldDescription
	vals   [][][]byte
	err    error
	i      int
}

// errAheadNotSent: an Ahead statement's rows were read before any
// statement took it out (a mistake of the caller's order).
var errAheadNotSent = errors.New("postgres: a statement sent ahead was read before it went out")

func (r *aheadRows) Next() bool {
	if !r.sent || r.err != nil || r.i >= len(r.vals) {
		return false
	}
	r.i++
	return true
}

func (r *aheadRows) Scan(dest ...any) error {
	if r.i == 0 || r.i > len(r.vals) {
		return errors.New("postgres: Scan without a row")
	}
	return pgx.ScanRow(r.conn.TypeMap(), r.fields, r.vals[r.i-1], dest...)
}

func (r *aheadRows) Err() error {
	if !r.sent {
		return errAheadNotSent
	}
	return r.err
}

func (r *aheadRows) Close() {}

// read reads the statement's answer from br (all its rows: a few).
func (r *aheadRows) read(br pgx.BatchResults) {
	r.sent = true
	rows, err := br.Query()
	if err != nil {
		r.err = err
		return
	}
	for rows.Next() {
		if r.fields == nil {
			r.fields = append([]pgconn.FieldDescription(nil), rows.FieldDescriptions()...)
		}
		raw := rows.RawValues()
		row := make([][]byte, len(raw))
		for i, v := range raw {
			if v != nil {
				row[i] = append(make([]byte, 0, len(v)), v...)
			}
		}
		r.vals = append(r.vals, row)
	}
	rows.Close()
	r.err = rows.Err()
}

// laterStmt is a statement of PipeTx.Later.
type laterStmt struct {
	q    string
	args []any
	done func(int64)
}

// direct: nothing waits to go out with the next statement.
func (p *pipeTx) direct() bool { return p.begin == "" && len(p.later) == 0 && len(p.ahead) == 0 }

func (p *pipeTx) Ahead(q string, args ...any) sqlstore.Rows {
	r := &aheadRows{q: q, args: args, conn: p.conn}
	p.ahead = append(p.ahead, r)
	return r
}

func (p *pipeTx) Later(q string, args []any, done func(int64)) {
	p.later = append(p.later, laterStmt{q: q, args: args, done: done})
}

// send sends the pending BEGIN and later statements (if any), q (if not
// empty), the ahead statements (if any) and, with commit, COMMIT as one
// batch, and reads them in order: the BEGIN's answer, the later
// statements' (a failure as a *sqlstore.LaterError), q's through read,
// the ahead statements' (kept in their Rows), the COMMIT's. The first
// error (other than q's pgx.ErrNoRows; an ahead statement's only with
// commit) is the answer; nothing after it ran. The COMMIT's tag is
// checked: a transaction that had failed answers COMMIT with ROLLBACK.
func (p *pipeTx) send(ctx context.Context, q string, args []any, commit bool, read func(pgx.BatchResults) error) error {
	b := &pgx.Batch{}
	begin := p.begin != ""
	if begin {
		b.Queue(p.begin)
		p.begin = ""
	}
	later := p.later
	p.later = nil
	for _, l := range later {
		b.Queue(l.q, l.args...)
	}
	if q != "" {
		b.Queue(q, args...)
	}
	ahead := p.ahead
	p.ahead = nil
	for _, a := range ahead {
		b.Queue(a.q, a.args...)
	}
	if commit {
		b.Queue("commit")
	}
	br := p.conn.SendBatch(ctx, b)
	var err error
	if begin {
		_, err = br.Exec()
	}
	for _, l := range later {
		if err != nil {
			break
		}
		tag, lerr := br.Exec()
		if lerr != nil {
			err = &sqlstore.LaterError{Err: lerr}
		} else if l.done != nil {
			l.done(tag.RowsAffected())
		}
	}
	if err == nil && q != "" {
		err = read(br)
	}
	aheadFailed := false
	for _, a := range ahead {
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			// Not run (the batch stopped before it).
			a.sent, a.err = true, err
			continue
		}
		a.read(br)
		if a.err != nil {
			aheadFailed = true
			if commit && err == nil {
				err = a.err
			}
		}
	}
	if commit && (err == nil || errors.Is(err, pgx.ErrNoRows)) {
		tag, cerr := br.Exec()
		switch {
		case cerr != nil:
			err = cerr
		case tag.String() != "COMMIT":
			err = fmt.Errorf("postgres: commit answered %q", tag.String())
		default:
			p.done = true
		}
	}
	if cerr := br.Close(); err == nil && !aheadFailed {
		// (Close answers the batch's first failure again: an ahead
		// statement's is its Rows' to report, not q's.)
		err = cerr
	}
	return err
}

func (p *pipeTx) Row(ctx context.Context, q string, args ...any) sqlstore.Row {
	return pipeRow{p: p, ctx: ctx, q: q, args: args}
}

func (p *pipeTx) RowCommit(ctx context.Context, q string, args ...any) sqlstore.Row {
	return pipeRow{p: p, ctx: ctx, q: q, args: args, commit: !p.done}
}

// pipeRow is a Row whose statement is sent at Scan.
type pipeRow struct {
	p      *pipeTx
	ctx    context.Context
	q      string
	args   []any
	commit bool
}

func (r pipeRow) Scan(dest ...any) error {
	if r.p.direct() && !r.commit {
		return r.p.conn.QueryRow(r.ctx, r.q, r.args...).Scan(dest...)
	}
	return r.p.send(r.ctx, r.q, r.args, r.commit, func(br pgx.BatchResults) error { return br.QueryRow().Scan(dest...) })
}

func (p *pipeTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	if p.direct() {
		tag, err := p.conn.Exec(ctx, q, args...)
		return tag.RowsAffected(), err
	}
	var n int64
	err := p.send(ctx, q, args, false, func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

func (p *pipeTx) Rows(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	if !p.direct() {
		// Not so far (a result's transaction starts with a Row, and its
		// rows are read before any Later): what waits goes first, on
		// its own.
		if err := p.send(ctx, "", nil, false, nil); err != nil {
			return nil, err
		}
	}
	return p.conn.Query(ctx, q, args...)
}

func (p *pipeTx) Commit(ctx context.Context) error {
	if p.done {
		return nil
	}
	if p.begin != "" && len(p.later) == 0 {
		// Nothing was sent: nothing to commit (an Ahead statement's
		// answer is wanted only with the statement it goes with).
		p.begin, p.ahead = "", nil
		return nil
	}
	if len(p.later) > 0 || len(p.ahead) > 0 {
		return p.send(ctx, "", nil, true, nil)
	}
	tag, err := p.conn.Exec(ctx, "commit")
	if err != nil {
		return err
	}
	if tag.String() != "COMMIT" {
		return fmt.Errorf("postgres: commit answered %q", tag.String())
	}
	p.done = true
	return nil
}
