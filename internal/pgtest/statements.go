package pgtest

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// StatementLog records every statement pgx sends (BEGIN and COMMIT
// included: pgx runs them as statements), each with its whitespace
// folded, and counts the network round trips they took: one per
// statement sent alone, one per batch (pgx.Batch: its statements in one
// write, answered together). A batch's statements are recorded with
// "batch: " before them. (A statement or batch pgx has not prepared on
// the connection yet takes one round trip more to prepare: not counted;
// the counts are a warmed connection's.)
type StatementLog struct {
	mu    sync.Mutex
	sql   []string
	trips int
}

func (l *StatementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sql = append(l.sql, strings.Join(strings.Fields(d.SQL), " "))
	l.trips++
	return ctx
}

func (l *StatementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (l *StatementLog) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, q := range d.Batch.QueuedQueries {
		l.sql = append(l.sql, "batch: "+strings.Join(strings.Fields(q.SQL), " "))
	}
	l.trips++
	return ctx
}

func (l *StatementLog) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (l *StatementLog) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// Take returns the statements recorded since the last Take and forgets them
// (and the round trips counted).
func (l *StatementLog) Take() []string {
	out, _ := l.TakeTrips()
	return out
}

// TakeTrips is Take, also answering the round trips the statements took.
func (l *StatementLog) TakeTrips() ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out, n := l.sql, l.trips
	l.sql, l.trips = nil, 0
	return out, n
}

// TracedDB opens url (a database of NewDatabase, already migrated) through
// pgx's database/sql driver with every statement recorded in the log.
// The caller closes the handle (usually through the store built on it).
func TracedDB(t testing.TB, url string) (*sql.DB, *StatementLog) {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	log := &StatementLog{}
	cfg.Tracer = log
	return stdlib.OpenDB(*cfg), log
}
