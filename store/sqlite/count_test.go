package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"modernc.org/sqlite"

	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// statementLog records every statement the SQLite driver runs and every
// one it prepares (countingDriver): what a store call costs, counted.
type statementLog struct {
	mu             sync.Mutex
	runs, prepares []string
}

func (l *statementLog) ran(q string) {
	l.mu.Lock()
	l.runs = append(l.runs, strings.Join(strings.Fields(q), " "))
	l.mu.Unlock()
}

func (l *statementLog) prepared(q string) {
	l.mu.Lock()
	l.prepares = append(l.prepares, strings.Join(strings.Fields(q), " "))
	l.mu.Unlock()
}

// take returns the statements run and prepared since the last take.
func (l *statementLog) take() (runs, prepares []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	runs, prepares, l.runs, l.prepares = l.runs, l.prepares, nil, nil
	return runs, prepares
}

// countingDriver is modernc.org/sqlite's driver, every statement and
// transaction boundary recorded in log (BEGIN and COMMIT count as runs).
type countingDriver struct{ log *statementLog }

var (
	countingOnce sync.Once
	counted      = &statementLog{}
)

func (d countingDriver) Open(name string) (driver.Conn, error) {
	c, err := (&sqlite.Driver{}).Open(name)
	if err != nil {
		return nil, err
	}
	return &countingConn{c: c, log: d.log}, nil
}

type countingConn struct {
	c   driver.Conn
	log *statementLog
}

func (c *countingConn) Prepare(q string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), q)
}

func (c *countingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	c.log.prepared(q)
	st, err := c.c.(driver.ConnPrepareContext).PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	return &countingStmt{s: st, q: q, log: c.log}, nil
}

func (c *countingConn) Close() error { return c.c.Close() }

func (c *countingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.log.ran("BEGIN")
	tx, err := c.c.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return countingTx{tx: tx, log: c.log}, nil
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.log.prepared(q) // the driver prepares a statement run directly
	c.log.ran(q)
	return c.c.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c *countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.log.prepared(q)
	c.log.ran(q)
	return c.c.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.c.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

type countingTx struct {
	tx  driver.Tx
	log *statementLog
}

func (t countingTx) Commit() error   { t.log.ran("COMMIT"); return t.tx.Commit() }
func (t countingTx) Rollback() error { t.log.ran("ROLLBACK"); return t.tx.Rollback() }

type countingStmt struct {
	s   driver.Stmt
	q   string
	log *statementLog
}

func (s *countingStmt) Close() error  { return s.s.Close() }
func (s *countingStmt) NumInput() int { return s.s.NumInput() }
func (s *countingStmt) Exec(args []driver.Value) (driver.Result, error) {
	s.log.ran(s.q)
	return s.s.Exec(args) //nolint:staticcheck // database/sql calls ExecContext
}
func (s *countingStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.log.ran(s.q)
	return s.s.Query(args) //nolint:staticcheck // database/sql calls QueryContext
}
func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.log.ran(s.q)
	return s.s.(driver.StmtExecContext).ExecContext(ctx, args)
}
func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.log.ran(s.q)
	return s.s.(driver.StmtQueryContext).QueryContext(ctx, args)
}

// countedStore is Open's store (the same pools, pragmas and migrations)
// on a driver that records its statements in the returned log; take it
// once before counting.
func countedStore(t *testing.T) (*sqlstore.Store, *statementLog) {
	s, log, _ := countedStoreAt(t)
	return s, log
}

// countedStoreAt is countedStore and the database file's path.
func countedStoreAt(t *testing.T) (*sqlstore.Store, *statementLog, string) {
	t.Helper()
	countingOnce.Do(func() { sql.Register("sqlite-counting", countingDriver{log: counted}) })
	old := driverName
	driverName = "sqlite-counting"
	defer func() { driverName = old }()
	path := filepath.Join(t.TempDir(), "pomona.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	counted.take()
	return s, counted, path
}
