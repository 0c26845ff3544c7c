package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/reconcile"
	"github.com/pomona-mdm/pomona/store"
)

// Session 6, lane attack: contract cases found by attacking the session's
// changes.

func attackTests() []namedTest {
	return []namedTest{
		{"ConcurrentSupersedingAcks", testConcurrentSupersedingAcks},
		{"StaleDeadPushResult", testStaleDeadPushResult},
	}
}

// testConcurrentSupersedingAcks: a profile wave of a profile with a SCEP
// payload — many devices acknowledge their new install at once, each
// acknowledgement revoking the device's previous certificate (and so
// counting a revocation in the one revocation_count row). Every
// acknowledgement is recorded, every old certificate revoked, every
// revocation counted once: none fails because the others hold the
// counter.
func testConcurrentSupersedingAcks(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	p := mustProfile(t, s, tn.ID, "com.example.eaptls")
	t0 := now()
	const n = 32
	enrs := make([]*store.Enrollment, n)
	deliver := func(enr *store.Enrollment, cmd, serial string) {
		t.Helper()
		h := []byte("wave-" + serial)
		b := &store.ReconcileBatch{
			Challenges: []store.NewProfileChallenge{{ProfileID: p.ID, CommandUUID: cmd,
				Challenge: store.SCEPChallenge{Hash: h, DeviceID: enr.ID, ExpiresAt: t0.Add(time.Hour), Kind: store.ChallengeProfile}}},
			PutItems: []store.ProfileItem{{DeviceID: enr.ID, ProfileID: p.ID, Identifier: p.Identifier, State: reconcile.Installing,
				Version: 1, Hash: "h-" + cmd, CommandUUID: cmd, UpdatedAt: t0}},
		}
		if err := s.ApplyReconcile(ctx, b); err != nil {
			t.Fatal(err)
		}
		pc := &store.ProfileCert{Serial: serial, DeviceID: enr.ID, ProfileID: p.ID, Subject: "CN=alice", Email: "alice@a.example",
			SHA256: []byte("h" + serial), NotBefore: t0, NotAfter: t0.Add(365 * 24 * time.Hour), IssuedAt: t0}
		if err := s.ConsumeProfileChallenge(ctx, h, t0, pc); err != nil {
			t.Fatal(err)
		}
	}
	for i := range enrs {
		enrs[i] = enrolledFor(t, s, tn.ID, u.ID)
		deliver(enrs[i], fmt.Sprintf("w1-%d", i), fmt.Sprintf("w1s-%d", i))
		if _, _, err := s.AcknowledgeProfileItem(ctx, enrs[i].ID, fmt.Sprintf("w1-%d", i), "", nil, t0); err != nil {
			t.Fatal(err)
		}
		deliver(enrs[i], fmt.Sprintf("w2-%d", i), fmt.Sprintf("w2s-%d", i))
	}
	n0, err := s.RevokedCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range enrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _, err := s.AcknowledgeProfileItem(ctx, enrs[i].ID, fmt.Sprintf("w2-%d", i), "", nil, t0.Add(time.Minute))
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			t.Log(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent acknowledgements failed", failed, n)
	}
	for i := range enrs {
		if st, _, err := s.CertStatus(ctx, fmt.Sprintf("w1s-%d", i)); err != nil || st != store.CertRevoked {
			t.Fatalf("device %d's old certificate: %s %v", i, st, err)
		}
		its, _ := s.ProfileItems(ctx, enrs[i].ID)
		if len(its) != 1 || !its[0].Acknowledged || its[0].CommandUUID != fmt.Sprintf("w2-%d", i) {
			t.Fatalf("device %d's item: %+v", i, its)
		}
	}
	if got, err := s.RevokedCount(ctx); err != nil || got != n0+n {
		t.Fatalf("revocations counted: %d %v, want %d", got, err, n0+n)
	}
}

// testStaleDeadPushResult: a fan-out's results are written after all its
// pushes (SetPushResults); a device whose old token APNs calls dead may
// have sent a TokenUpdate with a new one meanwhile. The dead answer about
// the old token must not mark the new one dead (the device would not be
// pushed again until its next TokenUpdate); about the token the channel
// still has, it does.
func testStaleDeadPushResult(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, _ := enrolled(t, s)
	put := func(id string, token []byte) {
		t.Helper()
		if err := s.PutChannel(ctx, &store.Channel{ID: id, DeviceID: e1.ID, Kind: "user", EnrollmentUserID: id, PushToken: token, PushMagic: "m",
			CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
	}
	put("SD-renewed", []byte{1})
	put("SD-dead", []byte{1})
	put("SD-live", []byte{1})
	put("SD-renewed", []byte{2}) // its TokenUpdate, while the fan-out ran
	t0 := now().Add(time.Minute)
	if err := s.SetPushResults(ctx, []store.PushResult{
		{ChannelID: "SD-renewed", Dead: true, Token: []byte{1}},
		{ChannelID: "SD-dead", Dead: true, Token: []byte{1}},
		{ChannelID: "SD-live", Token: []byte{1}},
	}, t0); err != nil {
		t.Fatal(err)
	}
	chs, err := s.Channels(ctx, e1.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"SD-renewed": false, "SD-dead": true, "SD-live": false}
	for _, c := range chs {
		if w, ok := want[c.ID]; ok {
			if c.PushDead != w {
				t.Fatalf("%s: dead %v, want %v", c.ID, c.PushDead, w)
			}
			delete(want, c.ID)
		}
	}
	if len(want) != 0 {
		t.Fatalf("channels missing: %v", want)
	}
}
