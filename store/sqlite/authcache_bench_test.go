package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// benchSender opens a store with one enrolled device and returns its
// command-channel query (Idle).
func benchSender(b *testing.B) (*sqlstore.Store, store.DeviceRequestQuery) {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir()+"/pomona.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	now := time.Now().UTC().Truncate(time.Microsecond)
	must := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	must(s.CreateTenant(ctx, &store.Tenant{ID: "t-b", Name: "A", Domains: []string{"a.example"}, CreatedAt: now, UpdatedAt: now}))
	must(s.CreateUser(ctx, &store.User{ID: "u-b", TenantID: "t-b", Email: "a@a.example", ManagedAppleID: "a@a.example", Enabled: true,
		CreatedAt: now, UpdatedAt: now}))
	must(s.CreateEnrollment(ctx, &store.Enrollment{ID: "e-b", TenantID: "t-b", UserID: "u-b", TokenHash: []byte("tok"), Platform: "iOS",
		Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}, &store.SCEPChallenge{Hash: []byte("c-b"), ExpiresAt: now.Add(time.Hour)}))
	must(s.ConsumeSCEPChallenge(ctx, []byte("c-b"), now, &store.IdentityCert{Serial: "0e1f", DeviceID: "e-b", SHA256: []byte("fp"),
		NotBefore: now, NotAfter: now.Add(time.Hour), IssuedAt: now}))
	must(s.BindAppleEnrollment(ctx, "e-b", "APPLE-B", store.DeviceInfo{}, now))
	must(s.CreateAccessToken(ctx, &store.AccessToken{Hash: []byte("tok-b"), UserID: "u-b", TenantID: "t-b", CreatedAt: now,
		ExpiresAt: now.Add(time.Hour), DeviceID: "e-b"}))
	must(s.PutChannel(ctx, &store.Channel{ID: "ch-b", DeviceID: "e-b", Kind: "device", PushMagic: "m", CreatedAt: now, UpdatedAt: now, LastSeenAt: now}))
	return s, store.DeviceRequestQuery{Serial: "0e1f", TokenHash: []byte("tok-b"), ChannelKind: "device", Idle: true}
}

// BenchmarkSenderIdlePoll: the store read of an Idle poll by the same
// device, over and over (Session 14, identcache6: remembered after the
// first, one statement on auth_generation and the channel's queue).
func BenchmarkSenderIdlePoll(b *testing.B) {
	s, q := benchSender(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.DeviceRequest(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}
