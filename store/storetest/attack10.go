package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

// Session 10, lane attack: the reconciler's claim with its inputs
// (ClaimReconcile: on SQLite one writer transaction, sharing group
// commits with device results) while devices post results.

func attack10Tests() []namedTest {
	return []namedTest{
		{"ClaimReconcileBesideResults", testClaimReconcileBesideResults},
	}
}

// testClaimReconcileBesideResults: claimers drain a reconciler queue in
// small batches (their inputs read with the claim) while devices answer
// commands on their channels. Every result is recorded as answered
// (Acknowledged in the queue, the next command handed with it), every
// enrollment is claimed exactly once with exactly its own input, and a
// batch abandoned without its ApplyReconcile (a crash between the claim
// and the write) is claimed again once its lease ends, not before.
func testClaimReconcileBesideResults(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	t0 := now()
	const devices = 60
	var ids []string
	chans := map[string]string{}
	for i := 0; i < devices; i++ {
		e := enrolledFor(t, s, tn.ID, u.ID)
		ch := &store.Channel{ID: id("ch"), DeviceID: e.ID, Kind: "device", PushToken: []byte("t"), PushMagic: "m", CreatedAt: t0, UpdatedAt: t0, LastSeenAt: t0}
		if err := s.PutChannel(ctx, ch); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
		chans[e.ID] = ch.ID
	}
	if err := s.MarkDirty(ctx, ids, t0, false); err != nil {
		t.Fatal(err)
	}
	// Commands for the first devices, answered during the claims.
	const answering, perDevice = 6, 5
	cmds := map[string][]string{}
	for _, e := range ids[:answering] {
		for k := 0; k < perDevice; k++ {
			cmd := &store.CommandRecord{UUID: id("CR"), RequestType: "DeviceInformation", Payload: []byte("<plist/>"), CreatedAt: t0, CreatedBy: "test"}
			if err := s.Enqueue(ctx, cmd, []string{chans[e]}); err != nil {
				t.Fatal(err)
			}
			cmds[e] = append(cmds[e], cmd.UUID)
		}
	}
	// An abandoned batch: claimed, never applied.
	lease := time.Minute
	lost, lostIns, err := s.ClaimReconcile(ctx, "crashed", t0, lease, 7)
	if err != nil || len(lost) != 7 || len(lostIns) != 7 {
		t.Fatalf("abandoned claim: %d claims, %d inputs, %v", len(lost), len(lostIns), err)
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprint("h", w)
			for {
				ds, ins, err := s.ClaimReconcile(ctx, holder, t0, lease, 5)
				if err != nil {
					errs <- err
					return
				}
				if len(ds) == 0 {
					return
				}
				if len(ins) != len(ds) {
					errs <- fmt.Errorf("%d claims, %d inputs", len(ds), len(ins))
					return
				}
				byID := map[string]bool{}
				for _, in := range ins {
					byID[in.Enrollment.ID] = true
					if in.Channel == nil || in.Channel.ID != chans[in.Enrollment.ID] {
						errs <- fmt.Errorf("input of %s has channel %+v", in.Enrollment.ID, in.Channel)
						return
					}
				}
				fs := make([]store.FinishedClaim, len(ds))
				mu.Lock()
				for i, d := range ds {
					claimed[d.DeviceID]++
					if !byID[d.DeviceID] {
						mu.Unlock()
						errs <- fmt.Errorf("claim %s without its input", d.DeviceID)
						return
					}
					fs[i] = store.FinishedClaim{Dirty: d}
				}
				mu.Unlock()
				if err := s.ApplyReconcile(ctx, &store.ReconcileBatch{Holder: holder, Finished: fs}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for _, e := range ids[:answering] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q, err := s.NextCommand(ctx, e, chans[e], true, t0)
			for n := 0; err == nil && q != nil; n++ {
				if q.UUID != cmds[e][n] {
					errs <- fmt.Errorf("%s: command %d is %s, want %s", e, n, q.UUID, cmds[e][n])
					return
				}
				_, q, err = s.RecordResultNext(ctx, e, chans[e], q.UUID, mdm.Acknowledged, []byte("<plist/>"), t0, nil, nil)
			}
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, e := range ids[:answering] {
		for _, uuid := range cmds[e] {
			if row := queueRow(t, s, chans[e], uuid); row.Status != mdm.Acknowledged {
				t.Fatalf("%s's command %s ends %s, want Acknowledged", e, uuid, row.Status)
			}
		}
	}
	lostSet := map[string]bool{}
	for _, d := range lost {
		lostSet[d.DeviceID] = true
	}
	for _, e := range ids {
		want := 1
		if lostSet[e] {
			want = 0 // still held by the crashed holder
		}
		if claimed[e] != want {
			t.Fatalf("%s claimed %d times beside the results, want %d", e, claimed[e], want)
		}
	}
	// The crashed batch's claims come back after the lease, not before.
	if ds, _, err := s.ClaimReconcile(ctx, "late", t0.Add(lease-time.Second), lease, 100); err != nil || len(ds) != 0 {
		t.Fatalf("before the lease ends: %+v %v", ds, err)
	}
	ds, ins, err := s.ClaimReconcile(ctx, "late", t0.Add(lease), lease, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, d := range ds {
		got = append(got, d.DeviceID)
	}
	for _, d := range lost {
		want = append(want, d.DeviceID)
	}
	sort.Strings(got)
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) || len(ins) != len(ds) {
		t.Fatalf("after the lease: %v (%d inputs), want the abandoned %v", got, len(ins), want)
	}
}
