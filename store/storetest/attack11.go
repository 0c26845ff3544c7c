package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Session 11 attack on the reconciler's lease (store.ErrClaimLost,
// ApplyReconcile's claim check): a batch is written only by the holder
// that still holds every claim it finishes, compared by the whole name.

func attack11Tests() []namedTest {
	return []namedTest{
		{"Attack11LeaseEdges", testAttack11LeaseEdges},
		{"Attack11ClaimOfDeletedEnrollment", testAttack11ClaimOfDeletedEnrollment},
	}
}

// lease11Fixture is n enrollments with device channels (one user each,
// so that one can be deleted alone), marked dirty at t0.
type lease11Fixture struct {
	ids   []string
	users []string
	p     *store.ConfigProfile
	t0    time.Time
}

func newLease11Fixture(t *testing.T, s store.Store, n int) *lease11Fixture {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	fx := &lease11Fixture{p: mustProfile(t, s, tn.ID, "com.example.wifi"), t0: now()}
	for i := 0; i < n; i++ {
		u := mustUser(t, s, tn.ID, fmt.Sprintf("u%d-%s@a.example", i, id("x")))
		e := enrolledFor(t, s, tn.ID, u.ID)
		if err := s.PutChannel(ctx, &store.Channel{ID: "ch-" + e.ID, DeviceID: e.ID, Kind: "device", CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
		fx.ids, fx.users = append(fx.ids, e.ID), append(fx.users, u.ID)
	}
	if err := s.MarkDirty(ctx, fx.ids, fx.t0, false); err != nil {
		t.Fatal(err)
	}
	return fx
}

// batch is a pass's plan for its claims: one install per enrollment, with
// its item, and every claim finished (not due again).
func (fx *lease11Fixture) batch(holder, tag string, ds []store.DirtyEnrollment) *store.ReconcileBatch {
	b := &store.ReconcileBatch{Holder: holder}
	for _, d := range ds {
		uuid := tag + "-" + d.DeviceID
		b.Commands = append(b.Commands, store.CommandRecord{UUID: uuid, RequestType: "InstallProfile", Payload: []byte("<plist/>"), CreatedAt: fx.t0, CreatedBy: "profiles"})
		b.Queue = append(b.Queue, store.BatchQueueEntry{ChannelID: "ch-" + d.DeviceID, CommandUUID: uuid})
		b.PutItems = append(b.PutItems, store.ProfileItem{DeviceID: d.DeviceID, ProfileID: fx.p.ID, Identifier: fx.p.Identifier, State: "installing",
			Version: 1, Hash: "h", CommandUUID: uuid, Attempts: 1, UpdatedAt: fx.t0})
		b.Finished = append(b.Finished, store.FinishedClaim{Dirty: d})
	}
	return b
}

// queued is the command uuids queued to enrollment id's channel.
func queued(t *testing.T, s store.Store, id string) []string {
	t.Helper()
	qs, err := s.QueuedCommands(context.Background(), "ch-"+id, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, q := range qs {
		got = append(got, q.UUID)
	}
	return got
}

func testAttack11LeaseEdges(t *testing.T, s store.Store) {
	ctx := context.Background()
	fx := newLease11Fixture(t, s, 2)
	const lease = time.Minute
	ds, err := s.ClaimDirty(ctx, "inst/1", fx.t0, lease, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("claim: %+v %v", ds, err)
	}
	// Holder names are compared whole: a prefix, an extension, another
	// case or an empty name holds nothing of inst/1's.
	for _, h := range []string{"inst/10", "inst/", "inst", "Inst/1", "inst/1 ", ""} {
		if err := s.ApplyReconcile(ctx, fx.batch(h, "X", ds)); !errors.Is(err, store.ErrClaimLost) {
			t.Fatalf("holder %q finishing inst/1's claims: %v, want ErrClaimLost", h, err)
		}
	}
	for _, id := range fx.ids {
		if got := queued(t, s, id); len(got) != 0 {
			t.Fatalf("%s: another holder's batch queued %v", id, got)
		}
	}
	// A batch that lists a claim twice is the holder's still: written
	// once, the claim finished.
	b := fx.batch("inst/1", "A", ds)
	b.Finished = append(b.Finished, b.Finished...)
	if err := s.ApplyReconcile(ctx, b); err != nil {
		t.Fatalf("a batch listing its claims twice: %v", err)
	}
	// Finished twice (a retried apply): the claims are gone, so the
	// repeat is a lost claim and writes nothing more.
	again := fx.batch("inst/1", "B", ds)
	if err := s.ApplyReconcile(ctx, again); !errors.Is(err, store.ErrClaimLost) {
		t.Fatalf("the same claims finished twice: %v, want ErrClaimLost", err)
	}
	for _, id := range fx.ids {
		if got := queued(t, s, id); len(got) != 1 || got[0] != "A-"+id {
			t.Fatalf("%s: queued %v, want only A's install", id, got)
		}
	}
	if n, err := s.DirtyCount(ctx, fx.t0.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("left due: %d %v", n, err)
	}
	// A claim of a holder whose name extends another's (inst/10 after
	// inst/1): only inst/10 finishes it.
	if err := s.MarkDirty(ctx, fx.ids[:1], fx.t0, false); err != nil {
		t.Fatal(err)
	}
	ds, err = s.ClaimDirty(ctx, "inst/10", fx.t0, lease, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim: %+v %v", ds, err)
	}
	if err := s.ApplyReconcile(ctx, &store.ReconcileBatch{Holder: "inst/1", Finished: []store.FinishedClaim{{Dirty: ds[0]}}}); !errors.Is(err, store.ErrClaimLost) {
		t.Fatalf("inst/1 finishing inst/10's claim: %v, want ErrClaimLost", err)
	}
	if err := s.ApplyReconcile(ctx, &store.ReconcileBatch{Holder: "inst/10", Finished: []store.FinishedClaim{{Dirty: ds[0]}}}); err != nil {
		t.Fatal(err)
	}
}

// An enrollment deleted (its user deleted) while a pass plans it takes its
// claim with it: the pass's batch is refused as a whole (ErrClaimLost,
// nothing written, not even for the enrollments still there), and those
// are claimed again once the lease has passed and planned once — no claim
// stays stuck, nothing goes twice.
func testAttack11ClaimOfDeletedEnrollment(t *testing.T, s store.Store) {
	ctx := context.Background()
	fx := newLease11Fixture(t, s, 3)
	const lease = time.Minute
	ds, err := s.ClaimDirty(ctx, "inst/1", fx.t0, lease, 10)
	if err != nil || len(ds) != 3 {
		t.Fatalf("claim: %+v %v", ds, err)
	}
	gone := fx.ids[0]
	if err := s.DeleteUser(ctx, fx.users[0], store.Ending{Reason: "test", At: fx.t0}); err != nil {
		t.Fatal(err)
	}
	// The pass planned the living ones and finishes every claim it took.
	var living []store.DirtyEnrollment
	var goneClaim store.FinishedClaim
	for _, d := range ds {
		if d.DeviceID == gone {
			goneClaim = store.FinishedClaim{Dirty: d}
		} else {
			living = append(living, d)
		}
	}
	b := fx.batch("inst/1", "A", living)
	b.Finished = append(b.Finished, goneClaim)
	if err := s.ApplyReconcile(ctx, b); !errors.Is(err, store.ErrClaimLost) {
		t.Fatalf("a batch finishing a deleted enrollment's claim: %v, want ErrClaimLost", err)
	}
	for _, d := range living {
		if got := queued(t, s, d.DeviceID); len(got) != 0 {
			t.Fatalf("%s: the refused batch queued %v", d.DeviceID, got)
		}
	}
	// Within the lease nobody else takes them; after it, the next pass does.
	if again, err := s.ClaimDirty(ctx, "inst/2", fx.t0, lease, 10); err != nil || len(again) != 0 {
		t.Fatalf("claimed within the lease: %+v %v", again, err)
	}
	late := fx.t0.Add(lease + time.Second)
	again, err := s.ClaimDirty(ctx, "inst/2", late, lease, 10)
	if err != nil || len(again) != len(living) {
		t.Fatalf("after the lease: %+v %v, want the %d living enrollments", again, err, len(living))
	}
	if err := s.ApplyReconcile(ctx, fx.batch("inst/2", "B", again)); err != nil {
		t.Fatal(err)
	}
	for _, d := range living {
		if got := queued(t, s, d.DeviceID); len(got) != 1 || got[0] != "B-"+d.DeviceID {
			t.Fatalf("%s: queued %v, want B's install once", d.DeviceID, got)
		}
	}
	if n, err := s.DirtyCount(ctx, late.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("left due: %d %v", n, err)
	}
}
