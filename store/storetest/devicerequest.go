package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

func deviceRequestTests() []namedTest {
	return []namedTest{{"DeviceRequest", testDeviceRequest}, {"DeviceRequestRemembered", testDeviceRequestRemembered}}
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
	cert := &store.IdentityCert{Serial: "0a1b", DeviceID: e.ID, SHA256: []byte("fp"), NotBefore: now(), NotAfter: now().Add(time.Hour), IssuedAt: now()}
	if err := s.ConsumeSCEPChallenge(ctx, []byte("c1"), now(), cert); err != nil {
		t.Fatal(err)
	}
	if err := s.BindAppleEnrollment(ctx, e.ID, "APPLE-DR", store.DeviceInfo{OSVersion: "18.3"}, now()); err != nil {
		t.Fatal(err)
	}
	tok := &store.AccessToken{Hash: []byte("tok-dr"), UserID: u.ID, TenantID: tn.ID, CreatedAt: now(), ExpiresAt: now().Add(time.Hour), DeviceID: e.ID}
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
	if got.IdentityCert.Serial != wantIC.Serial || got.IdentityCert.DeviceID != e.ID || string(got.IdentityCert.SHA256) != "fp" ||
		!got.IdentityCert.NotAfter.Equal(wantIC.NotAfter) || !got.IdentityCert.RevokedAt.IsZero() {
		t.Errorf("identity certificate %+v, want %+v", got.IdentityCert, wantIC)
	}
	if got.Enrollment.ID != e.ID || got.Enrollment.AppleEnrollmentID != "APPLE-DR" || got.Enrollment.Status != wantE.Status ||
		got.Enrollment.OSVersion != "18.3" || !got.Enrollment.EnrolledAt.Equal(wantE.EnrolledAt) || got.Enrollment.ProfileID != wantE.ProfileID ||
		got.Enrollment.Platform != wantE.Platform || got.Enrollment.TenantID != tn.ID || got.Enrollment.UserID != u.ID ||
		got.Enrollment.MachineInfo != nil || got.Enrollment.Inventory != nil {
		t.Errorf("enrollment %+v, want %+v", got.Enrollment, wantE)
	}
	if got.User.ID != u.ID || got.User.Email != wantU.Email || got.User.Enabled != wantU.Enabled || !got.User.TokensNotBefore.Equal(wantU.TokensNotBefore) ||
		got.User.TenantID != tn.ID || got.User.PasswordHash != "" || got.User.TOTPSecret != nil {
		t.Errorf("user %+v, want %+v without credentials", got.User, wantU)
	}
	if got.AccessToken == nil || string(got.AccessToken.Hash) != "tok-dr" || got.AccessToken.DeviceID != e.ID ||
		!got.AccessToken.ExpiresAt.Equal(wantT.ExpiresAt) || got.AccessToken.UserID != u.ID {
		t.Errorf("access token %+v, want %+v", got.AccessToken, wantT)
	}
	if got.Channel == nil || got.Channel.ID != "ch-dr" || string(got.Channel.PushToken) != "\x01\x02" || !got.Channel.LastSeenAt.Equal(wantC.LastSeenAt) {
		t.Errorf("channel %+v, want %+v", got.Channel, wantC)
	}

	if got.CommandWaiting {
		t.Error("CommandWaiting with an empty queue")
	}

	// An Idle read: exactly the fields store.DeviceRequest lists for it,
	// equal to the full read's, every other field zero.
	if err := s.PutChannel(ctx, &store.Channel{ID: "ch-dr-u", DeviceID: e.ID, Kind: "user", EnrollmentUserID: "U7", PushMagic: "mu",
		CreatedAt: now(), UpdatedAt: now(), LastSeenAt: now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []store.DeviceRequestQuery{
		{Serial: "0a1b", TokenHash: []byte("tok-dr"), ChannelKind: "device"},
		{Serial: "0a1b", TokenHash: []byte("tok-dr"), ChannelKind: "user", EnrollmentUserID: "U7"},
		{Serial: "0a1b"},
	} {
		full, err := s.DeviceRequest(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		q.Idle = true
		idle, err := s.DeviceRequest(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(idle, idleFields(full)) {
			t.Errorf("Idle read of %+v:\n got %+v\nwant %+v", q, idle, idleFields(full))
		}
	}

	// CommandWaiting: a command an Idle poll would be handed (queued, sent,
	// NotNow) on the asked channel, and only on that channel; the same in
	// an Idle read.
	waiting := func(q store.DeviceRequestQuery) bool {
		t.Helper()
		got, err := s.DeviceRequest(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		q.Idle = true
		idle, err := s.DeviceRequest(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if idle.CommandWaiting != got.CommandWaiting {
			t.Errorf("%+v: CommandWaiting %v, in the Idle read %v", q, got.CommandWaiting, idle.CommandWaiting)
		}
		return got.CommandWaiting
	}
	dev := store.DeviceRequestQuery{Serial: "0a1b", ChannelKind: "device"}
	other := store.DeviceRequestQuery{Serial: "0a1b", ChannelKind: "user", EnrollmentUserID: "U7"}
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: "dr-c1", RequestType: "DeviceInformation", Payload: []byte("<plist/>"), CreatedAt: now()}, []string{"ch-dr"}); err != nil {
		t.Fatal(err)
	}
	if !waiting(dev) || waiting(other) {
		t.Errorf("queued: waiting on the device channel %v, on the user channel %v", waiting(dev), waiting(other))
	}
	if q, err := s.NextCommand(ctx, e.ID, "ch-dr", true, now()); err != nil || q.UUID != "dr-c1" {
		t.Fatal(q, err)
	}
	if !waiting(dev) {
		t.Error("sent without an answer: not waiting")
	}
	if _, err := s.RecordResult(ctx, e.ID, "ch-dr", "dr-c1", "NotNow", nil, now(), nil); err != nil {
		t.Fatal(err)
	}
	if !waiting(dev) {
		t.Error("NotNow: not waiting")
	}
	s.NextCommand(ctx, e.ID, "ch-dr", true, now())
	if _, err := s.RecordResult(ctx, e.ID, "ch-dr", "dr-c1", "Acknowledged", nil, now(), nil); err != nil {
		t.Fatal(err)
	}
	if waiting(dev) {
		t.Error("acknowledged: still waiting")
	}

	// Without a bearer or a channel kind, or with unknown ones: nil.
	for _, q := range []store.DeviceRequestQuery{{Serial: "0a1b"}, {Serial: "0a1b", TokenHash: []byte("other"), ChannelKind: "user", EnrollmentUserID: "U1"},
		{Serial: "0a1b", Idle: true}, {Serial: "0a1b", TokenHash: []byte("other"), ChannelKind: "user", EnrollmentUserID: "U1", Idle: true}} {
		got, err := s.DeviceRequest(ctx, q)
		if err != nil || got.AccessToken != nil || got.Channel != nil || got.CommandWaiting || got.Enrollment.ID != e.ID {
			t.Errorf("%+v: %+v, %v", q, got, err)
		}
	}
	for _, idle := range []bool{false, true} {
		_, err = s.DeviceRequest(ctx, store.DeviceRequestQuery{Serial: "ffff", Idle: idle})
		wantErr(t, err, store.ErrNotFound)
	}

	// A revoked certificate and token, a user whose tokens were cut off:
	// the Idle read carries what refuses them.
	if _, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error {
		x.Enabled, x.TokensNotBefore = false, now().Add(time.Second)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.EndEnrollment(ctx, e.ID, "test", now()); err != nil {
		t.Fatal(err)
	}
	q := store.DeviceRequestQuery{Serial: "0a1b", TokenHash: []byte("tok-dr"), ChannelKind: "device"}
	full, err := s.DeviceRequest(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if full.IdentityCert.RevokedAt.IsZero() || full.AccessToken == nil || full.AccessToken.RevokedAt.IsZero() || full.Enrollment.Status != store.EnrollmentUnenrolled ||
		full.User.Enabled || full.User.TokensNotBefore.IsZero() {
		t.Fatalf("after EndEnrollment: %+v", full)
	}
	q.Idle = true
	if idle, err := s.DeviceRequest(ctx, q); err != nil || !reflect.DeepEqual(idle, idleFields(full)) {
		t.Errorf("Idle read of an ended enrollment:\n got %+v, %v\nwant %+v", idle, err, idleFields(full))
	}
}

// idleFields is full (a DeviceRequest read without Idle) with only the
// fields store.DeviceRequest lists for an Idle read.
func idleFields(full *store.DeviceRequest) *store.DeviceRequest {
	ic, e, u := full.IdentityCert, full.Enrollment, full.User
	r := &store.DeviceRequest{
		IdentityCert: store.IdentityCert{Serial: ic.Serial, DeviceID: ic.DeviceID, RevokedAt: ic.RevokedAt},
		Enrollment: store.Enrollment{ID: e.ID, TenantID: e.TenantID, UserID: e.UserID, Platform: e.Platform, Status: e.Status,
			AppleEnrollmentID: e.AppleEnrollmentID},
		User:           store.User{ID: u.ID, Enabled: u.Enabled, TokensNotBefore: u.TokensNotBefore},
		AccessToken:    full.AccessToken,
		CommandWaiting: full.CommandWaiting,
	}
	if c := full.Channel; c != nil {
		r.Channel = &store.Channel{ID: c.ID, DeviceID: c.DeviceID, Kind: c.Kind, EnrollmentUserID: c.EnrollmentUserID, LastSeenAt: c.LastSeenAt}
	}
	return r
}

// testDeviceRequestRemembered: a store may remember a command-channel
// sender's read (sqlstore's authCache), but every write that changes it
// — a channel's TokenUpdate, a new bearer token, the user disabled or
// their tokens cut off, the enrollment ended (revocation, CheckOut), the
// user deleted — shows in the very next Idle read, which always equals
// the fields of a full read made then.
func testDeviceRequestRemembered(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := mustEnrollment(t, s, tn.ID, u.ID, []byte("c1"), now().Add(time.Hour))
	cert := &store.IdentityCert{Serial: "0c1d", DeviceID: e.ID, SHA256: []byte("fp"), NotBefore: now(), NotAfter: now().Add(time.Hour), IssuedAt: now()}
	if err := s.ConsumeSCEPChallenge(ctx, []byte("c1"), now(), cert); err != nil {
		t.Fatal(err)
	}
	if err := s.BindAppleEnrollment(ctx, e.ID, "APPLE-RM", store.DeviceInfo{OSVersion: "18.3"}, now()); err != nil {
		t.Fatal(err)
	}
	dev := store.DeviceRequestQuery{Serial: "0c1d", TokenHash: []byte("tok-rm"), ChannelKind: "device", Idle: true}
	res := dev
	res.NoWaiting = true
	// check reads q (Idle) three times — the first may remember it, the
	// others may be answered from that — each equal to the full read's
	// fields; it returns the first.
	check := func(what string, q store.DeviceRequestQuery) *store.DeviceRequest {
		t.Helper()
		fq := q
		fq.Idle, fq.NoWaiting = false, false
		full, err := s.DeviceRequest(ctx, fq)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		want := idleFields(full)
		if q.NoWaiting {
			want.CommandWaiting = false
		}
		var first *store.DeviceRequest
		for i := range 3 {
			got, err := s.DeviceRequest(ctx, q)
			if err != nil {
				t.Fatalf("%s: read %d: %v", what, i, err)
			}
			if q.NoWaiting {
				got.CommandWaiting = false // not asked for
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: Idle read %d of %+v:\n got %+v\nwant %+v", what, i, q, got, want)
			}
			if first == nil {
				first = got
			}
		}
		return first
	}
	if r := check("before any channel", dev); r.Channel != nil || r.AccessToken != nil {
		t.Fatalf("before any channel or token: %+v", r)
	}
	check("a result before any channel", res)

	// TokenUpdate: the channel appears at once.
	if err := s.PutChannel(ctx, &store.Channel{ID: "ch-rm", DeviceID: e.ID, Kind: "device", PushMagic: "m", CreatedAt: now(), UpdatedAt: now(),
		LastSeenAt: now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if r := check("after TokenUpdate", dev); r.Channel == nil || r.Channel.ID != "ch-rm" || r.CommandWaiting {
		t.Fatalf("after TokenUpdate: %+v", r)
	}
	// A command queued: the next Idle poll of a remembered sender sees it.
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: "rm-c1", RequestType: "DeviceInformation", Payload: []byte("<plist/>"), CreatedAt: now()}, []string{"ch-rm"}); err != nil {
		t.Fatal(err)
	}
	if r := check("a command queued", dev); !r.CommandWaiting {
		t.Fatal("a command queued for a remembered sender: CommandWaiting false")
	}
	// Touched: a remembered channel's last-seen time is the touch's (the
	// channel is touched once a minute, not on every request).
	seen := now()
	if err := s.TouchChannel(ctx, e.ID, "ch-rm", seen); err != nil {
		t.Fatal(err)
	}
	if r := check("touched", dev); !r.Channel.LastSeenAt.Equal(seen) {
		t.Fatalf("after TouchChannel: last seen %v, want %v", r.Channel.LastSeenAt, seen)
	}

	// A bearer token created after a read that found none.
	if err := s.CreateAccessToken(ctx, &store.AccessToken{Hash: []byte("tok-rm"), UserID: u.ID, TenantID: tn.ID, CreatedAt: now(),
		ExpiresAt: now().Add(time.Hour), DeviceID: e.ID}); err != nil {
		t.Fatal(err)
	}
	if r := check("token created", dev); r.AccessToken == nil || string(r.AccessToken.Hash) != "tok-rm" {
		t.Fatalf("after the token's creation: %+v", r.AccessToken)
	}
	check("a result with the token", res)

	// The user disabled, then their tokens cut off (a rotation).
	if _, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if r := check("user disabled", res); r.User.Enabled {
		t.Fatal("a disabled user read as enabled")
	}
	if _, err := s.UpdateUser(ctx, u.ID, func(x *store.User) error { x.Enabled, x.TokensNotBefore = true, now().Add(time.Second); return nil }); err != nil {
		t.Fatal(err)
	}
	if r := check("tokens cut off", dev); r.User.TokensNotBefore.IsZero() || !r.User.Enabled {
		t.Fatalf("tokens cut off: %+v", r.User)
	}

	// Ended (CheckOut, revocation): the certificate and the token revoked,
	// the enrollment unenrolled, on the very next read.
	if err := s.EndEnrollment(ctx, e.ID, "test", now()); err != nil {
		t.Fatal(err)
	}
	if r := check("ended", res); r.IdentityCert.RevokedAt.IsZero() || r.Enrollment.Status != store.EnrollmentUnenrolled ||
		r.AccessToken == nil || r.AccessToken.RevokedAt.IsZero() {
		t.Fatalf("after EndEnrollment: %+v", r)
	}

	// The user deleted (their enrollment with them): not found at once.
	if err := s.DeleteUser(ctx, u.ID, store.Ending{Reason: "test", At: now()}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []store.DeviceRequestQuery{dev, res} {
		_, err := s.DeviceRequest(ctx, q)
		wantErr(t, err, store.ErrNotFound)
	}
}
