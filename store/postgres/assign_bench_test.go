package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/internal/benchprofile"
	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/mdm/payloads"
	"github.com/pomona-mdm/pomona/profiles"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/postgres"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// BenchmarkAssignQueued measures issue 15 item 8 on PostgreSQL without
// HTTP: a profile with a per-user variable (internal/benchprofile, the
// bench's) assigned to the all-users group of n enrolled devices
// (POMONA_BENCH_DEVICES, default 20,000; enrollments, device channels
// with push tokens and 50 users written in SQL first), then the real
// reconciler (profiles.Job: ReconcileInputs, planning, ApplyReconcile)
// drained as the server's loop drains it (Job.Drain: one pass, its other
// workers from its full claim on) until every device's InstallProfile is queued, each batch's
// push answers recorded (SetPushResults, as push.Pusher does after a
// fan-out; no APNs). Reported per op (one whole assignment): the
// PostgreSQL backends' CPU (pg-cpu-s), this process's CPU (go-cpu-s), the
// rows inserted, the non-HOT updates, the rows sequential scans read,
// commits and buffer hits; "session9" is the dialect before Session 10
// (multi-row VALUES, OR-lists, IN lists: ArrayBatches off), "current" as
// it is. Set
// POMONA_BENCH_LOG_SQL=1 to have PostgreSQL log every statement of the
// drained phase with its duration (its server log, this database's lines),
// POMONA_BENCH_EXPLAIN=1 for the plans of those over 20 ms (auto_explain).
func BenchmarkAssignQueued(b *testing.B) {
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("POMONA_BENCH_DEVICES")); err == nil && v > 0 {
		n = v
	}
	session9 := postgres.Dialect
	session9.ArrayBatches = false
	for _, v := range []struct {
		name string
		d    sqlstore.Dialect
	}{{"session9", session9}, {"current", postgres.Dialect}} {
		b.Run(v.name, func(b *testing.B) {
			var pgCPU, goCPU float64
			var tstat tableStats
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				pg, gc, ts := assignOnce(b, v.d, n)
				pgCPU, goCPU = pgCPU+pg, goCPU+gc
				tstat.add(ts)
			}
			b.ReportMetric(pgCPU/float64(b.N), "pg-cpu-s/op")
			b.ReportMetric(goCPU/float64(b.N), "go-cpu-s/op")
			b.ReportMetric(float64(tstat.ins)/float64(b.N), "rows-ins/op")
			b.ReportMetric(float64(tstat.upd-tstat.hot)/float64(b.N), "nonhot-upd/op")
			b.ReportMetric(float64(tstat.upd)/float64(b.N), "upd/op")
			b.ReportMetric(float64(tstat.seqRows)/float64(b.N), "seqrows/op")
			b.ReportMetric(float64(tstat.commits)/float64(b.N), "commits/op")
			b.ReportMetric(float64(tstat.blksHit)/float64(b.N), "blks-hit/op")
		})
	}
}

type tableStats struct{ ins, upd, hot, del, seqRows, commits, blksHit int64 }

func (t *tableStats) add(o tableStats) {
	t.ins, t.upd, t.hot, t.del, t.seqRows, t.commits, t.blksHit = t.ins+o.ins, t.upd+o.upd, t.hot+o.hot, t.del+o.del, t.seqRows+o.seqRows, t.commits+o.commits, t.blksHit+o.blksHit
}

func readTableStats(b *testing.B, db *sql.DB) tableStats {
	ctx := context.Background()
	var t tableStats
	db.QueryRowContext(ctx, `SELECT pg_stat_force_next_flush()`).Scan(new(any))
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(SUM(n_tup_ins), 0), COALESCE(SUM(n_tup_upd), 0), COALESCE(SUM(n_tup_hot_upd), 0),
		COALESCE(SUM(n_tup_del), 0), COALESCE(SUM(seq_tup_read), 0) FROM pg_stat_user_tables`).Scan(&t.ins, &t.upd, &t.hot, &t.del, &t.seqRows); err != nil {
		b.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT xact_commit, blks_hit FROM pg_stat_database WHERE datname = current_database()`).Scan(&t.commits, &t.blksHit); err != nil {
		b.Fatal(err)
	}
	return t
}

