package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

func deviceRequestTests() []namedTest {
	return []namedTest{{"DeviceRequest", testDeviceRequest}}
}

// testDeviceRequest: one read returns the certificate, its enrollment and
// user, and the asked-for token and channel, each equal to what the
// single reads return; a missing token or channel is nil, an unknown serial
// ErrNotFound.
func testDeviceRequest(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := mustEnrollment(t, s, tn.ID, u.ID, []byte("c1"), now().Add(time.Hour))
	cert := &store.IdentityCert{Serial: "0a1b", EnrollmentID: e.ID, SHA256: []byte("fp"), NotBefore: now(), NotAfter: now().Add(time.Hour), IssuedAt: now()}
	if err := s.ConsumeSCEPChallenge(ctx, []byte("c1"), now(), cert); err != nil {
		t.Fatal(err)
	}
	if err := s.BindAppleEnrollment(ctx, e.ID, "APPLE-DR", store.DeviceInfo{OSVersion: "18.3"}, now()); err != nil {
		t.Fatal(err)
	}
	tok := &store.AccessToken{Hash: []byte("tok-dr"), UserID: u.ID, TenantID: tn.ID, CreatedAt: now(), ExpiresAt: now().Add(time.Hour), EnrollmentID: e.ID}
	if err := s.CreateAccessToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	ch := &store.Channel{ID: "ch-dr", DeviceID: e.ID, Kind: "device", PushToken: []byte{1, 2}, PushMagic: "m", CreatedAt: now(), UpdatedAt: now(), LastSeenAt: now()}
	if err := s.PutChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}

	got, err := s.DeviceRequest(ctx, store.DeviceRequestQuery{Serial: "0a1b", TokenHash: []byte("tok-dr"), ChannelKind: "device"})
	if err != nil {
		t.Fatal(err)
	}
	wantIC, _ := s.IdentityCert(ctx, "0a1b")
	wantE, _ := s.Enrollment(ctx, e.ID)
	wantU, _ := s.User(ctx, u.ID)
	wantT, _ := s.AccessToken(ctx, []byte("tok-dr"))
	wantC, _ := s.Channel(ctx, e.ID, "device", "")
	if got.IdentityCert.Serial != wantIC.Serial || got.IdentityCert.EnrollmentID != e.ID || string(got.IdentityCert.SHA256) != "fp" ||
		!got.IdentityCert.NotAfter.Equal(wantIC.NotAfter) || !got.IdentityCert.RevokedAt.IsZero() {
		t.Errorf("identity certificate %+v, want %+v", got.IdentityCert, wantIC)
	}
	if got.Enrollment.ID != e.ID || got.Enrollment.AppleEnrollmentID != "APPLE-DR" || got.Enrollment.Status != wantE.Status ||
		got.Enrollment.OSVersion != "18.3" || !got.Enrollment.EnrolledAt.Equal(wantE.EnrolledAt) || string(got.Enrollment.MachineInfo) != string(wantE.MachineInfo) {
		t.Errorf("enrollment %+v, want %+v", got.Enrollment, wantE)
	}
	if got.User.ID != u.ID || got.User.Email != wantU.Email || got.User.Enabled != wantU.Enabled || !got.User.TokensNotBefore.Equal(wantU.TokensNotBefore) {
		t.Errorf("user %+v, want %+v", got.User, wantU)
	}
	if got.AccessToken == nil || string(got.AccessToken.Hash) != "tok-dr" || got.AccessToken.EnrollmentID != e.ID ||
		!got.AccessToken.ExpiresAt.Equal(wantT.ExpiresAt) || got.AccessToken.UserID != u.ID {
		t.Errorf("access token %+v, want %+v", got.AccessToken, wantT)
	}
	if got.Channel == nil || got.Channel.ID != "ch-dr" || string(got.Channel.PushToken) != "\x01\x02" || !got.Channel.LastSeenAt.Equal(wantC.LastSeenAt) {
		t.Errorf("channel %+v, want %+v", got.Channel, wantC)
	}

	// Without a bearer or a channel kind, or with unknown ones: nil.
	for _, q := range []store.DeviceRequestQuery{{Serial: "0a1b"}, {Serial: "0a1b", TokenHash: []byte("other"), ChannelKind: "user", EnrollmentUserID: "U1"}} {
		got, err := s.DeviceRequest(ctx, q)
		if err != nil || got.AccessToken != nil || got.Channel != nil || got.Enrollment.ID != e.ID {
			t.Errorf("%+v: %+v, %v", q, got, err)
		}
	}
	_, err = s.DeviceRequest(ctx, store.DeviceRequestQuery{Serial: "ffff"})
	wantErr(t, err, store.ErrNotFound)
}
