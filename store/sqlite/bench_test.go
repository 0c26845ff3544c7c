package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// BenchmarkBulkEnqueue100k measures one command queued for 100,000
// channels in one transaction (target: under 5 s).
func BenchmarkBulkEnqueue100k(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for _, err := range []error{
		s.CreateTenant(ctx, &store.Tenant{ID: "t", Name: "t", Domains: []string{"t.example"}, CreatedAt: now, UpdatedAt: now}),
		s.CreateUser(ctx, &store.User{ID: "u", TenantID: "t", Email: "u@t.example", ManagedAppleID: "u@t.example", Enabled: true, CreatedAt: now, UpdatedAt: now}),
		s.CreateEnrollment(ctx, &store.Enrollment{ID: "e", TenantID: "t", UserID: "u", TokenHash: []byte("h"), Platform: "iOS", Status: "enrolled", CreatedAt: now, UpdatedAt: now}, nil),
	} {
		if err != nil {
			b.Fatal(err)
		}
	}
	const n = 100_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint("CH-", i)
		// One enrollment, many (user) channels: the queue does not care.
		if err := s.PutChannel(ctx, &store.Channel{ID: ids[i], DeviceID: "e", Kind: "user", EnrollmentUserID: ids[i], CreatedAt: now, UpdatedAt: now}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: fmt.Sprint("bulk-", i), RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now}, ids); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueueFetch measures handing out the next command and recording