// readPerTable is readTableStats' row counts per table
// (POMONA_BENCH_TABLES=1 logs the phase's difference per table).
func readPerTable(b *testing.B, db *sql.DB) map[string]tableStats {
	ctx := context.Background()
	db.QueryRowContext(ctx, `SELECT pg_stat_force_next_flush()`).Scan(new(any))
	rows, err := db.QueryContext(ctx, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, COALESCE(seq_tup_read, 0) FROM pg_stat_user_tables`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	out := map[string]tableStats{}
	for rows.Next() {
		var name string
		var t tableStats
		if err := rows.Scan(&name, &t.ins, &t.upd, &t.hot, &t.del, &t.seqRows); err != nil {
			b.Fatal(err)
		}
		out[name] = t
	}
	return out
}

func (t tableStats) minus(o tableStats) tableStats {
	return tableStats{t.ins - o.ins, t.upd - o.upd, t.hot - o.hot, t.del - o.del, t.seqRows - o.seqRows, t.commits - o.commits, t.blksHit - o.blksHit}
}

// resultRecorder records every push as answered, in the background, one
// SetPushResults per fan-out (push.Pusher's store work without APNs).
type resultRecorder struct {
	s  *sqlstore.Store
	wg sync.WaitGroup
}

func (r *resultRecorder) Push(ctx context.Context, chs []store.Channel) {
	res := make([]store.PushResult, len(chs))
	for i, c := range chs {
		res[i] = store.PushResult{ChannelID: c.ID}
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.s.SetPushResults(context.WithoutCancel(ctx), res, time.Now()); err != nil {
			panic(err)
		}
	}()
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func assignOnce(b *testing.B, d sqlstore.Dialect, n int) (pgCPU, goCPU float64, ts tableStats) {
	ctx := context.Background()
	url := pgtest.NewDatabase(b)
	s0, err := postgres.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	s0.Close()
	db, err := sql.Open("pgx", url)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, q := range []string{
		`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('t', 'Bench', 0, 0)`,
		`INSERT INTO tenant_domains (tenant_id, domain) VALUES ('t', 't.example')`,
		`INSERT INTO users (id, tenant_id, email, domain, managed_apple_id, created_at, updated_at)
			SELECT 'us_' || i, 't', 'user' || i || '@t.example', 't.example', 'user' || i || '@t.example', 0, 0 FROM generate_series(0, 49) AS i`,
		fmt.Sprintf(`INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, os_version, status, created_at, updated_at, apple_enrollment_id)
			SELECT 'en_' || md5(i::text), 't', 'us_' || (i %% 50), decode(md5(i::text), 'hex'), 'iOS', '18.2', 'enrolled', 0, 0, 'APPLE-' || i
			FROM generate_series(1, %d) AS i`, n),
		`INSERT INTO channels (id, enrollment_ref, kind, push_token, push_magic, created_at, updated_at)
			SELECT 'CH' || md5('ch' || id), id, 'device', decode(md5(id), 'hex'), 'magic', 0, 0 FROM enrollments`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatal(q, err)
		}
	}
	// No statistics unless asked for: pomona bench seeds its devices
	// just before the phases, and PostgreSQL's autovacuum (off on the
	// benchmark machine) would analyze them only after its naptime.
	if os.Getenv("POMONA_BENCH_ANALYZE") != "" {
		if _, err := db.ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
			b.Fatal(err)
		}
	}
	surl := url
	if os.Getenv("POMONA_BENCH_LOG_SQL") != "" {
		surl += "&log_min_duration_statement=0"
	}
	if v := os.Getenv("POMONA_BENCH_EXPLAIN"); v != "" {
		// auto_explain's plans (with timing, buffers and WAL) of the
		// phase's statements slower than 20 ms (or the value's
		// milliseconds when it is a number: 0 for every statement, e.g.
		// to sum the WAL each statement wrote), in the server's log.
		ms := 20
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			ms = n
		}
		surl += fmt.Sprintf("&session_preload_libraries=auto_explain&auto_explain.log_min_duration=%d&auto_explain.log_analyze=on&auto_explain.log_buffers=on&auto_explain.log_triggers=on&auto_explain.log_wal=on", ms)
	}
	sdb, err := sql.Open("pgx", surl)
	if err != nil {
		b.Fatal(err)
	}
	sdb.SetMaxOpenConns(20)
	sdb.SetMaxIdleConns(10)
	s := sqlstore.New(d, sdb, sdb, "bench")
	defer s.Close()
	svc := &app.Profiles{Store: s, Rules: payloads.Default(), Now: time.Now}
	p, err := svc.Upload(ctx, app.ProfileUpload{TenantID: "t", Content: []byte(benchprofile.WiFi)})
	if err != nil {
		b.Fatal(err)
	}
	all, err := s.AllUsersGroup(ctx, "t", now)
	if err != nil {
		b.Fatal(err)
	}
	rec := &resultRecorder{s: s}
	j := &profiles.Job{Store: s, Holder: "bench", Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Commands: &app.Commands{Store: s, Catalog: catalog.Default(), Now: time.Now, Push: rec}}
	pg0, cpu0, ts0 := backendCPU(b, sdb), selfCPU(), readTableStats(b, db)
	perTable0 := readPerTable(b, db)
	b.StartTimer()
	if err := svc.Assign(ctx, p.ID, all.ID, false); err != nil {
		b.Fatal(err)
	}
	// profiles.Job's drain, as the server's loop runs it: one pass, and
	// when it claims a full batch, the other workers at once.
	j.Drain(ctx)
	rec.wg.Wait()
	b.StopTimer()
	pg1, cpu1 := backendCPU(b, sdb), selfCPU()
	// The pool's backends send their table counters to the statistics
	// at most once a second, and an idle one later still: closed, they
	// send them as they exit (else the row counts below missed the last
	// batches).
	sdb.Close()
	time.Sleep(500 * time.Millisecond)
	ts = readTableStats(b, db).minus(ts0)
	if os.Getenv("POMONA_BENCH_TABLES") != "" {
		for name, t := range readPerTable(b, db) {
			d := t.minus(perTable0[name])
			if d != (tableStats{}) {
				b.Logf("%-20s ins %7d upd %7d hot %7d del %7d seq-read %7d", name, d.ins, d.upd, d.hot, d.del, d.seqRows)
			}
		}
	}
	var queued int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM profile_items WHERE state = 'installing'`).Scan(&queued); err != nil || queued != n {
		b.Fatalf("%d of %d items installing (%v)", queued, n, err)
	}
	return float64(pg1-pg0) / 1e9, (cpu1 - cpu0).Seconds(), ts
}
