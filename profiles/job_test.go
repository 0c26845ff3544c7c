package profiles

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/mdm/payloads"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/postgres"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

const wifi = `<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>com.example.wifi</string>
<key>PayloadUUID</key><string>6A0B0C5E-1111-4222-8333-444455556666</string>
<key>PayloadContent</key><array><dict>
	<key>PayloadType</key><string>com.apple.wifi.managed</string>
	<key>PayloadIdentifier</key><string>com.example.wifi.payload</string>
	<key>PayloadUUID</key><string>7A0B0C5E-1111-4222-8333-444455556666</string>
	<key>SSID_STR</key><string>Corp</string>
	<key>EAPClientConfiguration</key><dict><key>UserName</key><string>$EMAIL</string></dict>
</dict></array></dict></plist>`

// fleet seeds a tenant whose n enrolled devices (each with its device
// channel) are in a group with the Wi-Fi profile; it returns the channels.
func fleet(t *testing.T, st storeAll, n int) []string {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	tn := &store.Tenant{ID: "tn_1", Name: "Example", Domains: []string{"example.com"}, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	var chs []string
	for i := 0; i < n; i++ {
		u := &store.User{ID: fmt.Sprint("us_", i), TenantID: tn.ID, Email: fmt.Sprintf("u%d@example.com", i), ManagedAppleID: "x", Enabled: true, CreatedAt: now, UpdatedAt: now}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		e := &store.Enrollment{ID: fmt.Sprint("en_", i), TenantID: tn.ID, UserID: u.ID, TokenHash: []byte{byte(i)}, Platform: "iOS", OSVersion: "18.2",
			Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}
		if err := st.CreateEnrollment(ctx, e, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.BindAppleEnrollment(ctx, e.ID, fmt.Sprint("APPLE-", i), store.DeviceInfo{OSVersion: "18.2"}, now); err != nil {
			t.Fatal(err)
		}
		ch := &store.Channel{ID: fmt.Sprint("ch_", i), DeviceID: e.ID, Kind: "device", PushToken: []byte("t"), CreatedAt: now, UpdatedAt: now}
		if err := st.PutChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
		chs = append(chs, ch.ID)
	}
	svc := &app.Profiles{Store: st.(app.ProfileStore), Rules: payloads.Default(), Now: time.Now}
	p, err := svc.Upload(ctx, app.ProfileUpload{TenantID: tn.ID, Content: []byte(wifi), Platforms: []string{"iOS"}})
	if err != nil {
		t.Fatal(err)
	}
	all, err := st.AllUsersGroup(ctx, tn.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Assign(ctx, p.ID, all.ID, false); err != nil {
		t.Fatal(err)
	}
	return chs
}

func job(st storeAll, holder string) *Job {
	return &Job{Store: st, Holder: holder, Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Batch: 7,
		Commands: &app.Commands{Store: st.(commandStore), Catalog: catalog.Default(), Now: time.Now}}
}

type commandStore interface {
	Store
	store.IdempotencyStore
}

// storeAll is a whole backend (what the tests open).
type storeAll = store.Store

// twoInstances runs two reconcilers (each with its own store connection,
// as two servers on one database would) until nothing is due, then checks
// that every device got exactly one InstallProfile.
func twoInstances(t *testing.T, a, b storeAll, chs []string) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, j := range []*Job{job(a, "A"), job(b, "B")} {
		wg.Add(1)
		go func(j *Job) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				rep, err := j.Run(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if rep.Claimed == 0 {
					if n, _ := j.Store.DirtyCount(ctx, time.Now()); n == 0 {
						return
					}
				}
			}
		}(j)
	}
	wg.Wait()
	// Every device's item is installing; nothing is due any more.
	installsOnce(t, a, chs, time.Now())
}

// installsOnce fails unless every channel of chs has exactly one
// InstallProfile queued and no enrollment is due at dueBy.
func installsOnce(t *testing.T, s storeAll, chs []string, dueBy time.Time) {
	t.Helper()
	ctx := context.Background()
	for _, ch := range chs {
		qs, err := s.QueuedCommands(ctx, ch, 100)
		if err != nil {
			t.Fatal(err)
		}
		installs := 0
		for _, q := range qs {
			if q.RequestType == "InstallProfile" {
				installs++
			}
		}
		if installs != 1 {
			t.Fatalf("channel %s got %d InstallProfile commands", ch, installs)
		}
	}
	if n, err := s.DirtyCount(ctx, dueBy); err != nil || n != 0 {
		t.Fatalf("%d enrollments still due (%v)", n, err)
	}
}

// twoPostgresInstances opens two stores on one new PostgreSQL database,
// as two Pomona instances do; both close when the test ends.
func twoPostgresInstances(t *testing.T) (a, b *sqlstore.Store) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	for _, s := range []**sqlstore.Store{&a, &b} {
		st, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		*s = st
	}
	return a, b
}

func TestTwoInstancesNeverDeliverTwicePostgres(t *testing.T) {
	a, b := twoPostgresInstances(t)
	twoInstances(t, a, b, fleet(t, a, 60))
}

func TestTwoReconcilersSQLite(t *testing.T) {
	s := emptyStore(t)
	twoInstances(t, s, s, fleet(t, s, 30))
}

// batchStore is a store that asks for passes of n enrollments.
type batchStore struct {
	storeAll
	n int
}

func (b batchStore) ReconcileBatch() int { return b.n }

// A job without its own Batch claims the store's batch (BatchSizer):
// the SQLite store asks for larger passes than DefaultBatch, fewer
// transactions of its single writer.
func TestBatchFromStore(t *testing.T) {
	s := emptyStore(t)
	fleet(t, s, 5)
	j := job(batchStore{s, 3}, "A")
	j.Batch = 0
	rep, err := j.Run(context.Background())
	if err != nil || rep.Claimed != 3 {
		t.Fatalf("first pass: %+v %v, want 3 claimed", rep, err)
	}
	if rep, err = j.Run(context.Background()); err != nil || rep.Claimed != 2 {
		t.Fatalf("second pass: %+v %v, want the other 2", rep, err)
	}
	if b := s.ReconcileBatch(); b <= DefaultBatch {
		t.Fatalf("the SQLite store's batch is %d, want more than DefaultBatch (%d)", b, DefaultBatch)
	}
}
