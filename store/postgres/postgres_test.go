package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/postgres"
	"github.com/pomona-mdm/pomona/store/sqlstore"
	"github.com/pomona-mdm/pomona/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMigrationsOnceUnderConcurrentStarts(t *testing.T) {
	url := pgtest.NewDatabase(t)
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			s, err := postgres.Open(context.Background(), url)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(context.Background()); err != nil || v < 6 {
		t.Fatalf("schema version %d %v", v, err)
	}
}

func TestRedact(t *testing.T) {
	if got := postgres.Redact("postgres://pomona:s3cret@db:5432/pomona"); got != "postgres://pomona:xxxxx@db:5432/pomona" {
		t.Fatal(got)
	}
}

// A binary older than the database refuses to open it (see the SQLite twin).
func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	known, _ := s.SchemaVersion(ctx)
	s.Close()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = postgres.Open(ctx, url)
	var tooNew *sqlstore.SchemaTooNewError
	if !errors.As(err, &tooNew) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("open of a newer schema: err = %v, want SchemaTooNewError", err)
	}
	if tooNew.Database != 9999 || tooNew.Binary != known || !strings.Contains(err.Error(), "newer than this Pomona binary") {
		t.Fatalf("error %+v: %v", tooNew, err)
	}
}

// TestClaimPlanAfterLargeAssignment: a profile assigned to the all-users
// group of 5,000 enrolled devices leaves statistics behind
// (Dialect.AnalyzeAfter), so the reconciler's claim walks
// reconcile_queue_due_enrollment instead of scanning and sorting the
// whole backlog on every claim (without statistics PostgreSQL estimated
// a ninth of the rows due and planned Seq Scan + Sort).
func TestClaimPlanAfterLargeAssignment(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	tn := &store.Tenant{ID: "t_plan", Name: "Plan", Domains: []string{"plan.example"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	u := &store.User{ID: "u_plan", TenantID: tn.ID, Email: "a@plan.example", ManagedAppleID: "a@plan.example", Name: "A",
		PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// 5,000 enrolled devices in one statement (the store's enrollment
	// path would take minutes).
	if _, err := db.ExecContext(ctx, `INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, status, created_at, updated_at)
		SELECT 'en_' || md5(g::text), $1, $2, '\x00', 'iOS', 'enrolled', 1, 1 FROM generate_series(1, 5000) g`, tn.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	p := &store.ConfigProfile{ID: "pr_plan", TenantID: tn.ID, Identifier: "com.example.plan", Name: "Plan", Platforms: []string{"iOS"},
		PayloadTypes: []string{"com.apple.wifi.managed"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateProfile(ctx, p, &store.ProfileVersion{Plist: []byte("<plist/>"), Hash: "h", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	all, err := s.AllUsersGroup(ctx, tn.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Assign(ctx, &store.Assignment{ProfileID: p.ID, GroupID: all.ID, CreatedAt: now}, now); err != nil {
		t.Fatal(err)
	}
	// The assignment marked its first chunk; a claim before the marks
	// are due marks the rest (sqlstore's expandMarks) and claims nothing.
	if ds, err := s.ClaimDirty(ctx, "early", now.Add(-time.Second), time.Minute, 1000); err != nil || len(ds) != 0 {
		t.Fatalf("claim before due: %d %v", len(ds), err)
	}
	if n, err := s.DirtyCount(ctx, now.Add(time.Second)); err != nil || n != 5000 {
		t.Fatalf("%d marked (%v), want 5000", n, err)
	}
	at := now.Add(time.Second).UnixMicro()
	rows, err := db.QueryContext(ctx, `EXPLAIN SELECT enrollment_id FROM reconcile_queue WHERE due_at <= $1 AND claimed_until <= $1
		ORDER BY due_at, enrollment_id LIMIT 1000 FOR UPDATE SKIP LOCKED`, at)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	rows.Close()
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "Index Scan using reconcile_queue_due_enrollment") || strings.Contains(text, "Sort") {
		t.Fatalf("the claim does not walk the index:\n%s", text)
	}
	// And the claim takes the first 1,000 in enrollment id order.
	ds, err := s.ClaimDirty(ctx, "h", now.Add(time.Second), time.Minute, 1000)
	if err != nil || len(ds) != 1000 {
		t.Fatalf("claimed %d: %v", len(ds), err)
	}
	var first string
	if err := db.QueryRowContext(ctx, `SELECT MIN(enrollment_id) FROM reconcile_queue`).Scan(&first); err != nil || ds[0].DeviceID != first {
		t.Fatalf("first claim %s, want %s (%v)", ds[0].DeviceID, first, err)
	}
}

// Chunked marking resumes after a restart, with a second instance
// expanding and claiming beside the restarted one
// (storetest.ChunkedMarkingResumes).
func TestChunkedMarkingResumes(t *testing.T) {
	url := pgtest.NewDatabase(t)
	open := func() store.Store {
		s, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	storetest.ChunkedMarkingResumes(t, open, open)
}
