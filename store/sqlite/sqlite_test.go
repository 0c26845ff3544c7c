package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/store/sqlstore"
	"github.com/pomona-mdm/pomona/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "pomona.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMigrationsIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pomona.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := s.SchemaVersion(ctx)
	s.Close()
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	v2, _ := s.SchemaVersion(ctx)
	if v1 == 0 || v1 != v2 {
		t.Fatalf("schema versions %d then %d", v1, v2)
	}
}

// A binary older than the database (schema_migrations holds a version it
// has no migration for) refuses to open it, naming both versions.
func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pomona.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	known, _ := s.SchemaVersion(ctx)
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = sqlite.Open(ctx, path)
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

// Concurrent reads reuse the read pool's connections: none is closed for
// exceeding the idle limit (database/sql's default keeps 2 idle, so each
// read beyond 2 concurrent ones used to close its connection and the next
// one opened a new one: file, WAL, schema and every prepared statement).
func TestReadPoolKeepsConnections(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pomona.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var err error
			for range 200 {
				if _, err = s.DeviceRequest(ctx, store.DeviceRequestQuery{Serial: "none"}); errors.Is(err, store.ErrNotFound) {
					err = nil
				} else if err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	r, _ := s.PoolStats()
	if r.MaxIdleClosed != 0 || r.OpenConnections > 4 {
		t.Fatalf("read pool: %d connections closed for the idle limit, %d open", r.MaxIdleClosed, r.OpenConnections)
	}
}

// TestDeviceRequestDetached: the device read runs without the request's
// cancellation (Dialect.DetachHotReads: no watcher goroutines per MDM
// request), so a context cancelled before it still reads — here a serial
// that is not there, ErrNotFound — instead of failing with
// context.Canceled.
func TestDeviceRequestDetached(t *testing.T) {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "pomona.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, idle := range []bool{true, false} {
		if _, err := s.DeviceRequest(ctx, store.DeviceRequestQuery{Serial: "none", ChannelKind: "device", Idle: idle}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("idle %v: %v, want the read to run (not found)", idle, err)
		}
	}
}

// The other hot reads on the read pool run without the request's
// cancellation too (Dialect.DetachHotReads): an API request's key,
// enrollment and channel reads and a poll's read of the next command read
// with a context cancelled before them (on the base: context.Canceled),
// and with a context that can be cancelled they start no goroutine
// (database/sql's and the driver's watchers: two per read on the base).
func TestHotReadsDetached(t *testing.T) {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "pomona.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reads := func(ctx context.Context) error {
		if _, err := s.APIKey(ctx, "none"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("APIKey: %w", err)
		}
		if _, err := s.EnrollmentByAppleID(ctx, "none"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("EnrollmentByAppleID: %w", err)
		}
		if chs, err := s.Channels(ctx, "none"); err != nil || len(chs) != 0 {
			return fmt.Errorf("Channels: %v, %w", chs, err)
		}
		if _, err := s.NextCommand(ctx, "none", "none", true, time.Now()); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("NextCommand: %w", err)
		}
		return nil
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := reads(cancelled); err != nil {
		t.Fatalf("with a cancelled context: %v, want the reads to run (not found)", err)
	}
	live, stop := context.WithCancel(context.Background())
	defer stop()
	if err := reads(live); err != nil { // connections open, statements prepared
		t.Fatal(err)
	}
	const runs = 50
	sample := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(sample)
	before := sample[0].Value.Uint64()
	for range runs {
		if err := reads(live); err != nil {
			t.Fatal(err)
		}
	}
	metrics.Read(sample)
	got := sample[0].Value.Uint64() - before
	t.Logf("%d goroutines started for %d × 4 reads", got, runs)
	if got > runs/10 {
		t.Fatalf("%d goroutines started for %d × 4 hot reads, want none per read", got, runs)
	}
}

// A device request's read (sqlstore.DeviceRequest), the API's key,
// enrollment and channel reads and the read of a channel's next command
// name their columns with one letter (no allocation per
// column name in the driver): measured on misses, whose statements the
// driver sets up as a hit's (a result's look for the next command is
// usually one).
func TestHotReadAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not the program's under the race detector (sync.Pool drops items at random)")
	}
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "pomona.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	// At most the allocations now (one of them the context without its
	// cancellation, Dialect.DetachHotReads); with the columns' own names
	// 58 and 144 for a device request's read (Idle or not, the narrow and
	// the wide row), 35, 69, 43 and 50 for the others.
	deviceRequest := func(idle bool) func() error {
		q := store.DeviceRequestQuery{Serial: "none", ChannelKind: "device", TokenHash: make([]byte, 32), Idle: idle}
		return func() error { _, err := s.DeviceRequest(ctx, q); return err }
	}
	for _, c := range []struct {
		name string
		most float64
		read func() error
	}{
		{"DeviceRequest (Idle)", 45, deviceRequest(true)},
		{"DeviceRequest", 90, deviceRequest(false)},
		{"APIKey", 29, func() error { _, err := s.APIKey(ctx, "none"); return err }},
		{"EnrollmentByAppleID", 46, func() error { _, err := s.EnrollmentByAppleID(ctx, "none"); return err }},
		{"Channels", 30, func() error { _, err := s.Channels(ctx, "none"); return err }},
		{"NextCommand", 37, func() error { _, err := s.NextCommand(ctx, "none", "none", false, now); return err }},
	} {
		allocs := testing.AllocsPerRun(200, func() {
			if err := c.read(); err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
		})
		t.Logf("%s: %.0f allocations", c.name, allocs)
		if allocs > c.most {
			t.Errorf("%s: %.0f allocations, want at most %.0f", c.name, allocs, c.most)
		}
	}
}

// Chunked marking resumes after a restart (storetest.ChunkedMarkingResumes;
// SQLite is one process: the restart closes the first handle).
func TestChunkedMarkingResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pomona.db")
	var last store.Store
	storetest.ChunkedMarkingResumes(t, func() store.Store {
		if last != nil {
			last.Close()
		}
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		last = s
		t.Cleanup(func() { s.Close() })
		return s
	}, nil)
}
