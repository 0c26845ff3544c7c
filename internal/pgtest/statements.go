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
// included: pgx runs them as statements), i.e. a store's network round
// trips to PostgreSQL, each with its whitespace folded.
type StatementLog struct {
	mu  sync.Mutex
	sql []string
}

func (l *StatementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sql = append(l.sql, strings.Join(strings.Fields(d.SQL), " "))
	return ctx
}

func (l *StatementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Take returns the statements recorded since the last Take and forgets them.
func (l *StatementLog) Take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.sql
	l.sql = nil
	return out
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
