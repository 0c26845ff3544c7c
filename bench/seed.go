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
	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/mdmservice"
	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/profile"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/open"
)

const benchPassword = "bench-password-1"

// pairUsers are seeded users with pairDevices devices each (the first
// seeded devices), as real users have: with 100,000 devices over 50 bench
// users every other user has 2,000, which is not what "a membership change
// of one user" means in practice.
const (
	pairUsers   = 10
	pairDevices = 2
)

// seededUser is a seeded user with few devices (their enrollment ids).
type seededUser struct {
	Email   string
	Devices []string
}

// seedStore writes the tenant, the users and `extra` enrolled devices
// straight into the store before the server starts: devices that exist in
// every table (enrollment, channel with a push token) but never talk, so
// that check-ins and bulk commands can be measured as the tables grow
// without enrolling each through the full flow. The simulated devices
// then enroll on top of them. When extra allows, the first
// pairUsers*pairDevices seeded devices belong to pairUsers more users
// ("pair<i>@domain"), returned with their devices.
func seedStore(ctx context.Context, dbURL, domain string, users, extra int, log io.Writer) ([]seededUser, error) {
	st, _, err := open.DB(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	t := &store.Tenant{ID: directory.NewID("tn"), Name: "Bench", Domains: []string{domain}, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateTenant(ctx, t); err != nil {
		return nil, err
	}
	hash, err := password.Hash(benchPassword, password.Default)
	if err != nil {
		return nil, err
	}
	newUser := func(email string) (string, error) {
		u := &store.User{ID: directory.NewID("us"), TenantID: t.ID, Email: email, PasswordHash: hash, Enabled: true, CreatedAt: now, UpdatedAt: now}
		u.ManagedAppleID = u.Email
		return u.ID, st.CreateUser(ctx, u)
	}
	ids := make([]string, users)
	for i := range ids {
		if ids[i], err = newUser(fmt.Sprintf("user%d@%s", i, domain)); err != nil {
			return nil, err
		}
	}
	if extra == 0 {
		return nil, nil
	}
	// Owner of seeded device i.
	owner := func(i int) string { return ids[i%len(ids)] }
	var pairs []seededUser
	if extra >= 2*pairUsers*pairDevices {
		pairIDs := make([]string, pairUsers)
		pairs = make([]seededUser, pairUsers)
		for i := range pairIDs {
			pairs[i].Email = fmt.Sprintf("pair%d@%s", i, domain)
			if pairIDs[i], err = newUser(pairs[i].Email); err != nil {
				return nil, err
			}
		}
		owner = func(i int) string {
			if i < pairUsers*pairDevices {
				return pairIDs[i/pairDevices]
			}
			return ids[i%len(ids)]
		}
	}
	var mu sync.Mutex
	fmt.Fprintf(log, "seed: writing %d enrolled devices into the store\n", extra)
	err = writeParallel(ctx, extra, log, func(i int) error {
		id, err := seedDevice(ctx, st, t.ID, owner(i), now)
		if err != nil {
			return err
		}
		if i < len(pairs)*pairDevices {
			mu.Lock()
			pairs[i/pairDevices].Devices = append(pairs[i/pairDevices].Devices, id)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	return pairs, ctx.Err()
}

// writeParallel calls write(i) for i in [0, n) from eight goroutines and
// returns the first error any of them met (the others stop at their next
// item). Eight writers on both stores: on SQLite the group committer folds
// their transactions into shared commits (one writer: ~300 devices/s,
// 100,000 in over five minutes). Progress goes to log every 10,000 items.
func writeParallel(ctx context.Context, n int, log io.Writer, write func(i int) error) error {
	const workers = 8
	var next, done atomic.Int64
	var wg sync.WaitGroup
	// The first error, whatever its type: the workers' errors differ in
	// dynamic type (a driver's error, a wrapped one, context.Canceled), which
	// atomic.Value refuses to hold one after another (it panicked here).
	var first error
	var firstOnce sync.Once
	var failed atomic.Bool
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := write(i); err != nil {
					firstOnce.Do(func() { first = err })
					failed.Store(true)
					return
				}
				if d := done.Add(1); d%10000 == 0 {
					fmt.Fprintf(log, "  %d written (%.0f/s)\n", d, float64(d)/time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// seedDevice writes one enrolled device of userID and returns its id.
func seedDevice(ctx context.Context, st store.Store, tenantID, userID string, now time.Time) (string, error) {
	tok := make([]byte, 32)
	rand.Read(tok)
	// Ids made as enrollment and TokenUpdate make them: the channel's sorts
	// with its enrollment's (the queue's keys follow the reconciler's batches).
	e := &store.Enrollment{ID: enroll.NewEnrollmentID(), TenantID: tenantID, UserID: userID, TokenHash: tok, Platform: "iOS",
		Product: "iPhone15,3", OSVersion: "18.2", BuildVersion: "22C152", Language: "en-US", DeviceSignature: "seeded",
		ProfileID: "bench.seeded", Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateEnrollment(ctx, e, nil); err != nil {
		return "", err
	}
	apple := profile.NewUUID()
	if err := st.BindAppleEnrollment(ctx, e.ID, apple, store.DeviceInfo{OSVersion: "18.2", BuildVersion: "22C152", ProductName: "iPhone15,3"}, now); err != nil {
		return "", err
	}
	push := make([]byte, 32)
	rand.Read(push)
	return e.ID, st.PutChannel(ctx, &store.Channel{ID: mdmservice.NewChannelID(e.ID), DeviceID: e.ID, Kind: "device", PushToken: push, PushMagic: profile.NewUUID(),
		LastSeenAt: now, CreatedAt: now, UpdatedAt: now})
}
