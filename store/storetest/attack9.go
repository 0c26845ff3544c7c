package storetest

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Session 9, lane attack: the reconciler queue under contention. On
// PostgreSQL a claim is one autocommitted UPDATE … FOR UPDATE SKIP LOCKED
// and a batch's finish (ApplyReconcile) runs at READ COMMITTED; both rely
// on PostgreSQL re-checking a row's conditions on its newest version
// under its lock. These cases hold when that re-check does what the
// comments say.

func attack9Tests() []namedTest {
	return []namedTest{
		{"ClaimsFinishesAndMarksRace", testClaimsFinishesAndMarksRace},
	}
}

// testClaimsFinishesAndMarksRace runs four holders that claim, hold and
// finish (ApplyReconcile's Finished, as a reconciler pass does) while
// another goroutine marks devices again. No device is ever held by two
// holders at once (two would both plan it: double delivery), and every
// marking that began after a claim returned is followed by another claim
// of the device (a marking while it is held keeps the entry due: no lost
// work).
func testClaimsFinishesAndMarksRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	var ids []string
	for i := 0; i < 40; i++ {
		ids = append(ids, enrolledFor(t, s, tn.ID, u.ID).ID)
	}
	t0 := now()
	var (
		clock     atomic.Int64 // orders markings and claims as the test saw them
		mu        sync.Mutex
		held      = map[string]string{} // device → holder holding it now
		markedAt  = map[string]int64{}  // device → clock before its last marking began
		claimedAt = map[string]int64{}  // device → clock after the last claim that returned it returned
		claims    atomic.Int64
	)
	at := clock.Add(1)
	for _, id := range ids {
		markedAt[id] = at
	}
	if err := s.MarkDirty(ctx, ids, t0, false); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var marker sync.WaitGroup
	marker.Add(1)
	go func() {
		defer marker.Done()
		r := rand.New(rand.NewSource(1))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			pick := []string{ids[r.Intn(len(ids))], ids[r.Intn(len(ids))]}
			at := clock.Add(1)
			mu.Lock()
			for _, id := range pick {
				markedAt[id] = at
			}
			mu.Unlock()
			if err := s.MarkDirty(ctx, pick, t0, false); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// work claims until a claim returns nothing twice in a row (or
	// rounds run out) and finishes every claim with ApplyReconcile.
	work := func(holder string, rounds int, untilEmpty bool) {
		empty := 0
		for i := 0; i < rounds; i++ {
			ds, err := s.ClaimDirty(ctx, holder, t0, time.Hour, 7)
			if err != nil {
				t.Error(err)
				return
			}
			// After the claim returned: a marking that began later is one
			// the claim cannot have seen, so its finish must keep the
			// entry due.
			claimed := clock.Add(1)
			if len(ds) == 0 {
				if empty++; untilEmpty && empty >= 2 {
					return
				}
				time.Sleep(time.Millisecond)
				continue
			}
			empty = 0
			claims.Add(int64(len(ds)))
			mu.Lock()
			for _, d := range ds {
				if other, ok := held[d.DeviceID]; ok {
					mu.Unlock()
					t.Errorf("%s claimed %s while %s held it (double delivery)", holder, d.DeviceID, other)
					return
				}
				held[d.DeviceID] = holder
				claimedAt[d.DeviceID] = claimed
			}
			mu.Unlock()
			time.Sleep(time.Duration(len(ds)) * 100 * time.Microsecond)
			fs := make([]store.FinishedClaim, len(ds))
			mu.Lock()
			for i, d := range ds {
				fs[i] = store.FinishedClaim{Dirty: d}
				// Released before the finish: a claim after the finish
				// commits is legitimate.
				delete(held, d.DeviceID)
			}
			mu.Unlock()
			if err := s.ApplyReconcile(ctx, &store.ReconcileBatch{Holder: holder, Finished: fs}); err != nil {
				t.Error(err)
				return
			}
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			work(fmt.Sprint("h", w), 60, false)
		}(w)
	}
	wg.Wait()
	close(stop)
	marker.Wait()
	if t.Failed() {
		return
	}
	// Drain what the last markings left.
	work("drain", 1000, true)
	if n, err := s.DirtyCount(ctx, t0); err != nil || n != 0 {
		t.Fatalf("left due after the drain: %d %v", n, err)
	}
	for _, id := range ids {
		if claimedAt[id] < markedAt[id] {
			t.Errorf("%s: its last marking began at %d, its last claim at %d: the marking was lost", id, markedAt[id], claimedAt[id])
		}
	}
	t.Logf("%d claims", claims.Load())
}
