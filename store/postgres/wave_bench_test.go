package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	neturl "net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/postgres"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// waveFleet is a profile wave's store side on PostgreSQL without HTTP,
// TLS or signatures: devices enrolled with a device channel and one
// InstallProfile queued to all of them (one shared command row, as an
// assignment queues it), each with its installing profile item.
type waveFleet struct {
	s       *sqlstore.Store
	url     string
	ens     []string
	chans   []string
	install string
}

func newWaveFleet(tb testing.TB, devices, conns int) *waveFleet {
	tb.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(tb)
	s, err := postgres.Open(ctx, withPoolMaxConns(tb, url, conns))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	now := time.Now().UTC().Truncate(time.Microsecond)
	tn := &store.Tenant{ID: "t1", Name: "T", Domains: []string{"t.example"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateTenant(ctx, tn); err != nil {
		tb.Fatal(err)
	}
	u := &store.User{ID: "u1", TenantID: "t1", Email: "a@t.example", ManagedAppleID: "a@t.example", Name: "A", Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateUser(ctx, u); err != nil {
		tb.Fatal(err)
	}
	p := &store.ConfigProfile{ID: "p1", TenantID: "t1", Identifier: "com.example.wave", Name: "wave", Platforms: []string{"iOS"},
		PayloadTypes: []string{"com.apple.wifi.managed"}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateProfile(ctx, p, &store.ProfileVersion{Plist: []byte("<plist/>"), Hash: "h1", CreatedAt: now}); err != nil {
		tb.Fatal(err)
	}
	f := &waveFleet{s: s, url: url, install: "install-1"}
	for i := 0; i < devices; i++ {
		en := fmt.Sprintf("en_%05d", i)
		e := &store.Enrollment{ID: en, TenantID: "t1", UserID: "u1", TokenHash: []byte("tok" + en), Platform: "iOS", Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}
		if err := s.CreateEnrollment(ctx, e, nil); err != nil {
			tb.Fatal(err)
		}
		ch := fmt.Sprintf("ch_%05d", i)
		if err := s.PutChannel(ctx, &store.Channel{ID: ch, DeviceID: en, Kind: "device", PushToken: []byte("t"), CreatedAt: now, UpdatedAt: now, LastSeenAt: now}); err != nil {
			tb.Fatal(err)
		}
		f.ens, f.chans = append(f.ens, en), append(f.chans, ch)
	}
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: f.install, RequestType: "InstallProfile", Payload: []byte("<plist/>"), CreatedAt: now, CreatedBy: "profiles"}, f.chans); err != nil {
		tb.Fatal(err)
	}
	for _, en := range f.ens {
		if err := s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: en, ProfileID: "p1", Identifier: "com.example.wave", State: "installing",
			Version: 1, Hash: "h1", CommandUUID: f.install, UpdatedAt: now}); err != nil {
			tb.Fatal(err)
		}
	}
	return f
}

// device runs device i through the wave as the server drives the store
// for it: the Idle's take (InstallProfile), the install's acknowledgement
// with its verifying ProfileList handed out, the ProfileList's answer
// verified (the item installed). It returns the three calls' latencies.
func (f *waveFleet) device(ctx context.Context, i int, seq *atomic.Int64) ([3]time.Duration, error) {
	var lat [3]time.Duration
	en, ch := f.ens[i], f.chans[i]
	t0 := time.Now()
	q, err := f.s.NextCommand(ctx, en, ch, true, t0)
	lat[0] = time.Since(t0)
	if err != nil || q.UUID != f.install {
		return lat, fmt.Errorf("device %d: idle: %+v %v", i, q, err)
	}
	ack := &store.ProfileAck{Verify: func() *store.CommandRecord {
		return &store.CommandRecord{UUID: fmt.Sprintf("list-%d", seq.Add(1)), RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: t0, CreatedBy: "profiles"}
	}}
	t1 := time.Now()
	rt, q, err := f.s.RecordResultNext(ctx, en, ch, f.install, mdm.Acknowledged, []byte("ok"), t1, nil, ack)
	lat[1] = time.Since(t1)
	if err != nil || rt != "InstallProfile" || !ack.Done || q == nil || q.RequestType != "ProfileList" {
		return lat, fmt.Errorf("device %d: install answer: %q %+v %+v %v", i, rt, ack, q, err)
	}
	list := &store.ProfileAck{List: func(items []store.ProfileItem) ([]store.ProfileItem, []string) {
		var put []store.ProfileItem
		for _, it := range items {
			if it.State != "installed" {
				it.State = "installed"
				put = append(put, it)
			}
		}
		return put, nil
	}}
	t2 := time.Now()
	rt, q, err = f.s.RecordResultNext(ctx, en, ch, q.UUID, mdm.Acknowledged, []byte("ok"), t2, nil, list)
	lat[2] = time.Since(t2)
	if err != nil || rt != "ProfileList" || !list.Done || len(list.Put) != 1 || q != nil {
		return lat, fmt.Errorf("device %d: list answer: %q %+v %+v %v", i, rt, list, q, err)
	}
	return lat, nil
}

