package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Row is one row's answer of a PipeTx statement, read by Scan
// (sql.ErrNoRows, or an error wrapping it, when there is none).
type Row interface{ Scan(dest ...any) error }

// Rows are a PipeTx statement's rows, read as database/sql's: Next, Scan,
// then Err; Close must be called.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// PipeTx is a transaction on one connection of a backend that can send
// several statements in one network write and read their answers after
// (PostgreSQL's pipeline; Dialect.Pipeline). Its BEGIN is not sent on its
// own: it goes out with the transaction's first statement; and
// RowCommit sends the last statement with the COMMIT. Statements are
// already rebound ($1, $2, …). A transaction still open when the
// function given to Dialect.Pipeline returns is rolled back.
type PipeTx interface {
	// Row runs q (with the BEGIN, if not sent yet) and answers its row;
	// nothing is sent before Scan.
	Row(ctx context.Context, q string, args ...any) Row
	// Rows runs q (with the BEGIN, if not sent yet).
	Rows(ctx context.Context, q string, args ...any) (Rows, error)
	// Exec runs q (with the BEGIN, if not sent yet) and answers the rows
	// it changed.
	Exec(ctx context.Context, q string, args ...any) (int64, error)
	// RowCommit runs q and then COMMIT in one round trip; Scan answers
	// q's row once the COMMIT has succeeded (sql.ErrNoRows: committed,
	// q found no row), or q's or the COMMIT's error (nothing
	// committed). After it, statements run autocommitted and Commit does
	// nothing.
	RowCommit(ctx context.Context, q string, args ...any) Row
	// Commit commits (nothing to do when no statement was sent, or
	// RowCommit committed).
	Commit(ctx context.Context) error
	// Later queues q to go out in the same write as the transaction's
	// next statement (or its COMMIT), before it: nobody waits for its
	// answer now. done (if not nil) gets the rows it changed once it has
	// run. If q fails, nothing after it runs and the next statement's
	// answer is a *LaterError with q's error.
	Later(q string, args []any, done func(n int64))
	// Ahead queues q to go out in the same write as the transaction's
	// next statement (or its COMMIT), after it: a read or write the
	// caller will want next but cannot name as that statement's part
	// (RecordResultNext's profile work, sent with the result's
	// statement before it is known to be needed: written to do nothing
	// when it is not). Its rows are read and kept when that statement's
	// answer is read; the Rows answer them after (Err: q's error, or,
	// when the statement it went with failed, that one's; before any
	// statement took it out, an error). A failed q aborts the
	// transaction: nothing after it runs.
	Ahead(q string, args ...any) Rows
}

// LaterError is the failure of a statement queued with PipeTx.Later,
// answered by the statement it went out with. It does not unwrap: the
// statement that reports it did not fail itself (Tx.execLater's callers
// say what a failure means).
type LaterError struct{ Err error }

func (e *LaterError) Error() string {
	return "an earlier statement of the transaction failed: " + e.Err.Error()
}

// errNotPiped: the transaction reached work that runs only on a
// database/sql transaction (Tx.QueryRowContext, Tx.QueryContext), before
// sending any of it; the caller runs it again that way (pipedTx).
var errNotPiped = errors.New("sqlstore: this work needs a database/sql transaction")

// pipeResult is a PipeTx Exec's answer as a sql.Result.
type pipeResult int64

func (r pipeResult) RowsAffected() (int64, error) { return int64(r), nil }
func (r pipeResult) LastInsertId() (int64, error) {
	return 0, errors.New("sqlstore: no LastInsertId on a piped transaction")
}

// row is QueryRowContext for the statements that run on a piped
// transaction too (Tx.pipe): RecordResultNext's.
func (x *Tx) row(ctx context.Context, q string, args ...any) Row {
	if x.pipe != nil {
		return x.pipe.Row(ctx, x.d.rebind(q), args...)
	}
	return x.QueryRowContext(ctx, q, args...)
}

// execLater is ExecContext for a write whose answer nothing waits for
// before the transaction's next statement: on a piped transaction it
// goes out with that statement (PipeTx.Later: one round trip fewer) and
// its failure comes back from that statement as a *LaterError; else it
// runs now. done (may be nil) gets the rows it changed once it has run.
func (x *Tx) execLater(ctx context.Context, done func(n int64), q string, args ...any) error {
	if x.pipe != nil {
		x.pipe.Later(x.d.rebind(q), args, done)
		return nil
	}
	res, err := x.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	if done != nil {
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		done(n)
	}
	return nil
}

// rows is QueryContext for the statements that run on a piped
// transaction too. The caller closes the rows.
func (x *Tx) rows(ctx context.Context, q string, args ...any) (Rows, error) {
	if x.pipe != nil {
		return x.pipe.Rows(ctx, x.d.rebind(q), args...)
	}
	r, err := x.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

// sqlRows is *sql.Rows as Rows (Close without its error: Err has it).
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

// collectTx is collect in transaction tx, piped or not.
func collectTx[T any](ctx context.Context, tx *Tx, scan func(scanner) (*T, error), query string, args ...any) ([]T, error) {
	rows, err := tx.rows(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return scanRows(rows, scan)
}

// pipedTx is txWith on a Dialect.Pipeline connection: fn runs on a Tx
// whose statements go through the PipeTx (Tx.row, Tx.rows and
// ExecContext; QueryRowContext and QueryContext are errNotPiped's case),
// retried on a serialization failure as txWith retries. The commit is
// fn's RowCommit or, when fn made none, one after fn (with a held-back
// write first, flushDeferred); fn's error rolls back.
func (s *Store) pipedTx(ctx context.Context, opts *sql.TxOptions, fn func(*Tx) error) error {
	iso := sql.LevelDefault
	if opts != nil {
		iso = opts.Isolation
	}
	once := func() error {
		return s.d.Pipeline(ctx, s.w.DB, iso, func(p PipeTx) error {
			tx := &Tx{d: s.d, db: s.w, pipe: p}
			if err := fn(tx); err != nil {
				return err
			}
			if err := tx.flushDeferred(ctx); err != nil {
				return err
			}
			return p.Commit(ctx)
		})
	}
	var err error
	for attempt := 0; attempt < maxTxAttempts; attempt++ {
		if attempt > 0 {
			s.retries.Add(1)
			time.Sleep(time.Duration(attempt*attempt)*time.Millisecond + time.Duration(time.Now().UnixNano()%1000)*time.Microsecond)
		}
		err = once()
		if err == nil || s.d.Retryable == nil || !s.d.Retryable(err) {
			return err
		}
	}
	return fmt.Errorf("%s: transaction kept conflicting: %w", s.d.Name, err)
}