// its result, the queue's share of a command round trip.
func BenchmarkQueueFetch(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	s.CreateTenant(ctx, &store.Tenant{ID: "t", Name: "t", Domains: []string{"t.example"}, CreatedAt: now, UpdatedAt: now})
	s.CreateUser(ctx, &store.User{ID: "u", TenantID: "t", Email: "u@t.example", ManagedAppleID: "u@t.example", Enabled: true, CreatedAt: now, UpdatedAt: now})
	s.CreateEnrollment(ctx, &store.Enrollment{ID: "e", TenantID: "t", UserID: "u", TokenHash: []byte("h"), Platform: "iOS", Status: "enrolled", CreatedAt: now, UpdatedAt: now}, nil)
	s.PutChannel(ctx, &store.Channel{ID: "CH", DeviceID: "e", Kind: "device", CreatedAt: now, UpdatedAt: now})
	for i := 0; i < b.N; i++ {
		s.Enqueue(ctx, &store.CommandRecord{UUID: fmt.Sprint("c", i), RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now}, []string{"CH"})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q, err := s.NextCommand(ctx, "e", "CH", false, now)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.RecordResult(ctx, "e", "CH", q.UUID, mdm.Acknowledged, []byte("<plist/>"), now, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueParallel measures single-device enqueues from eight
// writers at once, each durable when it returns (what the admin API does
// under load): concurrent writers share one commit and its fsync.
// cpu-ns/op is the process's CPU time per enqueue (user + system).
func BenchmarkEnqueueParallel(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	s.CreateTenant(ctx, &store.Tenant{ID: "t", Name: "t", Domains: []string{"t.example"}, CreatedAt: now, UpdatedAt: now})
	s.CreateUser(ctx, &store.User{ID: "u", TenantID: "t", Email: "u@t.example", ManagedAppleID: "u@t.example", Enabled: true, CreatedAt: now, UpdatedAt: now})
	s.CreateEnrollment(ctx, &store.Enrollment{ID: "e", TenantID: "t", UserID: "u", TokenHash: []byte("h"), Platform: "iOS", Status: "enrolled", CreatedAt: now, UpdatedAt: now}, nil)
	const writers = 8
	for i := 0; i < writers; i++ {
		id := fmt.Sprint("CH-", i)
		s.PutChannel(ctx, &store.Channel{ID: id, DeviceID: "e", Kind: "user", EnrollmentUserID: id, CreatedAt: now, UpdatedAt: now})
	}
	var n atomic.Int64
	b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		ch := fmt.Sprint("CH-", n.Add(1)%writers)
		for pb.Next() {
			if err := s.Enqueue(ctx, &store.CommandRecord{UUID: fmt.Sprint("c", n.Add(1)), RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now}, []string{ch}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkEnqueueAfterHistory measures one single-device enqueue to a
// channel with 10,000 answered commands (a device's history): the new
// row's seq is read from the channel's waiting rows only, so the cost
// does not grow with the history (before session 8 it read all 10,000).
// cpu-ns/op is the process's CPU time per enqueue (user + system).
func BenchmarkEnqueueAfterHistory(b *testing.B) {
	ctx := context.Background()
	s, path := benchStore(b)
	seedEnrolled(b, s, path, 1)
	const history = 10_000
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		fmt.Sprintf(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
			INSERT INTO commands (uuid, request_type, payload, created_at) SELECT 'old-' || i, 'ProfileList', CAST('<plist/>' AS BLOB), i FROM n`, history),
		`INSERT INTO queue (channel_id, command_uuid, seq, status, result, updated_at)
			SELECT 'CH-0', uuid, created_at, 'Acknowledged', CAST('<plist/>' AS BLOB), created_at FROM commands WHERE uuid LIKE 'old-%'`,
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(q, err)
		}
	}
	db.Close()
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: fmt.Sprint("c", i), RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now}, []string{"CH-0"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// seedEnrolled writes n enrolled devices (an enrollment and its device
// channel each, copies of one written through the store) into the
// database at path in one transaction, in SQL: seeding through the store
// would cost a commit per row.
func seedEnrolled(b *testing.B, s *sqlstore.Store, path string, n int) {
	ctx := context.Background()
	now := time.Now()
	for _, err := range []error{
		s.CreateTenant(ctx, &store.Tenant{ID: "t", Name: "t", Domains: []string{"t.example"}, CreatedAt: now, UpdatedAt: now}),
		s.CreateUser(ctx, &store.User{ID: "u", TenantID: "t", Email: "u@t.example", ManagedAppleID: "u@t.example", Enabled: true, CreatedAt: now, UpdatedAt: now}),
		s.CreateEnrollment(ctx, &store.Enrollment{ID: "en_0", TenantID: "t", UserID: "u", TokenHash: []byte("h"), Platform: "iOS", Status: "enrolled", CreatedAt: now, UpdatedAt: now}, nil),
		s.BindAppleEnrollment(ctx, "en_0", "APPLE-0", store.DeviceInfo{}, now),
		s.PutChannel(ctx, &store.Channel{ID: "CH-0", DeviceID: "en_0", Kind: "device", PushToken: []byte("token"), PushMagic: "magic", CreatedAt: now, UpdatedAt: now}),
	} {
		if err != nil {
			b.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	// copy lists the table's columns with replacements for the ones that
	// must differ per row.
	copyRows := func(table, where string, repl map[string]string) string {
		rows, err := db.Query(`SELECT name FROM pragma_table_info(?)`, table)
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		var cols, vals []string
		for rows.Next() {
			var c string
			rows.Scan(&c)
			cols = append(cols, c)
			if r, ok := repl[c]; ok {
				c = r
			}
			vals = append(vals, c)
		}
		return fmt.Sprintf(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
			INSERT INTO %s (%s) SELECT %s FROM %s, n WHERE %s`, n-1, table, strings.Join(cols, ", "), strings.Join(vals, ", "), table, where)
	}
	for _, q := range []string{
		copyRows("enrollments", "id = 'en_0'", map[string]string{"id": "'en_' || i", "apple_enrollment_id": "'APPLE-' || i", "token_hash": "CAST('h' || i AS BLOB)"}),
		copyRows("channels", "id = 'CH-0'", map[string]string{"id": "'CH-' || i", "enrollment_ref": "'en_' || i"}),
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(q, err)
		}
	}
}

// BenchmarkBulkCommand100k measures the store's share of one command to
// every device of a tenant of 100,000 enrolled devices: selecting the
// targets and queueing the command for all of them in one transaction
// (EnqueueTargets: a count per platform and one INSERT … SELECT; before
// session 6, TargetChannels and Enqueue of the 100,000 ids). cpu-ns/op is
// the process's CPU time (user + system).
func BenchmarkBulkCommand100k(b *testing.B) {
	ctx := context.Background()
	s, path := benchStore(b)
	const n = 100_000
	seedEnrolled(b, s, path, n)
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		queued, _, err := s.EnqueueTargets(ctx, nil, &store.CommandRecord{UUID: fmt.Sprint("bulk-", i), RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now},
			store.TargetFilter{TenantID: "t"}, func(counts map[string]int) ([]string, []byte, error) { return []string{"iOS"}, nil, nil })
		if err != nil || queued != n {
			b.Fatal(queued, err)
		}
	}
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkCRLChangeCheck measures what every GET /pki/crl costs in the
// store to learn whether the cached CRL is current, at 100,000 recorded
// revocations: the COUNT(*) it ran before migration 0026 and RevokedCount
// now (one primary-key read of revocation_count).
func BenchmarkCRLChangeCheck(b *testing.B) {
	ctx := context.Background()
	s, path := benchStore(b)
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	const n = 100_000
	tx, err := raw.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := tx.ExecContext(ctx, `INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason) VALUES (?, 'user', 1, 1, 0)`, fmt.Sprintf("%040x", i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if c, err := s.RevokedCount(ctx); err != nil || c != n {
		b.Fatalf("counted %d %v", c, err)
	}
	b.Run("COUNT(*) (before)", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var c int64
			if err := raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM revoked_certs`).Scan(&c); err != nil || c != n {
				b.Fatal(c, err)
			}
		}
	})
	b.Run("RevokedCount (after)", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if c, err := s.RevokedCount(ctx); err != nil || c != n {
				b.Fatal(c, err)
			}
		}
	})
}

// benchStore is a new SQLite store in the benchmark's directory and its
// file's path, closed when the benchmark ends.
func benchStore(b *testing.B) (*sqlstore.Store, string) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, path
}