// run drives every device through the wave with c devices in flight and
// returns the store calls' latencies.
func (f *waveFleet) run(tb testing.TB, c int) []time.Duration {
	ctx := context.Background()
	var seq atomic.Int64
	next := make(chan int, len(f.ens))
	for i := range f.ens {
		next <- i
	}
	close(next)
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, c)
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				l, err := f.device(ctx, i, &seq)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				lat = append(lat, l[:]...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return lat
}

// withPoolMaxConns is dbURL with its pool_max_conns parameter set to n
// (0: dbURL as it is, the default limit).
func withPoolMaxConns(tb testing.TB, dbURL string, n int) string {
	tb.Helper()
	if n == 0 {
		return dbURL
	}
	u, err := neturl.Parse(dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set(postgres.PoolMaxConnsParam, strconv.Itoa(n))
	u.RawQuery = q.Encode()
	return u.String()
}

// sessions is pg_stat_database's count of sessions established in the
// database at url (PostgreSQL 14+).
func sessions(tb testing.TB, url string) int64 {
	tb.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(`SELECT sessions FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkWaveStore is the profile wave's store work on PostgreSQL (no
// HTTP, TLS or signatures): per op one device's three store calls (the
// Idle's take, the install's answer, the ProfileList's answer), 32
// devices in flight as `pomona bench --wave`, with the default pool
// (conns=20) and one of 40 connections (pool_max_conns). It reports the
// store calls' p50/p99, the write pool's waits for a connection and the
// connections it closed and PostgreSQL opened anew, and CPU per device:
// PostgreSQL's (its backends of the database, from /proc) and this
// process's (the store's Go side and the benchmark's goroutines).
func BenchmarkWaveStore(b *testing.B) {
	for _, conns := range []int{postgres.DefaultMaxConns, 40} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) { benchmarkWaveStore(b, conns) })
	}
}

func benchmarkWaveStore(b *testing.B, conns int) {
	f := newWaveFleet(b, b.N, conns)
	pg, err := sql.Open("pgx", f.url)
	if err != nil {
		b.Fatal(err)
	}
	defer pg.Close()
	_, w0 := f.s.PoolStats()
	s0 := sessions(b, f.url)
	pg0, go0 := backendCPU(b, pg), processCPU(b)
	b.ResetTimer()
	lat := f.run(b, 32)
	b.StopTimer()
	pg1, go1 := backendCPU(b, pg), processCPU(b)
	b.ReportMetric(float64(pg1-pg0)/float64(b.N)/1000, "pg-cpu-us/op")
	b.ReportMetric(float64(go1-go0)/float64(b.N)/1000, "go-cpu-us/op")
	_, w1 := f.s.PoolStats()
	s1 := sessions(b, f.url) - 1 // this read's own session
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(w1.WaitCount-w0.WaitCount)/float64(b.N), "conn-waits/op")
	b.ReportMetric(float64(w1.WaitDuration-w0.WaitDuration)/float64(time.Millisecond)/float64(b.N), "conn-wait-ms/op")
	b.ReportMetric(float64(w1.MaxIdleClosed-w0.MaxIdleClosed+w1.MaxIdleTimeClosed-w0.MaxIdleTimeClosed)/float64(b.N), "conns-closed/op")
	b.ReportMetric(float64(s1-s0)/float64(b.N), "pg-sessions/op")
}

// processCPU is this process's user and system CPU so far, in ns.
func processCPU(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
