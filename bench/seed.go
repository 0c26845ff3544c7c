package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/profile"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/open"
)

const benchPassword = "bench-password-1"

// seedStore writes the tenant, the users and `extra` enrolled devices
// straight into the store before the server starts: devices that exist in
// every table (enrollment, channel with a push token) but never talk, so
// that check-ins and bulk commands can be measured as the tables grow
// without enrolling each through the full flow. The simulated devices
// then enroll on top of them.
func seedStore(ctx context.Context, dbURL, domain string, users, extra int, log io.Writer) error {
	st, _, err := open.DB(ctx, dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	t := &store.Tenant{ID: directory.NewID("tn"), Name: "Bench", Domains: []string{domain}, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateTenant(ctx, t); err != nil {
		return err
	}
	hash, err := password.Hash(benchPassword, password.Default)
	if err != nil {
		return err
	}
	ids := make([]string, users)
	for i := range ids {
		u := &store.User{ID: directory.NewID("us"), TenantID: t.ID, Email: fmt.Sprintf("user%d@%s", i, domain), PasswordHash: hash, Enabled: true, CreatedAt: now, UpdatedAt: now}
		u.ManagedAppleID = u.Email
		if err := st.CreateUser(ctx, u); err != nil {
			return err
		}
		ids[i] = u.ID
	}
	if extra == 0 {
		return nil
	}
	fmt.Fprintf(log, "seed: writing %d enrolled devices into the store\n", extra)
	workers := 1
	if st.Backend() == "postgres" {
		workers = 8
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	var first atomic.Value
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= extra {
					return
				}
				if err := seedDevice(ctx, st, t.ID, ids[i%len(ids)], now); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
				if n := done.Add(1); n%10000 == 0 {
					fmt.Fprintf(log, "  %d written (%.0f/s)\n", n, float64(n)/time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return fmt.Errorf("seed: %w", err)
	}
	return ctx.Err()
}

func seedDevice(ctx context.Context, st store.Store, tenantID, userID string, now time.Time) error {
	tok := make([]byte, 32)
	rand.Read(tok)
	e := &store.Enrollment{ID: directory.NewID("en"), TenantID: tenantID, UserID: userID, TokenHash: tok, Platform: "iOS",
		Product: "iPhone15,3", OSVersion: "18.2", BuildVersion: "22C152", Language: "en-US", DeviceSignature: "seeded",
		ProfileID: "bench.seeded", Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateEnrollment(ctx, e, nil); err != nil {
		return err
	}
	apple := profile.NewUUID()
	if err := st.BindAppleEnrollment(ctx, e.ID, apple, store.DeviceInfo{OSVersion: "18.2", BuildVersion: "22C152", ProductName: "iPhone15,3"}, now); err != nil {
		return err
	}
	push := make([]byte, 32)
	rand.Read(push)
	return st.PutChannel(ctx, &store.Channel{ID: apple, DeviceID: e.ID, Kind: "device", PushToken: push, PushMagic: profile.NewUUID(),
		LastSeenAt: now, CreatedAt: now, UpdatedAt: now})
}
