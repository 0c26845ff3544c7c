package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/postgres"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// statementLog records every statement pgx sends (BEGIN and COMMIT
// included: pgx runs them as statements), i.e. the store's network round
// trips to PostgreSQL.
type statementLog struct {
	mu  sync.Mutex
	sql []string
}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sql = append(l.sql, strings.Join(strings.Fields(d.SQL), " "))
	return ctx
}

func (l *statementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (l *statementLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.sql
	l.sql = nil
	return out
}

// TestEnqueueIsOneStatement: an enqueue to one device's channel — every
// API and job enqueue — is one round trip to PostgreSQL (the command, its
// queue row and the audit entry in one statement, autocommitted), not
// BEGIN, three INSERTs and COMMIT; and the row it wrote is the device's
// next command.
func TestEnqueueIsOneStatement(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	migrated, err := postgres.Open(ctx, url) // the schema
	if err != nil {
		t.Fatal(err)
	}
	migrated.Close()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	log := &statementLog{}
	cfg.Tracer = log
	db := stdlib.OpenDB(*cfg)
	s := sqlstore.New(postgres.Dialect, db, db, "traced")
	defer s.Close()

	now := time.Now().UTC().Truncate(time.Microsecond)
	tn := &store.Tenant{ID: "t1", Name: "T", Domains: []string{"t.example"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	u := &store.User{ID: "u1", TenantID: "t1", Email: "a@t.example", ManagedAppleID: "a@t.example", Name: "A", Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	e := &store.Enrollment{ID: "e1", TenantID: "t1", UserID: "u1", TokenHash: []byte("tok"), Platform: "iOS", Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateEnrollment(ctx, e, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutChannel(ctx, &store.Channel{ID: "CH-1", DeviceID: "e1", Kind: "device", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	log.take()
	audit := &store.AuditEntry{At: now, Actor: "key:k", Action: "POST /api/v1/devices/{id}/commands", Target: "e1", Status: 201}
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: "c1", RequestType: "DeviceInformation", Payload: []byte("<plist/>"), CreatedAt: now, Audit: audit}, []string{"CH-1"}); err != nil {
		t.Fatal(err)
	}
	if got := log.take(); len(got) != 1 {
		t.Fatalf("an enqueue with its audit entry sent %d statements, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}
	if audit.ID == 0 {
		t.Fatal("the audit entry's id was not set")
	}
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: "c2", RequestType: "DeviceInformation", Payload: []byte("<plist/>"), CreatedAt: now}, []string{"CH-1"}); err != nil {
		t.Fatal(err)
	}
	if got := log.take(); len(got) != 1 {
		t.Fatalf("an enqueue without an audit entry sent %d statements, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}
	// Delivery order: c1, then c2 (a later seq).
	for _, want := range []string{"c1", "c2"} {
		q, err := s.NextCommand(ctx, "e1", "CH-1", true, now)
		if err != nil || q.UUID != want {
			t.Fatalf("next: %+v %v, want %s", q, err, want)
		}
		if _, err := s.RecordResult(ctx, "e1", "CH-1", want, "Acknowledged", []byte("<plist/>"), now, nil); err != nil {
			t.Fatal(err)
		}
	}
}
