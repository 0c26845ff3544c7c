package sqlstore

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// claimStore is a group-commit store on the real SQLite migrations whose
// read pool is closed once the rows are in: any read that goes to the
// read pool fails ("sql: database is closed").
func claimStore(t *testing.T, d Dialect) *Store {
	t.Helper()
	ctx := context.Background()
	dsn := "file:" + filepath.Join(t.TempDir(), "db") + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	d.Name, d.GroupCommit = "sqlite", true
	s := New(d, w, r, "test")
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx, os.DirFS("../sqlite"), "migrations"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('tn_a', 'Tenant A', 1, 1)`,
		`INSERT INTO users (id, tenant_id, email, domain, managed_apple_id, name, created_at, updated_at)
			VALUES ('us_a', 'tn_a', 'alice@a.example', 'a.example', 'alice@a.example', 'Alice', 1, 1)`,
		`INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, os_version, status, created_at, updated_at, apple_enrollment_id)
			VALUES ('en_a', 'tn_a', 'us_a', x'00', 'iOS', '17.0', 'enrolled', 1, 1, 'apple-a')`,
		`INSERT INTO channels (id, enrollment_ref, kind, push_token, push_magic, created_at, updated_at)
			VALUES ('ch_a', 'en_a', 'device', x'01', 'magic', 1, 1)`,
		`INSERT INTO reconcile_queue (enrollment_id, due_at, verify, gen) VALUES ('en_a', 0, 1, 3)`,
	} {
		if _, err := s.w.DB.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	return s
}

// With Dialect.ClaimReadsInputs (SQLite) the reconciler's inputs are read
// in the claim's transaction on the writer connection, never on a read
// connection (whose page cache every commit of the writer drops): here
// the read pool is closed, and the claim still comes with its inputs.
// Without the dialect's flag the inputs are read on the read pool (as on
// PostgreSQL), which fails here.
func TestClaimReconcileReadsOnWriter(t *testing.T) {
	ctx := context.Background()
	s := claimStore(t, Dialect{ClaimReadsInputs: true})
	ds, ins, err := s.ClaimReconcile(ctx, "h", time.Now(), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].DeviceID != "en_a" || ds[0].Gen != 3 || !ds[0].Verify {
		t.Fatalf("claims: %+v", ds)
	}
	if len(ins) != 1 || ins[0].Enrollment.ID != "en_a" || ins[0].Channel == nil || ins[0].Channel.ID != "ch_a" ||
		ins[0].User.Email != "alice@a.example" || ins[0].Tenant.Name != "Tenant A" {
		t.Fatalf("inputs: %+v", ins)
	}
	var by string
	if err := s.w.DB.QueryRowContext(ctx, `SELECT claimed_by FROM reconcile_queue WHERE enrollment_id = 'en_a'`).Scan(&by); err != nil || by != "h" {
		t.Fatalf("claimed by %q (%v)", by, err)
	}
	// Claimed: nothing more for another holder.
	if ds, ins, err := s.ClaimReconcile(ctx, "other", time.Now(), time.Minute, 10); err != nil || len(ds) != 0 || len(ins) != 0 {
		t.Fatalf("second claim: %+v %+v %v", ds, ins, err)
	}

	two := claimStore(t, Dialect{})
	if _, _, err := two.ClaimReconcile(ctx, "h", time.Now(), time.Minute, 10); err == nil {
		t.Fatal("without ClaimReadsInputs the inputs come from the (closed) read pool: want its error")
	}
}

// The finish of a batch's claims (Dialect.FinishByValues) finds each
// claim's queue row by the primary key: the plan SQLite makes for it on
// the real migrations (without statistics, as Pomona runs it) searches
// reconcile_queue by enrollment_id and scans only the VALUES list. A
// row-value IN (VALUES …) form was planned as a scan of the whole queue.
func TestFinishValuesPlan(t *testing.T) {
	ctx := context.Background()
	s := claimStore(t, Dialect{})
	args := []any{"en_a", 1, 2, 0, "en_b", 1, 2, 1, "h"}
	rows, err := s.w.DB.QueryContext(ctx, "EXPLAIN QUERY PLAN "+finishValuesSQL(2), args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	p := strings.Join(plan, "; ")
	if !strings.Contains(p, "SEARCH reconcile_queue USING PRIMARY KEY (enrollment_id=?)") || strings.Contains(p, "SCAN reconcile_queue") {
		t.Fatalf("the finish does not search the queue by its key: %s", p)
	}
}
