package postgres

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// TestPipelineCommitsOnlyWhatSucceeded: a piped transaction (the dialect's
// Pipeline, a device result's transaction) commits with RowCommit only when
// every statement before the COMMIT succeeded: a failing last statement, a
// failing statement queued with Later (reported as a *sqlstore.LaterError by
// the statement it went out with) and an error of fn after statements were
// sent each leave nothing behind, and the pool's one connection is clean
// for the next transaction (no "current transaction is aborted"). A
// RowCommit whose statement finds no row commits (sql.ErrNoRows).
func TestPipelineCommitsOnlyWhatSucceeded(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("pgx", pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // every transaction on the same connection
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id INT PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	rows := func() int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	run := func(fn func(sqlstore.PipeTx) error) error {
		return pipeline(ctx, db, sql.LevelRepeatableRead, fn)
	}

	// The last statement fails: its COMMIT never ran.
	err = run(func(p sqlstore.PipeTx) error {
		if _, err := p.Exec(ctx, `INSERT INTO t VALUES (1, 'a')`); err != nil {
			return err
		}
		var x int
		return p.RowCommit(ctx, `SELECT 1 / (SELECT COUNT(*) - 1 FROM t)`).Scan(&x) // division by zero
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22012" || rows() != 0 {
		t.Fatalf("failed last statement: %v, %d rows (want division_by_zero, 0 rows)", err, rows())
	}

	// A Later statement fails: the statement it went with reports it,
	// and did not run (nor the COMMIT).
	err = run(func(p sqlstore.PipeTx) error {
		p.Later(`INSERT INTO t VALUES ($1, 'b')`, []any{2}, nil)
		p.Later(`INSERT INTO t VALUES ($1, NULL)`, []any{3}, func(int64) { t.Error("a failed Later statement's done was called") })
		var v string
		return p.RowCommit(ctx, `INSERT INTO t VALUES (4, 'd') RETURNING v`).Scan(&v)
	})
	var later *sqlstore.LaterError
	if !errors.As(err, &later) || !errors.As(later.Err, &pe) || pe.Code != "23502" || rows() != 0 {
		t.Fatalf("failed Later statement: %v, %d rows (want a LaterError of not_null_violation, 0 rows)", err, rows())
	}

	// fn fails after its BEGIN and a write went out: rolled back.
	boom := errors.New("boom")
	err = run(func(p sqlstore.PipeTx) error {
		if _, err := p.Exec(ctx, `INSERT INTO t VALUES (5, 'e')`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || rows() != 0 {
		t.Fatalf("fn's error: %v, %d rows (want boom, 0 rows)", err, rows())
	}

	// Later statements and a RowCommit that finds no row: committed,
	// done called with the rows each changed.
	var changed []int64
	err = run(func(p sqlstore.PipeTx) error {
		var v string
		if err := p.Row(ctx, `SELECT v FROM t WHERE id = $1`, 1).Scan(&v); !errors.Is(err, sql.ErrNoRows) {
			t.Errorf("read of a missing row: %v, want sql.ErrNoRows", err)
		}
		p.Later(`INSERT INTO t VALUES ($1, 'f'), ($2, 'g')`, []any{6, 7}, func(n int64) { changed = append(changed, n) })
		p.Later(`UPDATE t SET v = 'h' WHERE id = $1`, []any{6}, func(n int64) { changed = append(changed, n) })
		err := p.RowCommit(ctx, `SELECT v FROM t WHERE id = $1`, 8).Scan(&v)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		return p.Commit(ctx) // nothing more to do
	})
	if err != nil || rows() != 2 || len(changed) != 2 || changed[0] != 2 || changed[1] != 1 {
		t.Fatalf("commit with no row: %v, %d rows, changed %v (want nil, 2 rows, [2 1])", err, rows(), changed)
	}

	// Statements after RowCommit run autocommitted.
	err = run(func(p sqlstore.PipeTx) error {
		var v string
		if err := p.RowCommit(ctx, `SELECT v FROM t WHERE id = $1`, 6).Scan(&v); err != nil || v != "h" {
			t.Errorf("RowCommit: %q %v", v, err)
		}
		_, err := p.Exec(ctx, `INSERT INTO t VALUES (9, 'i')`)
		return err
	})
	if err != nil || rows() != 3 {
		t.Fatalf("statement after the commit: %v, %d rows (want 3)", err, rows())
	}
}

// TestPipelineBrokenMidway: a piped transaction whose connection dies
// (pg_terminate_backend), whose context ends (the client disconnected)
// or whose statement times out before its RowCommit answers commits
// nothing, reports the failure, and leaves the pool a usable connection
// (the dead one dropped, the timed-out one rolled back): the next
// transaction on the pool of one connection commits.
func TestPipelineBrokenMidway(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id INT PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	rows := func() int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
			t.Fatalf("the pool after a broken transaction: %v", err)
		}
		return n
	}
	run := func(ctx context.Context, fn func(sqlstore.PipeTx) error) error {
		return pipeline(ctx, db, sql.LevelRepeatableRead, fn)
	}

	// Killed between the first write and the commit.
	err = run(ctx, func(p sqlstore.PipeTx) error {
		var pid int
		if err := p.Row(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			return err
		}
		p.Later(`INSERT INTO t VALUES ($1, 'a')`, []any{1}, nil)
		if _, err := admin.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
		var v string
		return p.RowCommit(ctx, `SELECT v FROM t WHERE id = $1`, 1).Scan(&v)
	})
	if err == nil || rows() != 0 {
		t.Fatalf("killed connection: %v, %d rows (want an error, 0 rows)", err, rows())
	}

	// The context ends while the last statement runs.
	cctx, cancel := context.WithCancel(ctx)
	err = run(cctx, func(p sqlstore.PipeTx) error {
		if _, err := p.Exec(cctx, `INSERT INTO t VALUES (2, 'b')`); err != nil {
			return err
		}
		go func() { time.Sleep(100 * time.Millisecond); cancel() }()
		var x string
		return p.RowCommit(cctx, `SELECT pg_sleep(5)::text`).Scan(&x)
	})
	cancel()
	if err == nil || rows() != 0 {
		t.Fatalf("cancelled: %v, %d rows (want an error, 0 rows)", err, rows())
	}

	// A statement timeout: the transaction failed on a live connection.
	err = run(ctx, func(p sqlstore.PipeTx) error {
		if _, err := p.Exec(ctx, `INSERT INTO t VALUES (3, 'c')`); err != nil {
			return err
		}
		if _, err := p.Exec(ctx, `SET LOCAL statement_timeout = 50`); err != nil {
			return err
		}
		var x string
		return p.RowCommit(ctx, `SELECT pg_sleep(5)::text`).Scan(&x)
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" || rows() != 0 {
		t.Fatalf("statement timeout: %v, %d rows (want query_canceled, 0 rows)", err, rows())
	}

	// The pool's connection is clean: the next transaction commits.
	err = run(ctx, func(p sqlstore.PipeTx) error {
		var v string
		return p.RowCommit(ctx, `INSERT INTO t VALUES (4, 'd') RETURNING v`).Scan(&v)
	})
	if err != nil || rows() != 1 {
		t.Fatalf("after the broken ones: %v, %d rows (want nil, 1 row)", err, rows())
	}
}

// TestPipelineAhead: a statement queued with Ahead goes out in the same
// round trip as the next statement, after it, and its rows (all of them,
// NULLs included) are read then and answered after; read before any
// statement took it out it answers an error. A failed Ahead statement is
// its Rows' error and aborts the transaction (nothing commits); with a
// COMMIT in the same write the commit's error is it. When the statement
// it went with fails, its Rows answer that failure.
func TestPipelineAhead(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("pgx", pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id INT PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	rows := func() int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	run := func(fn func(sqlstore.PipeTx) error) error {
		return pipeline(ctx, db, sql.LevelRepeatableRead, fn)
	}
	type pair struct {
		id int
		v  sql.NullString
	}
	read := func(r sqlstore.Rows) ([]pair, error) {
		defer r.Close()
		var out []pair
		for r.Next() {
			var p pair
			if err := r.Scan(&p.id, &p.v); err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, r.Err()
	}

	// Rows of a statement sent after the first (which it sees), kept.
	err = run(func(p sqlstore.PipeTx) error {
		a := p.Ahead(`SELECT id, v FROM t ORDER BY id`)
		if _, err := read(a); err == nil {
			t.Error("Ahead rows read before they went out: no error")
		}
		var n int
		if err := p.Row(ctx, `WITH i AS (INSERT INTO t VALUES (1, 'a'), (2, NULL) RETURNING 1) SELECT COUNT(*) FROM i`).Scan(&n); err != nil || n != 2 {
			t.Errorf("insert: %d %v", n, err)
		}
		got, err := read(a)
		if err != nil || len(got) != 2 || got[0].id != 1 || got[0].v.String != "a" || got[1].id != 2 || got[1].v.Valid {
			t.Errorf("ahead rows: %+v %v, want (1, a), (2, NULL)", got, err)
		}
		return p.Commit(ctx)
	})
	if err != nil || rows() != 2 {
		t.Fatalf("ahead read: %v, %d rows (want 2)", err, rows())
	}

	// A failed Ahead statement: its Rows' error; the transaction is
	// aborted, so the next statement fails and nothing commits.
	err = run(func(p sqlstore.PipeTx) error {
		a := p.Ahead(`SELECT 1 / (SELECT COUNT(*) - 3 FROM t), 'x'`) // 0 once the insert ran
		if _, err := p.Exec(ctx, `INSERT INTO t VALUES (3, 'c')`); err != nil {
			t.Errorf("the statement before the failing one: %v", err)
		}
		var pe *pgconn.PgError
		if _, err := read(a); !errors.As(err, &pe) || pe.Code != "22012" {
			t.Errorf("failed ahead statement: %v, want division_by_zero", err)
		}
		return p.Commit(ctx)
	})
	if err == nil || rows() != 2 {
		t.Fatalf("commit after a failed ahead statement: %v, %d rows (want an error, 2 rows)", err, rows())
	}

	// With the COMMIT in the same write: the commit fails with it.
	err = run(func(p sqlstore.PipeTx) error {
		p.Ahead(`SELECT 1 / (SELECT COUNT(*) - 3 FROM t), 'x'`)
		var v string
		return p.RowCommit(ctx, `INSERT INTO t VALUES (4, 'd') RETURNING v`).Scan(&v)
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22012" || rows() != 2 {
		t.Fatalf("RowCommit with a failing ahead statement: %v, %d rows (want division_by_zero, 2 rows)", err, rows())
	}

	// The statement it went with fails: that failure is its answer.
	err = run(func(p sqlstore.PipeTx) error {
		a := p.Ahead(`SELECT id, v FROM t`)
		_, err := p.Exec(ctx, `INSERT INTO t VALUES (1, 'dup')`)
		if _, aerr := read(a); !errors.As(aerr, &pe) || pe.Code != "23505" {
			t.Errorf("ahead rows after a failed statement: %v, want its unique_violation", aerr)
		}
		return err
	})
	if !errors.As(err, &pe) || pe.Code != "23505" || rows() != 2 {
		t.Fatalf("failed statement with an ahead one: %v, %d rows", err, rows())
	}
}
