package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

// Who a request speaks for (issue 11): channels owned by enrollments,
// terminal endings, one sign-in one enrollment.
func ownershipTests() []namedTest {
	return []namedTest{
		{"ChannelOwnership", testChannelOwnership},
		{"ChannelIdentityConstraint", testChannelConstraint},
		{"EndEnrollment", testEndEnrollment},
		{"PendingEnrollmentPerToken", testPendingPerToken},
		{"PendingEnrollmentPerTokenUnderRace", testPendingRace},
	}
}

// A channel is found by (enrollment, kind, EnrollmentUserID) only, and the
// queue operations of the MDM path never reach another enrollment's
// channel, whatever its id.
func testChannelOwnership(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, e2 := enrolled(t, s)
	t0 := now()
	dev := &store.Channel{ID: id("ch"), DeviceID: e1.ID, Kind: "device", PushMagic: "m1", CreatedAt: t0, UpdatedAt: t0}
	if err := s.PutChannel(ctx, dev); err != nil {
		t.Fatal(err)
	}
	first := dev.ID
	// The same channel again under another proposed id keeps its id.
	again := &store.Channel{ID: id("ch"), DeviceID: e1.ID, Kind: "device", PushMagic: "m2", CreatedAt: t0, UpdatedAt: t0}
	if err := s.PutChannel(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.ID != first {
		t.Fatalf("PutChannel of an existing channel: id %s, stored %s", again.ID, first)
	}
	victim := &store.Channel{ID: id("ch"), DeviceID: e1.ID, Kind: "user", EnrollmentUserID: "U1", UserShortName: "alice", CreatedAt: t0, UpdatedAt: t0}
	other := &store.Channel{ID: id("ch"), DeviceID: e2.ID, Kind: "device", CreatedAt: t0, UpdatedAt: t0}
	for _, c := range []*store.Channel{victim, other} {
		if err := s.PutChannel(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if cs, _ := s.Channels(ctx, e1.ID); len(cs) != 2 {
		t.Fatalf("e1 has %d channels", len(cs))
	}
	for _, tc := range []struct {
		ref, kind, uid string
		want           string
	}{
		{e1.ID, "device", "", first},
		{e1.ID, "user", "U1", victim.ID},
		{e2.ID, "device", "", other.ID},
		{e2.ID, "user", "U1", ""}, // e1's user id, asked for by e2
		{e1.ID, "user", "U2", ""},
		{e1.ID, "device", "U1", ""},
		{"nope", "device", "", ""},
	} {
		got, err := s.Channel(ctx, tc.ref, tc.kind, tc.uid)
		if tc.want == "" {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Channel(%s, %s, %s) = %+v, %v; want ErrNotFound", tc.ref, tc.kind, tc.uid, got, err)
			}
			continue
		}
		if err != nil || got.ID != tc.want || got.DeviceID != tc.ref || got.EnrollmentUserID != tc.uid {
			t.Errorf("Channel(%s, %s, %s) = %+v, %v; want %s", tc.ref, tc.kind, tc.uid, got, err, tc.want)
		}
	}
	if got, _ := s.Channel(ctx, e1.ID, "device", ""); got.PushMagic != "m2" {
		t.Fatalf("update not stored: %+v", got)
	}

	// The victim's queue is out of reach of the other enrollment.
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: id("cmd"), RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: t0}, []string{victim.ID}); err != nil {
		t.Fatal(err)
	}
	if q, err := s.NextCommand(ctx, e2.ID, victim.ID, true, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another enrollment got the victim's command: %+v %v", q, err)
	}
	q, err := s.NextCommand(ctx, e1.ID, victim.ID, true, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.RecordResult(ctx, e2.ID, victim.ID, q.UUID, mdm.Acknowledged, []byte("forged"), t0, nil)
	wantErr(t, err, store.ErrNotFound)
	if list, _ := s.QueuedCommands(ctx, victim.ID, 1); list[0].Status != store.QueueSent || list[0].Result != nil {
		t.Fatalf("a forged result was recorded: %+v", list[0])
	}
	if err := s.TouchChannel(ctx, e2.ID, victim.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Channel(ctx, e1.ID, "user", "U1"); got.LastSeenAt.Equal(t0.Add(time.Hour)) {
		t.Fatal("another enrollment touched the victim's channel")
	}
	if got, _ := s.Enrollment(ctx, e2.ID); got.LastSeenAt.Equal(t0.Add(time.Hour)) {
		t.Fatal("touching a channel that is not the enrollment's counted as seen")
	}
	if _, err := s.RecordResult(ctx, e1.ID, victim.ID, q.UUID, mdm.Acknowledged, []byte("ok"), t0, nil); err != nil {
		t.Fatal(err)
	}
}

// The store itself refuses channel identities that could collide: a device
// channel with an EnrollmentUserID, a user channel without one, an unknown
// kind, and a second row for the same owner.
func testChannelConstraint(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, e2 := enrolled(t, s)
	t0 := now()
	for _, c := range []store.Channel{
		{Kind: "device", EnrollmentUserID: "U1"},
		{Kind: "user"},
		{Kind: "other"},
		{Kind: ""},
	} {
		c.ID, c.DeviceID, c.CreatedAt, c.UpdatedAt = id("bad"), e1.ID, t0, t0
		if err := s.PutChannel(ctx, &c); err == nil {
			t.Errorf("stored kind %q with EnrollmentUserID %q", c.Kind, c.EnrollmentUserID)
		}
	}
	if cs, _ := s.Channels(ctx, e1.ID); len(cs) != 0 {
		t.Fatalf("refused channels stored: %+v", cs)
	}
	// An id already used by another enrollment's channel is not taken over.
	mine := &store.Channel{ID: "SHARED", DeviceID: e1.ID, Kind: "device", PushMagic: "mine", CreatedAt: t0, UpdatedAt: t0}
	if err := s.PutChannel(ctx, mine); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.PutChannel(ctx, &store.Channel{ID: "SHARED", DeviceID: e2.ID, Kind: "device", PushMagic: "evil", CreatedAt: t0, UpdatedAt: t0}), store.ErrConflict)
	if got, _ := s.Channel(ctx, e1.ID, "device", ""); got.PushMagic != "mine" {
		t.Fatalf("taken over: %+v", got)
	}
	if _, err := s.Channel(ctx, e2.ID, "device", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a refused channel was stored")
	}
}

// Ending an enrollment is terminal and revokes what it was given.
func testEndEnrollment(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := mustEnrollment(t, s, tn.ID, u.ID, []byte("c-used"), now().Add(time.Hour))
	keep := mustEnrollment(t, s, tn.ID, u.ID, []byte("c-keep"), now().Add(time.Hour))
	// A profile fetched a second time: its challenge is still unused.
	pending := mustEnrollment(t, s, tn.ID, u.ID, []byte("c-unused"), now().Add(time.Hour))
	t0 := now()
	for i, h := range []string{"tok-bound", "tok-other", "tok-created"} {
		tok := &store.AccessToken{Hash: []byte(h), UserID: u.ID, TenantID: tn.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if i == 1 {
			tok.EnrollmentID = keep.ID
		}
		if err := s.CreateAccessToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.BindAccessToken(ctx, []byte("tok-bound"), e.ID); err != nil {
		t.Fatal(err)
	}
	for i, ref := range []string{e.ID, keep.ID} {
		c := &store.IdentityCert{Serial: fmt.Sprint("e", i), EnrollmentID: ref, SHA256: []byte(fmt.Sprint("fp-e", i)), NotBefore: t0, NotAfter: t0.Add(time.Hour), IssuedAt: t0}
		if err := s.ConsumeSCEPChallenge(ctx, []byte([]string{"c-used", "c-keep"}[i]), t0, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.BindAppleEnrollment(ctx, e.ID, "APPLE-END", store.DeviceInfo{}, t0); err != nil {
		t.Fatal(err)
	}

	t1 := t0.Add(time.Minute)
	if err := s.EndEnrollment(ctx, e.ID, "checked out", t1); err != nil {
		t.Fatal(err)
	}
	if err := s.EndEnrollment(ctx, pending.ID, "unenrolled by test", t1); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Enrollment(ctx, e.ID)
	if got.Status != store.EnrollmentUnenrolled || !got.UnenrolledAt.Equal(t1) || got.AppleEnrollmentID != "APPLE-END" {
		t.Fatalf("ended enrollment %+v", got)
	}
	ic, _ := s.IdentityCert(ctx, "e0")
	if !ic.RevokedAt.Equal(t1) || ic.RevokedReason != "checked out" {
		t.Fatalf("certificate not revoked: %+v", ic)
	}
	if tok, _ := s.AccessToken(ctx, []byte("tok-bound")); !tok.RevokedAt.Equal(t1) {
		t.Fatalf("bound token not revoked: %+v", tok)
	}
	// Others' certificates and tokens stay valid.
	if ic, _ := s.IdentityCert(ctx, "e1"); !ic.RevokedAt.IsZero() {
		t.Fatalf("another enrollment's certificate revoked: %+v", ic)
	}
	if tok, _ := s.AccessToken(ctx, []byte("tok-other")); !tok.RevokedAt.IsZero() {
		t.Fatalf("another enrollment's token revoked: %+v", tok)
	}
	// The pending one's unused challenge is gone: no certificate for it.
	if _, err := s.SCEPChallenge(ctx, []byte("c-unused")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("challenge of an ended enrollment still usable: %v", err)
	}
	// Terminal: no re-enrollment by Authenticate (renewal challenges went
	// with the other unused challenges above).
	wantErr(t, s.BindAppleEnrollment(ctx, e.ID, "APPLE-END", store.DeviceInfo{}, t1), store.ErrConflict)
	if got, _ := s.Enrollment(ctx, e.ID); got.Status != store.EnrollmentUnenrolled {
		t.Fatalf("re-enrolled: %+v", got)
	}
	// Ending again keeps the first time and reason.
	if err := s.EndEnrollment(ctx, e.ID, "again", t1.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Enrollment(ctx, e.ID); !got.UnenrolledAt.Equal(t1) {
		t.Fatalf("second ending moved the time: %v", got.UnenrolledAt)
	}
	if ic, _ := s.IdentityCert(ctx, "e0"); ic.RevokedReason != "checked out" {
		t.Fatalf("second ending changed the reason: %+v", ic)
	}
	wantErr(t, s.EndEnrollment(ctx, "nope", "x", t1), store.ErrNotFound)
}

func pendingFor(tn *store.Tenant, u *store.User, tok string) *store.Enrollment {
	return &store.Enrollment{ID: id("en"), TenantID: tn.ID, UserID: u.ID, TokenHash: []byte(tok), Platform: "macOS", Product: "Mac15,3",
		OSVersion: "15.2", Status: store.EnrollmentPending, CreatedAt: now(), UpdatedAt: now()}
}

// A repeated profile request of one sign-in replaces its pending
// enrollment; once past pending the sign-in cannot enroll again.
func testPendingPerToken(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	t0 := now()
	if err := s.CreateAccessToken(ctx, &store.AccessToken{Hash: []byte("one"), UserID: u.ID, TenantID: tn.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e1 := pendingFor(tn, u, "one")
	replaced, err := s.CreatePendingEnrollment(ctx, e1, &store.SCEPChallenge{Hash: []byte("p1"), ExpiresAt: t0.Add(time.Hour)}, t0)
	if err != nil || replaced {
		t.Fatalf("first: %v %v", replaced, err)
	}
	if tok, _ := s.AccessToken(ctx, []byte("one")); tok.EnrollmentID != e1.ID {
		t.Fatalf("token bound to %q, want %s", tok.EnrollmentID, e1.ID)
	}
	cert := &store.IdentityCert{Serial: "p1", EnrollmentID: e1.ID, SHA256: []byte("fp-p1"), NotBefore: t0, NotAfter: t0.Add(time.Hour), IssuedAt: t0}
	if err := s.ConsumeSCEPChallenge(ctx, []byte("p1"), t0, cert); err != nil {
		t.Fatal(err)
	}
	e2 := pendingFor(tn, u, "one")
	e2.OSVersion = "15.3"
	replaced, err = s.CreatePendingEnrollment(ctx, e2, &store.SCEPChallenge{Hash: []byte("p2"), ExpiresAt: t0.Add(time.Hour)}, t0)
	if err != nil || !replaced || e2.ID != e1.ID {
		t.Fatalf("second: replaced %v, id %s (first %s), %v", replaced, e2.ID, e1.ID, err)
	}
	if all, _ := s.Enrollments(ctx, store.EnrollmentFilter{UserID: u.ID}); len(all) != 1 || all[0].OSVersion != "15.3" {
		t.Fatalf("enrollments %+v", all)
	}
	if _, err := s.SCEPChallenge(ctx, []byte("p1")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the older challenge survived: %v", err)
	}
	if ch, err := s.SCEPChallenge(ctx, []byte("p2")); err != nil || ch.EnrollmentID != e1.ID {
		t.Fatalf("new challenge %+v %v", ch, err)
	}
	if ic, _ := s.IdentityCert(ctx, "p1"); ic.RevokedAt.IsZero() {
		t.Fatal("the certificate of the replaced profile is still valid")
	}
	// Enrolled: the sign-in is used up.
	if err := s.BindAppleEnrollment(ctx, e1.ID, "APPLE-P", store.DeviceInfo{}, t0); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreatePendingEnrollment(ctx, pendingFor(tn, u, "one"), &store.SCEPChallenge{Hash: []byte("p3"), ExpiresAt: t0.Add(time.Hour)}, t0)
	wantErr(t, err, store.ErrConflict)
	if _, err := s.SCEPChallenge(ctx, []byte("p3")); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a refused request stored its challenge")
	}
	if got, _ := s.Enrollment(ctx, e1.ID); got.Status != store.EnrollmentEnrolled {
		t.Fatalf("a refused request changed the enrollment: %+v", got)
	}
	_, err = s.CreatePendingEnrollment(ctx, pendingFor(tn, u, "unknown"), &store.SCEPChallenge{Hash: []byte("p4"), ExpiresAt: t0.Add(time.Hour)}, t0)
	wantErr(t, err, store.ErrNotFound)
}

// Ten profile requests at once with one token leave one pending
// enrollment with one usable challenge (finding 9 of issue 11).
func testPendingRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	t0 := now()
	if err := s.CreateAccessToken(ctx, &store.AccessToken{Hash: []byte("race"), UserID: u.ID, TenantID: tn.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	const n = 10
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			e := pendingFor(tn, u, "race")
			_, errs[i] = s.CreatePendingEnrollment(ctx, e, &store.SCEPChallenge{Hash: []byte(fmt.Sprint("race-", i)), ExpiresAt: t0.Add(time.Hour)}, t0)
			ids[i] = e.ID
		}(i)
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	all, _ := s.Enrollments(ctx, store.EnrollmentFilter{UserID: u.ID})
	if len(all) != 1 {
		t.Fatalf("%d enrollments for one sign-in", len(all))
	}
	usable := 0
	for i := 0; i < n; i++ {
		if ids[i] != all[0].ID {
			t.Errorf("request %d answered with enrollment %s, stored %s", i, ids[i], all[0].ID)
		}
		if ch, err := s.SCEPChallenge(ctx, []byte(fmt.Sprint("race-", i))); err == nil {
			usable++
			if ch.EnrollmentID != all[0].ID {
				t.Errorf("challenge %d for %s", i, ch.EnrollmentID)
			}
		}
	}
	if usable != 1 {
		t.Fatalf("%d usable challenges for one sign-in", usable)
	}
	if tok, _ := s.AccessToken(ctx, []byte("race")); tok.EnrollmentID != all[0].ID {
		t.Fatalf("token bound to %q", tok.EnrollmentID)
	}
}
