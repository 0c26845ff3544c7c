package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/postgres"
)

// BenchmarkBulkEnqueue100k measures one command queued for 100,000
// channels in one SERIALIZABLE transaction (issue 17 target: the whole API
// request in ≤ 3 s wall). The channels are written with plain SQL first.
func BenchmarkBulkEnqueue100k(b *testing.B) {
	ctx := context.Background()
	url := pgtest.NewDatabase(b)
	s, err := postgres.Open(ctx, url)
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
	db, err := sql.Open("pgx", url)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ids := make([]string, n)
	for i := 0; i < n; i += 1000 {
		var vals []string
		for j := i; j < i+1000; j++ {
			ids[j] = fmt.Sprint("CH-", j)
			vals = append(vals, fmt.Sprintf("('%s', 'e', 'user', '%s', 0, 0)", ids[j], ids[j]))
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO channels (id, enrollment_ref, kind, enrollment_user_id, created_at, updated_at) VALUES `+strings.Join(vals, ",")); err != nil {
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

// BenchmarkBulkCommand100k measures the store's share of one command to
// every device of a tenant of 100,000 enrolled devices (enrollments and
// device channels written in SQL first): EnqueueTargets counts the
// targets per platform and queues the command with one INSERT … SELECT,
// in one SERIALIZABLE transaction. The PostgreSQL server's own CPU is not
// in the figure (wall time is).
func BenchmarkBulkCommand100k(b *testing.B) {
	ctx := context.Background()
	url := pgtest.NewDatabase(b)
	s, err := postgres.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for _, err := range []error{
		s.CreateTenant(ctx, &store.Tenant{ID: "t", Name: "t", Domains: []string{"t.example"}, CreatedAt: now, UpdatedAt: now}),
		s.CreateUser(ctx, &store.User{ID: "u", TenantID: "t", Email: "u@t.example", ManagedAppleID: "u@t.example", Enabled: true, CreatedAt: now, UpdatedAt: now}),
	} {
		if err != nil {
			b.Fatal(err)
		}
	}
	const n = 100_000
	db, err := sql.Open("pgx", url)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, status, created_at, updated_at, apple_enrollment_id)
			SELECT 'en_' || md5(i::text), 't', 'u', decode(md5(i::text), 'hex'), 'iOS', 'enrolled', 0, 0, 'APPLE-' || i FROM generate_series(1, 100000) AS i`,
		`INSERT INTO channels (id, enrollment_ref, kind, push_token, push_magic, created_at, updated_at)
			SELECT md5('ch' || id), id, 'device', decode(md5(id), 'hex'), 'magic', 0, 0 FROM enrollments`,
		`ANALYZE`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatal(q, err)
		}
	}
	f := store.TargetFilter{TenantID: "t"}
	b.Run("EnqueueTargets", func(b *testing.B) {
		b.ReportAllocs()
		pg0 := backendCPU(b, db)
		for i := 0; i < b.N; i++ {
			queued, _, err := s.EnqueueTargets(ctx, nil, &store.CommandRecord{UUID: fmt.Sprint("bulk-", b.N, "-", i), RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now},
				f, func(counts map[string]int) ([]string, []byte, error) { return []string{"iOS"}, nil, nil })
			if err != nil || queued != n {
				b.Fatal(queued, err)
			}
		}
		b.ReportMetric(float64(backendCPU(b, db)-pg0)/float64(b.N), "pg-cpu-ns/op")
	})
	// The path before session 6 (still taken for lists of ids over
	// store.TargetListMax): the targets read into Go, queued by id.
	b.Run("TargetChannelsEnqueue", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			ts, err := s.TargetChannels(ctx, f)
			if err != nil || len(ts) != n {
				b.Fatal(len(ts), err)
			}
			ids := make([]string, len(ts))
			for j := range ts {
				ids[j] = ts[j].ChannelID
			}
			if err := s.Enqueue(ctx, &store.CommandRecord{UUID: fmt.Sprint("read-", b.N, "-", i), RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now}, ids); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// backendCPU is the CPU time (user + system, nanoseconds, 10 ms ticks) of
// the PostgreSQL backends connected to db's database now, read from
// /proc/<pid>/stat: the server's own work for a statement, which the
// benchmark process's CPU does not include. Only for a server on this
// machine readable under /proc (0 otherwise); a parallel worker's CPU is
// not in it, nor that of a backend that exited in between.
func backendCPU(b *testing.B, db *sql.DB) int64 {
	rows, err := db.Query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var total int64
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): utime
		// and stime are the 12th and 13th.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		total += (u + k) * 10_000_000
	}
	return total
}
