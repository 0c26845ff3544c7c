package lifecycle_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/lifecycle"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlite"
)

// BenchmarkSilenceIdlePass measures one pass of the retirement policy
// when no device is due, on SQLite fleets of growing size: the pass is one
// query through the (status, last_seen_at) index, so its cost must not
// grow with the fleet. docs/benchmarks.md records the numbers.
func BenchmarkSilenceIdlePass(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			st := seeded(b, n)
			now := time.Now().UTC()
			s := &lifecycle.Silence{Store: st, RetireAfter: 90 * 24 * time.Hour, Now: func() time.Time { return now },
				Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				End: func(context.Context, *store.Enrollment, string) error { b.Fatal("nothing is due"); return nil }}
			b.ResetTimer()
			for b.Loop() {
				if n, err := s.Run(context.Background()); err != nil || n != 0 {
					b.Fatal(n, err)
				}
			}
		})
	}
}

// seeded is a SQLite store with n enrolled devices seen within the last
// 60 days (none silent for 90).
func seeded(b *testing.B, n int) store.Store {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	now := time.Now().UTC().Truncate(time.Microsecond)
	t := &store.Tenant{ID: "tn_bench", Name: "Bench", Domains: []string{"bench.example"}, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateTenant(ctx, t); err != nil {
		b.Fatal(err)
	}
	u := &store.User{ID: "us_bench", TenantID: t.ID, Email: "u@bench.example", ManagedAppleID: "u@bench.example", Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		e := &store.Enrollment{ID: fmt.Sprintf("en_%08d", i), TenantID: t.ID, UserID: u.ID, TokenHash: []byte(fmt.Sprint(i)), Platform: "iOS",
			Product: "iPhone15,3", Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}
		if err := st.CreateEnrollment(ctx, e, nil); err != nil {
			b.Fatal(err)
		}
		seen := now.Add(-time.Duration(i%(60*24)) * time.Hour)
		if err := st.BindAppleEnrollment(ctx, e.ID, fmt.Sprintf("APPLE-%08d", i), store.DeviceInfo{}, seen); err != nil {
			b.Fatal(err)
		}
	}
	return st
}
