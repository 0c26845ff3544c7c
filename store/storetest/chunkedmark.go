package storetest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// MarkChunker is a store that can mark a large change's devices in
// committed chunks (sqlstore.Store.SetMarkChunk: the change marks the
// first n in its own transaction and records the rest; reconciler
// claims mark the next chunk before they claim). The chunked-marking
// contract runs only on such stores.
type MarkChunker interface {
	SetMarkChunk(n int)
}

func chunkedMarkTests() []namedTest {
	return []namedTest{
		{"ChunkedMarkingMarksEachDeviceOnce", testChunkedMarking},
	}
}

// chunkFleet is a tenant with n enrolled devices (one user each, ids in
// creation order) and a profile; it returns the tenant's all-users group,
// the profile and the enrollment ids in creation order.
func chunkFleet(t *testing.T, s store.Store, n int) (*store.Group, *store.ConfigProfile, []string) {
	t.Helper()
	tn := mustTenant(t, s, "Chunks", "chunks.example")
	var ids []string
	for i := 0; i < n; i++ {
		u := mustUser(t, s, tn.ID, fmt.Sprintf("u%02d@chunks.example", i))
		ids = append(ids, enrolledFor(t, s, tn.ID, u.ID).ID)
	}
	all, err := s.AllUsersGroup(context.Background(), tn.ID, now())
	if err != nil {
		t.Fatal(err)
	}
	return all, mustProfile(t, s, tn.ID, "com.example.chunks"), ids
}

// drainClaims claims (limit at a time) and finishes until a claim comes
// back empty, from workers goroutines at once with holders of their own
// (two instances on one database), and returns how often each enrollment
// was claimed.
func drainClaims(t *testing.T, ss []store.Store, at time.Time, limit int) map[string]int {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for w, s := range ss {
		wg.Add(1)
		go func(holder string, s store.Store) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				ds, err := s.ClaimDirty(ctx, holder, at, time.Minute, limit)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				for _, d := range ds {
					mu.Lock()
					got[d.DeviceID]++
					mu.Unlock()
					if err := s.FinishDirty(ctx, d, holder, time.Time{}, false); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}(fmt.Sprint("worker-", w), s)
	}
	wg.Wait()
	return got
}

// A profile assigned to a group of 13 devices with a mark chunk of 4:
// the assignment's own transaction marks 4, and claims from two workers
// mark the rest chunk by chunk. Between chunks one device not yet marked
// is unenrolled and another enrolled. Every device enrolled at the
// assignment and still enrolled is claimed exactly once (each marked
// once: a device marked twice would be claimed again after its finish),
// the unenrolled one never, the new one at most once; a short claim
// means nothing is left to mark.
func testChunkedMarking(t *testing.T, s store.Store) {
	mc, ok := s.(MarkChunker)
	if !ok {
		t.Skip("the store marks every change in its own transaction")
	}
	mc.SetMarkChunk(4)
	ctx := context.Background()
	all, p, ids := chunkFleet(t, s, 13)
	t0 := now()
	if err := s.Assign(ctx, &store.Assignment{ProfileID: p.ID, GroupID: all.ID, CreatedAt: t0}, t0); err != nil {
		t.Fatal(err)
	}
	// The assignment marked its first chunk only (all 13 without chunks).
	if n, err := s.DirtyCount(ctx, t0.Add(time.Hour)); err != nil || n != 4 {
		t.Fatalf("%d devices marked by the assignment itself (%v), want its first chunk of 4", n, err)
	}
	// One claim of 4 marks the second chunk first and claims the first.
	first, err := s.ClaimDirty(ctx, "early", t0.Add(time.Second), time.Minute, 4)
	if err != nil || len(first) != 4 {
		t.Fatalf("first claim: %d %v", len(first), err)
	}
	got := map[string]int{}
	for _, d := range first {
		got[d.DeviceID]++
		if err := s.FinishDirty(ctx, d, "early", time.Time{}, false); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.DirtyCount(ctx, t0.Add(time.Hour)); n != 4 {
		t.Fatalf("%d due after the first claim, want the second chunk's 4", n)
	}
	// Between chunks: the last device (not marked yet) ends, a new one
	// enrolls.
	gone := ids[len(ids)-1]
	if err := s.EndEnrollment(ctx, gone, "test", now()); err != nil {
		t.Fatal(err)
	}
	u := mustUser(t, s, all.TenantID, "late@chunks.example")
	late := enrolledFor(t, s, all.TenantID, u.ID).ID

	for id, n := range drainClaims(t, []store.Store{s, s}, t0.Add(time.Second), 3) {
		got[id] += n
	}
	for _, id := range ids[:len(ids)-1] {
		if got[id] != 1 {
			t.Errorf("device %s claimed %d times, want once", id, got[id])
		}
	}
	if got[gone] != 0 {
		t.Errorf("the device unenrolled before its chunk was claimed %d times", got[gone])
	}
	if got[late] > 1 {
		t.Errorf("the device enrolled between chunks was claimed %d times", got[late])
	}
	if n, _ := s.DirtyCount(ctx, t0.Add(time.Hour)); n != 0 {
		t.Errorf("%d still due", n)
	}
}

// ChunkedMarkingResumes is the restart contract of chunked marking (a
// backend's test calls it with open, which returns a new handle on one
// database, closing the previous one first where the backend allows one
// process only). An instance assigns a profile to 13 devices with a
// mark chunk of 4, claims once (marking the second chunk, claiming the
// first 4) and dies without finishing. A new instance — and, where
// second returns another live handle, a second instance beside it —
// drains after the lease: every device is claimed, each exactly once
// apart from the dead instance's 4, claimed again once their lease ran
// out; nothing stays due.
func ChunkedMarkingResumes(t *testing.T, open func() store.Store, second func() store.Store) {
	ctx := context.Background()
	a := open()
	mc, ok := a.(MarkChunker)
	if !ok {
		t.Skip("the store marks every change in its own transaction")
	}
	mc.SetMarkChunk(4)
	all, p, ids := chunkFleet(t, a, 13)
	t0 := now()
	if err := a.Assign(ctx, &store.Assignment{ProfileID: p.ID, GroupID: all.ID, CreatedAt: t0}, t0); err != nil {
		t.Fatal(err)
	}
	dead, err := a.ClaimDirty(ctx, "dead", t0, time.Minute, 4)
	if err != nil || len(dead) != 4 {
		t.Fatalf("the first instance's claim: %d %v", len(dead), err)
	}
	b := open() // the restart: a has crashed holding its 4 claims
	b.(MarkChunker).SetMarkChunk(4)
	ss := []store.Store{b}
	if second != nil {
		c := second()
		c.(MarkChunker).SetMarkChunk(4)
		ss = append(ss, c)
	}
	got := drainClaims(t, ss, t0.Add(2*time.Minute), 3)
	var ids2 []string
	for id := range got {
		ids2 = append(ids2, id)
	}
	sort.Strings(ids2)
	if len(got) != len(ids) {
		t.Fatalf("%d devices claimed after the restart, want %d: %v", len(got), len(ids), ids2)
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("device %s claimed %d times after the restart, want once", id, got[id])
		}
	}
	if n, _ := b.DirtyCount(ctx, t0.Add(time.Hour)); n != 0 {
		t.Errorf("%d still due", n)
	}
}
