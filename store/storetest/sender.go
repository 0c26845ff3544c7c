package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// EnrolledSender sets up one enrolled device in s — tenant "t-"+id, user
// "u-"+id, enrollment "e-"+id (AppleEnrollmentID "APPLE-"+upper(id)),
// identity certificate serial "0e1f", bearer token "tok-"+id and device
// channel "ch-"+id — and returns the command-channel query of its Idle
// poll (store.DeviceRequestQuery with Idle). For backend tests of what a
// sender's request reads (the sender cache, statement counts,
// benchmarks); s must be empty of those ids.
func EnrolledSender(tb testing.TB, s store.Store, id string) store.DeviceRequestQuery {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	tenant, user, device := "t-"+id, "u-"+id, "e-"+id
	must(s.CreateTenant(ctx, &store.Tenant{ID: tenant, Name: "A", Domains: []string{"a.example"}, CreatedAt: now, UpdatedAt: now}))
	must(s.CreateUser(ctx, &store.User{ID: user, TenantID: tenant, Email: "a@a.example", ManagedAppleID: "a@a.example", Enabled: true,
		CreatedAt: now, UpdatedAt: now}))
	must(s.CreateEnrollment(ctx, &store.Enrollment{ID: device, TenantID: tenant, UserID: user, TokenHash: []byte("tok"), Platform: "iOS",
		Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}, &store.SCEPChallenge{Hash: []byte("c-" + id), ExpiresAt: now.Add(time.Hour)}))
	must(s.ConsumeSCEPChallenge(ctx, []byte("c-"+id), now, &store.IdentityCert{Serial: "0e1f", DeviceID: device, SHA256: []byte("fp"),
		NotBefore: now, NotAfter: now.Add(time.Hour), IssuedAt: now}))
	must(s.BindAppleEnrollment(ctx, device, "APPLE-"+strings.ToUpper(id), store.DeviceInfo{}, now))
	must(s.CreateAccessToken(ctx, &store.AccessToken{Hash: []byte("tok-" + id), UserID: user, TenantID: tenant, CreatedAt: now,
		ExpiresAt: now.Add(time.Hour), DeviceID: device}))
	must(s.PutChannel(ctx, &store.Channel{ID: "ch-" + id, DeviceID: device, Kind: "device", PushMagic: "m", CreatedAt: now, UpdatedAt: now, LastSeenAt: now}))
	return store.DeviceRequestQuery{Serial: "0e1f", TokenHash: []byte("tok-" + id), ChannelKind: "device", Idle: true}
}
