package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Session 11: a reconciler pass that outlives its lease. Its claims
// expire, another holder claims the enrollments again and plans them;
// the first pass's batch must then write nothing (store.ErrClaimLost),
// or the devices would get every command twice.

func lease11Tests() []namedTest {
	return []namedTest{
		{"ApplyReconcileAfterLostClaims", testApplyReconcileAfterLostClaims},
	}
}

func testApplyReconcileAfterLostClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	p := mustProfile(t, s, tn.ID, "com.example.wifi")
	var ids []string
	for i := 0; i < 3; i++ {
		e := enrolledFor(t, s, tn.ID, u.ID)
		if err := s.PutChannel(ctx, &store.Channel{ID: "ch-" + e.ID, DeviceID: e.ID, Kind: "device", CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	t0 := now()
	if err := s.MarkDirty(ctx, ids, t0, false); err != nil {
		t.Fatal(err)
	}
	const lease = time.Minute
	// batch is what a pass of holder plans for its claims ds: one install
	// command per enrollment, queued, with its item.
	batch := func(holder, tag string, ds []store.DirtyEnrollment) *store.ReconcileBatch {
		b := &store.ReconcileBatch{Holder: holder}
		for _, d := range ds {
			uuid := tag + "-" + d.DeviceID
			b.Commands = append(b.Commands, store.CommandRecord{UUID: uuid, RequestType: "InstallProfile", Payload: []byte("<plist/>"), CreatedAt: t0, CreatedBy: "profiles"})
			b.Queue = append(b.Queue, store.BatchQueueEntry{ChannelID: "ch-" + d.DeviceID, CommandUUID: uuid})
			b.PutItems = append(b.PutItems, store.ProfileItem{DeviceID: d.DeviceID, ProfileID: p.ID, Identifier: p.Identifier, State: "installing",
				Version: 1, Hash: "h", CommandUUID: uuid, Attempts: 1, UpdatedAt: t0})
			b.Finished = append(b.Finished, store.FinishedClaim{Dirty: d})
		}
		return b
	}
	installs := func(id string) []string {
		t.Helper()
		qs, err := s.QueuedCommands(ctx, "ch-"+id, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, q := range qs {
			got = append(got, q.UUID)
		}
		return got
	}

	// A slow pass: its claims expired, nobody took them. It still holds
	// them, and its batch is written.
	slow, err := s.ClaimDirty(ctx, "slow/1", t0, lease, 1)
	if err != nil || len(slow) != 1 {
		t.Fatalf("claim: %+v %v", slow, err)
	}
	if err := s.ApplyReconcile(ctx, batch("slow/1", "SLOW", slow)); err != nil {
		t.Fatalf("an expired claim nobody took again: %v", err)
	}
	if got := installs(slow[0].DeviceID); len(got) != 1 {
		t.Fatalf("slow pass: queued %v", got)
	}

	// Pass A claims the two others and outlives its lease; pass B claims
	// one of them again (the first due) and finishes it.
	a, err := s.ClaimDirty(ctx, "inst/1", t0, lease, 10)
	if err != nil || len(a) != 2 {
		t.Fatalf("A's claim: %+v %v", a, err)
	}
	late := t0.Add(lease + time.Second)
	b, err := s.ClaimDirty(ctx, "inst/2", late, lease, 1)
	if err != nil || len(b) != 1 {
		t.Fatalf("B's claim after A's lease: %+v %v", b, err)
	}
	if err := s.ApplyReconcile(ctx, batch("inst/2", "B", b)); err != nil {
		t.Fatal(err)
	}
	// A's batch: one claim taken over (and finished), one still A's.
	// Nothing of it is written, not even for the claim A still holds.
	if err := s.ApplyReconcile(ctx, batch("inst/1", "A", a)); !errors.Is(err, store.ErrClaimLost) {
		t.Fatalf("a batch whose claims were taken over: %v, want ErrClaimLost", err)
	}
	for _, d := range a {
		for _, uuid := range installs(d.DeviceID) {
			if uuid == "A-"+d.DeviceID {
				t.Fatalf("%s: the lost batch queued %s", d.DeviceID, uuid)
			}
		}
		if it, err := s.ProfileItemForCommand(ctx, d.DeviceID, "A-"+d.DeviceID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: the lost batch put its item: %+v %v", d.DeviceID, it, err)
		}
	}
	if got := installs(b[0].DeviceID); len(got) != 1 || got[0] != "B-"+b[0].DeviceID {
		t.Fatalf("B's enrollment: queued %v", got)
	}
	// The claim A kept is claimed again once expired and planned once.
	c, err := s.ClaimDirty(ctx, "inst/3", late, lease, 10)
	if err != nil || len(c) != 1 || c[0].DeviceID == b[0].DeviceID {
		t.Fatalf("after the lost batch: %+v %v", c, err)
	}
	if err := s.ApplyReconcile(ctx, batch("inst/3", "C", c)); err != nil {
		t.Fatal(err)
	}
	if got := installs(c[0].DeviceID); len(got) != 1 || got[0] != "C-"+c[0].DeviceID {
		t.Fatalf("planned again: queued %v", got)
	}
	if n, err := s.DirtyCount(ctx, late.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("left due: %d %v", n, err)
	}
}
