package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

func profileTests() []namedTest {
	return []namedTest{
		{"Groups", testGroups},
		{"ProfilesAndVersions", testProfilesAndVersions},
		{"AssignmentsMarkDevices", testAssignmentsMarkDevices},
		{"ReconcileQueueClaims", testReconcileQueueClaims},
		{"ProfileItemsAndStatus", testProfileItems},
		{"ProfileCertificates", testProfileCerts},
		{"ReconcileBatchInputs", testReconcileInputs},
		{"ClaimReconcile", testClaimReconcile},
		{"ReconcileBatchApply", testApplyReconcile},
		{"TemplateCommandVars", testTemplateCommandVars},
		{"ProfileResults", testProfileResults},
		{"ResultAcknowledgesProfile", testResultAcknowledgesProfile},
		{"ConcurrentProfileAnswers", testConcurrentProfileAnswers},
		{"ProfileItemWritesForCommand", testProfileItemWritesForCommand},
		{"DeletedEnrollmentsLeaveNoQueue", testDeletedEnrollmentsLeaveNoQueue},
	}
}

// enrolledFor makes an enrollment of user that authenticated (status enrolled).
func enrolledFor(t *testing.T, s store.Store, tenantID, userID string) *store.Enrollment {
	t.Helper()
	e := mustEnrollment(t, s, tenantID, userID, nil, time.Time{})
	if err := s.BindAppleEnrollment(context.Background(), e.ID, "apple-"+e.ID, store.DeviceInfo{}, now()); err != nil {
		t.Fatal(err)
	}
	return e
}

func mustProfile(t *testing.T, s store.Store, tenantID, identifier string) *store.ConfigProfile {
	t.Helper()
	p := &store.ConfigProfile{ID: id("pr"), TenantID: tenantID, Identifier: identifier, Name: identifier, Platforms: []string{"iOS", "macOS"},
		PayloadTypes: []string{"com.apple.wifi.managed"}, CreatedAt: now(), UpdatedAt: now()}
	v := &store.ProfileVersion{Plist: []byte("<plist>" + identifier + "</plist>"), Hash: "h1-" + identifier, CreatedAt: now()}
	if err := s.CreateProfile(context.Background(), p, v); err != nil {
		t.Fatal(err)
	}
	return p
}

// claimAll claims every due enrollment and finishes the claims.
func claimAll(t *testing.T, s store.Store, at time.Time) []string {
	t.Helper()
	ctx := context.Background()
	ds, err := s.ClaimDirty(ctx, "h", at, time.Minute, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, d.DeviceID)
		if err := s.FinishDirty(ctx, d, "h", time.Time{}, false); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(out)
	return out
}

func testGroups(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	other := mustTenant(t, s, "B", "b.example")
	alice := mustUser(t, s, tn.ID, "alice@a.example")
	bob := mustUser(t, s, tn.ID, "bob@a.example")
	olga := mustUser(t, s, other.ID, "olga@b.example")

	g := &store.Group{ID: id("gr"), TenantID: tn.ID, Name: "Sales", CreatedAt: now(), UpdatedAt: now()}
	if err := s.CreateGroup(ctx, g); err != nil || g.Source != store.GroupStatic {
		t.Fatal(err, g.Source)
	}
	wantErr(t, s.CreateGroup(ctx, &store.Group{ID: id("gr"), TenantID: tn.ID, Name: "Sales", CreatedAt: now(), UpdatedAt: now()}), store.ErrConflict)
	wantErr(t, s.CreateGroup(ctx, &store.Group{ID: id("gr"), TenantID: "nope", Name: "X", CreatedAt: now(), UpdatedAt: now()}), store.ErrNotFound)
	if err := s.CreateGroup(ctx, &store.Group{ID: id("gr"), TenantID: other.ID, Name: "Sales", CreatedAt: now(), UpdatedAt: now()}); err != nil {
		t.Fatalf("the same name in another tenant: %v", err)
	}

	all, err := s.AllUsersGroup(ctx, tn.ID, now())
	if err != nil || all.Source != store.GroupAllUsers || all.Members != 2 || all.Name != store.AllUsersName {
		t.Fatalf("all users: %+v %v", all, err)
	}
	if again, err := s.AllUsersGroup(ctx, tn.ID, now()); err != nil || again.ID != all.ID {
		t.Fatalf("all users twice: %+v %v", again, err)
	}
	if _, err := s.AddGroupMembers(ctx, all.ID, []string{alice.ID}, now()); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("members of the all-users group: %v", err)
	}

	// Another tenant's user: nothing is added.
	if _, err := s.AddGroupMembers(ctx, g.ID, []string{alice.ID, olga.ID}, now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-tenant member: %v", err)
	}
	if got, _ := s.Group(ctx, g.ID); got.Members != 0 {
		t.Fatalf("half-written: %d members", got.Members)
	}
	if n, err := s.AddGroupMembers(ctx, g.ID, []string{alice.ID, bob.ID}, now()); err != nil || n != 2 {
		t.Fatal(n, err)
	}
	if n, err := s.AddGroupMembers(ctx, g.ID, []string{alice.ID}, now()); err != nil || n != 0 {
		t.Fatalf("again: %d %v", n, err)
	}
	ms, err := s.GroupMembers(ctx, g.ID, "", 1)
	if err != nil || len(ms) != 1 || ms[0].ID != alice.ID {
		t.Fatalf("members page 1: %+v %v", ms, err)
	}
	if ms, _ = s.GroupMembers(ctx, g.ID, ms[0].Email, 10); len(ms) != 1 || ms[0].ID != bob.ID {
		t.Fatalf("members page 2: %+v", ms)
	}
	if ms, _ = s.GroupMembers(ctx, all.ID, "", 10); len(ms) != 2 {
		t.Fatalf("all-users members: %+v", ms)
	}
	if gs, err := s.UserGroups(ctx, alice.ID); err != nil || len(gs) != 1 || gs[0].ID != g.ID {
		t.Fatalf("user groups: %+v %v", gs, err)
	}
	wantErr(t, s.RemoveGroupMember(ctx, g.ID, olga.ID, now()), store.ErrNotFound)
	if err := s.RemoveGroupMember(ctx, g.ID, bob.ID, now()); err != nil {
		t.Fatal(err)
	}
	if r, err := s.RenameGroup(ctx, g.ID, "Field sales", now()); err != nil || r.Name != "Field sales" || r.Members != 1 {
		t.Fatalf("rename: %+v %v", r, err)
	}
	if _, err := s.RenameGroup(ctx, g.ID, store.AllUsersName, now()); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rename onto a taken name: %v", err)
	}
	gs, err := s.Groups(ctx, tn.ID)
	if err != nil || len(gs) != 2 || gs[0].ID != all.ID || gs[1].ID != g.ID {
		t.Fatalf("groups: %+v %v", gs, err)
	}
	if err := s.DeleteGroup(ctx, g.ID, now()); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.DeleteGroup(ctx, g.ID, now()), store.ErrNotFound)
	if _, err := s.Group(ctx, g.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
}

func testProfilesAndVersions(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	other := mustTenant(t, s, "B", "b.example")
	p := mustProfile(t, s, tn.ID, "com.example.wifi")
	if p.Version != 1 || p.Hash != "h1-com.example.wifi" {
		t.Fatalf("%+v", p)
	}
	dup := &store.ConfigProfile{ID: id("pr"), TenantID: tn.ID, Identifier: "com.example.wifi", Name: "x", CreatedAt: now(), UpdatedAt: now()}
	wantErr(t, s.CreateProfile(ctx, dup, &store.ProfileVersion{Plist: []byte("x"), Hash: "x", CreatedAt: now()}), store.ErrConflict)
	if _, err := s.ConfigProfile(ctx, dup.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a refused profile was stored")
	}
	mustProfile(t, s, other.ID, "com.example.wifi") // another tenant: fine

	v2 := &store.ProfileVersion{ProfileID: p.ID, Plist: []byte("<plist>v2</plist>"), Hash: "h2", Signed: true, CreatedAt: now()}
	got, err := s.AddProfileVersion(ctx, v2)
	if err != nil || got.Version != 2 || got.Hash != "h2" || v2.Version != 2 {
		t.Fatalf("v2: %+v %v", got, err)
	}
	if _, err := s.AddProfileVersion(ctx, &store.ProfileVersion{ProfileID: "nope", Plist: []byte("x"), Hash: "x", CreatedAt: now()}); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	vs, err := s.ProfileVersions(ctx, p.ID)
	if err != nil || len(vs) != 2 || vs[0].Version != 2 || string(vs[0].Plist) != "<plist>v2</plist>" || !vs[0].Signed || vs[1].Hash != "h1-com.example.wifi" {
		t.Fatalf("versions: %+v %v", vs, err)
	}
	ps, err := s.ConfigProfiles(ctx, tn.ID)
	if err != nil || len(ps) != 1 || ps[0].ID != p.ID || len(ps[0].Platforms) != 2 || ps[0].PayloadTypes[0] != "com.apple.wifi.managed" {
		t.Fatalf("list: %+v %v", ps, err)
	}
}

// Every change marks exactly the enrolled devices it concerns.
func testAssignmentsMarkDevices(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	other := mustTenant(t, s, "B", "b.example")
	alice := mustUser(t, s, tn.ID, "alice@a.example")
	bob := mustUser(t, s, tn.ID, "bob@a.example")
	olga := mustUser(t, s, other.ID, "olga@b.example")
	ea := enrolledFor(t, s, tn.ID, alice.ID)
	mustEnrollment(t, s, tn.ID, alice.ID, nil, time.Time{}) // pending: never marked
	eb := enrolledFor(t, s, tn.ID, bob.ID)
	enrolledFor(t, s, other.ID, olga.ID)
	claimAll(t, s, now())

	g := &store.Group{ID: id("gr"), TenantID: tn.ID, Name: "Sales", CreatedAt: now(), UpdatedAt: now()}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddGroupMembers(ctx, g.ID, []string{alice.ID}, now()); err != nil {
		t.Fatal(err)
	}
	if got := claimAll(t, s, now()); fmt.Sprint(got) != fmt.Sprint([]string{ea.ID}) {
		t.Fatalf("membership marks %v", got)
	}
	p := mustProfile(t, s, tn.ID, "com.example.wifi")
	op := mustProfile(t, s, other.ID, "com.other.wifi")
	if err := s.Assign(ctx, &store.Assignment{ProfileID: op.ID, GroupID: g.ID, CreatedAt: now()}, now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-tenant assignment: %v", err)
	}
	if err := s.Assign(ctx, &store.Assignment{ProfileID: p.ID, GroupID: g.ID, CreatedAt: now()}, now()); err != nil {
		t.Fatal(err)
	}
	if got := claimAll(t, s, now()); fmt.Sprint(got) != fmt.Sprint([]string{ea.ID}) {
		t.Fatalf("assignment marks %v", got)
	}
	cs, err := s.CandidateProfiles(ctx, ea.ID)
	if err != nil || len(cs) != 1 || cs[0].ProfileID != p.ID || !cs[0].Included || cs[0].Excluded || string(cs[0].Plist) != "<plist>com.example.wifi</plist>" {
		t.Fatalf("candidates: %+v %v", cs, err)
	}
	if cs, _ := s.CandidateProfiles(ctx, eb.ID); len(cs) != 0 {
		t.Fatalf("bob's candidates: %+v", cs)
	}

	// All users + an exclusion.
	all, _ := s.AllUsersGroup(ctx, tn.ID, now())
	if err := s.Assign(ctx, &store.Assignment{ProfileID: p.ID, GroupID: all.ID, CreatedAt: now()}, now()); err != nil {
		t.Fatal(err)
	}
	if got := claimAll(t, s, now()); len(got) != 2 {
		t.Fatalf("all-users assignment marks %v", got)
	}
	if err := s.Assign(ctx, &store.Assignment{ProfileID: p.ID, GroupID: g.ID, Exclude: true, CreatedAt: now()}, now()); err != nil {
		t.Fatal(err)
	}
	claimAll(t, s, now())
	if cs, _ := s.CandidateProfiles(ctx, ea.ID); len(cs) != 1 || !cs[0].Included || !cs[0].Excluded {
		t.Fatalf("excluded: %+v", cs)
	}
	if cs, _ := s.CandidateProfiles(ctx, eb.ID); len(cs) != 1 || !cs[0].Included || cs[0].Excluded {
		t.Fatalf("bob via all users: %+v", cs)
	}
	as, err := s.Assignments(ctx, p.ID)
	if err != nil || len(as) != 2 {
		t.Fatalf("assignments: %+v %v", as, err)
	}

	// A new version marks every device of the profile's groups.
	if _, err := s.AddProfileVersion(ctx, &store.ProfileVersion{ProfileID: p.ID, Plist: []byte("v2"), Hash: "h2", CreatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	if got := claimAll(t, s, now()); len(got) != 2 {
		t.Fatalf("version marks %v", got)
	}
	if err := s.Unassign(ctx, p.ID, all.ID, now()); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.Unassign(ctx, p.ID, all.ID, now()), store.ErrNotFound)
	if got := claimAll(t, s, now()); len(got) != 2 {
		t.Fatalf("unassignment marks %v", got)
	}
	if err := s.DeleteGroup(ctx, g.ID, now()); err != nil {
		t.Fatal(err)
	}
	if got := claimAll(t, s, now()); fmt.Sprint(got) != fmt.Sprint([]string{ea.ID}) {
		t.Fatalf("group deletion marks %v", got)
	}
	if as, _ := s.Assignments(ctx, p.ID); len(as) != 0 {
		t.Fatalf("assignments left: %+v", as)
	}
}

func testReconcileQueueClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	var ids []string
	for i := 0; i < 20; i++ {
		ids = append(ids, enrolledFor(t, s, tn.ID, u.ID).ID)
	}
	t0 := now()
	// Equal dues come by enrollment id (ClaimDirty's order), whatever the
	// order they were marked in.
	{
		rest := append([]string(nil), ids[1:]...)
		for i, j := 0, len(rest)-1; i < j; i, j = i+1, j-1 {
			rest[i], rest[j] = rest[j], rest[i]
		}
		for _, id := range rest {
			if err := s.MarkDirty(ctx, []string{id}, t0.Add(-time.Minute), false); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.ClaimDirty(ctx, "C", t0, time.Minute, 5)
		if err != nil {
			t.Fatal(err)
		}
		sorted := append([]string(nil), ids[1:]...)
		sort.Strings(sorted)
		if len(got) != 5 {
			t.Fatalf("claimed %d of 5", len(got))
		}
		for i, d := range got {
			if d.DeviceID != sorted[i] {
				t.Fatalf("claim %d: %s, want %s (enrollment id order)", i, d.DeviceID, sorted[i])
			}
		}
		// Back to as before: the rest is not part of what follows.
		for _, d := range got {
			if err := s.FinishDirty(ctx, d, "C", time.Time{}, false); err != nil {
				t.Fatal(err)
			}
		}
		rest2, _ := s.ClaimDirty(ctx, "C", t0, time.Minute, 100)
		for _, d := range rest2 {
			if err := s.FinishDirty(ctx, d, "C", time.Time{}, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.MarkDirty(ctx, ids[:1], t0.Add(time.Hour), true); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.DirtyCount(ctx, t0); n != 0 {
		t.Fatalf("not due yet: %d", n)
	}
	// An earlier due stands.
	if err := s.MarkDirty(ctx, ids[:1], t0, false); err != nil {
		t.Fatal(err)
	}
	a, err := s.ClaimDirty(ctx, "A", t0, time.Minute, 10)
	if err != nil || len(a) != 1 || a[0].DeviceID != ids[0] || !a[0].Verify {
		t.Fatalf("claim: %+v %v", a, err)
	}
	if b, _ := s.ClaimDirty(ctx, "B", t0, time.Minute, 10); len(b) != 0 {
		t.Fatalf("claimed twice: %+v", b)
	}
	// Marked while claimed: the entry stays due after the finish.
	s.MarkDirty(ctx, ids[:1], t0, false)
	if err := s.FinishDirty(ctx, a[0], "A", time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	a, _ = s.ClaimDirty(ctx, "A", t0, time.Minute, 10)
	if len(a) != 1 {
		t.Fatalf("a marking during the claim was lost: %+v", a)
	}
	// Rescheduled for a verification.
	if err := s.FinishDirty(ctx, a[0], "A", t0.Add(24*time.Hour), true); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.ClaimDirty(ctx, "A", t0, time.Minute, 10); len(a) != 0 {
		t.Fatalf("rescheduled entry claimed early: %+v", a)
	}
	if a, _ := s.ClaimDirty(ctx, "A", t0.Add(24*time.Hour), time.Minute, 10); len(a) != 1 || !a[0].Verify {
		t.Fatalf("verification: %+v", a)
	} else if err := s.FinishDirty(ctx, a[0], "A", time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	// An expired claim can be taken over; the old holder's finish is ignored.
	s.MarkDirty(ctx, ids[:1], t0, false)
	old, _ := s.ClaimDirty(ctx, "A", t0, time.Minute, 10)
	taken, _ := s.ClaimDirty(ctx, "B", t0.Add(2*time.Minute), time.Minute, 10)
	if len(old) != 1 || len(taken) != 1 {
		t.Fatalf("takeover: %+v %+v", old, taken)
	}
	s.FinishDirty(ctx, old[0], "A", time.Time{}, false)
	if n, _ := s.DirtyCount(ctx, t0); n != 1 {
		t.Fatal("the old holder finished another's claim")
	}
	s.FinishDirty(ctx, taken[0], "B", time.Time{}, false)

	// Concurrent claimers never get one enrollment twice.
	if err := s.MarkDirty(ctx, ids, t0, false); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				ds, err := s.ClaimDirty(ctx, fmt.Sprint("w", w), t0, time.Hour, 3)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.DeviceID]++
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if len(seen) != len(ids) {
		t.Fatalf("claimed %d of %d", len(seen), len(ids))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s claimed %d times", id, n)
		}
	}
}

func testProfileItems(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	p := mustProfile(t, s, tn.ID, "com.example.wifi")
	var es []*store.Enrollment
	for i := 0; i < 3; i++ {
		es = append(es, enrolledFor(t, s, tn.ID, u.ID))
	}
	sort.Slice(es, func(i, j int) bool { return es[i].ID < es[j].ID })
	t0 := now()
	for i, e := range es {
		it := &store.ProfileItem{DeviceID: e.ID, ProfileID: p.ID, Identifier: p.Identifier, State: "installing", Version: 1, Hash: "h",
			CommandUUID: fmt.Sprint("CMD-", i), UpdatedAt: t0}
		if err := s.PutProfileItem(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	failed := &store.ProfileItem{DeviceID: es[2].ID, ProfileID: p.ID, Identifier: p.Identifier, State: "failed", Version: 1, Hash: "h",
		CommandUUID: "CMD-2", Acknowledged: false, Attempts: 2, Error: "MCProfileErrorDomain 1000: no", NextRetry: t0.Add(time.Minute), UpdatedAt: t0}
	if err := s.PutProfileItem(ctx, failed); err != nil {
		t.Fatal(err)
	}
	got, err := s.ProfileItemForCommand(ctx, es[2].ID, "CMD-2")
	if err != nil || got.State != "failed" || got.Attempts != 2 || !got.NextRetry.Equal(t0.Add(time.Minute)) || got.Error != failed.Error {
		t.Fatalf("by command: %+v %v", got, err)
	}
	// Another enrollment's item is not found through this one's command.
	for _, c := range []struct{ enr, cmd string }{{es[2].ID, "nope"}, {es[2].ID, ""}, {es[0].ID, "CMD-2"}} {
		if _, err := s.ProfileItemForCommand(ctx, c.enr, c.cmd); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s %q: %v, want not found", c.enr, c.cmd, err)
		}
	}
	counts, devs, err := s.ProfileStatus(ctx, p.ID, "", "", 2)
	if err != nil || counts["installing"] != 2 || counts["failed"] != 1 || len(devs) != 2 || devs[0].DeviceID != es[0].ID || devs[0].UserEmail != "alice@a.example" {
		t.Fatalf("status: %v %+v %v", counts, devs, err)
	}
	if _, devs, _ = s.ProfileStatus(ctx, p.ID, "", devs[1].DeviceID, 2); len(devs) != 1 || devs[0].DeviceID != es[2].ID {
		t.Fatalf("page 2: %+v", devs)
	}
	if _, devs, _ = s.ProfileStatus(ctx, p.ID, "failed", "", 10); len(devs) != 1 || devs[0].Error != failed.Error {
		t.Fatalf("filtered: %+v", devs)
	}
	items, err := s.ProfileItems(ctx, es[0].ID)
	if err != nil || len(items) != 1 || items[0].CommandUUID != "CMD-0" {
		t.Fatalf("items: %+v %v", items, err)
	}
	if err := s.DeleteProfileItem(ctx, es[0].ID, p.ID); err != nil {
		t.Fatal(err)
	}
	if items, _ := s.ProfileItems(ctx, es[0].ID); len(items) != 0 {
		t.Fatal("not deleted")
	}
}

// A profile's SCEP challenge issues a user certificate once, for its own
// enrollment and profile, and never an MDM identity.
func testProfileCerts(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := enrolledFor(t, s, tn.ID, u.ID)
	other := enrolledFor(t, s, tn.ID, u.ID)
	p := mustProfile(t, s, tn.ID, "com.example.eaptls")
	t0 := now()
	ch := &store.SCEPChallenge{Hash: []byte("pc-1"), DeviceID: e.ID, ExpiresAt: t0.Add(time.Hour)}
	if err := s.AddProfileChallenge(ctx, ch, p.ID); err != nil {
		t.Fatal(err)
	}
	got, pid, err := s.ProfileChallenge(ctx, []byte("pc-1"))
	if err != nil || pid != p.ID || got.DeviceID != e.ID || got.Kind != store.ChallengeProfile {
		t.Fatalf("challenge: %+v %s %v", got, pid, err)
	}
	// It never becomes an MDM identity.
	wantErr(t, s.ConsumeSCEPChallenge(ctx, []byte("pc-1"), t0, &store.IdentityCert{Serial: "x1", DeviceID: e.ID, SHA256: []byte("h"), NotBefore: t0, NotAfter: t0.Add(time.Hour), IssuedAt: t0}), store.ErrConflict)
	if _, err := s.IdentityCert(ctx, "x1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a profile challenge recorded an identity certificate")
	}
	// An enrollment's challenge is not for another enrollment or profile.
	pc := &store.ProfileCert{Serial: "aa01", DeviceID: other.ID, ProfileID: p.ID, Subject: "CN=alice@a.example", Email: "alice@a.example",
		SHA256: []byte("h"), NotBefore: t0, NotAfter: t0.Add(365 * 24 * time.Hour), IssuedAt: t0}
	wantErr(t, s.ConsumeProfileChallenge(ctx, []byte("pc-1"), t0, pc), store.ErrConflict)
	pc.DeviceID = e.ID
	if err := s.ConsumeProfileChallenge(ctx, []byte("pc-1"), t0, pc); err != nil {
		t.Fatal(err)
	}
	pc2 := *pc
	pc2.Serial = "aa02"
	wantErr(t, s.ConsumeProfileChallenge(ctx, []byte("pc-1"), t0, &pc2), store.ErrSCEPChallengeUsed)
	s.AddProfileChallenge(ctx, &store.SCEPChallenge{Hash: []byte("pc-2"), DeviceID: e.ID, ExpiresAt: t0.Add(time.Minute)}, p.ID)
	wantErr(t, s.ConsumeProfileChallenge(ctx, []byte("pc-2"), t0.Add(time.Hour), &pc2), store.ErrExpired)
	if _, _, err := s.ProfileChallenge(ctx, []byte("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	cs, err := s.ProfileCerts(ctx, e.ID)
	if err != nil || len(cs) != 1 || cs[0].Serial != "aa01" || cs[0].Email != "alice@a.example" || !cs[0].RevokedAt.IsZero() {
		t.Fatalf("certs: %+v %v", cs, err)
	}
	wantErr(t, s.RevokeProfileCert(ctx, other.ID, "aa01", "key:k", t0), store.ErrNotFound)
	if err := s.RevokeProfileCert(ctx, e.ID, "aa01", "key:k", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeProfileCert(ctx, e.ID, "aa01", "key:other", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if cs, _ := s.ProfileCerts(ctx, e.ID); !cs[0].RevokedAt.Equal(t0) || cs[0].RevokedBy != "key:k" {
		t.Fatalf("revoked: %+v", cs[0])
	}
}

// ReconcileInputs gives, for a batch, exactly what the per-enrollment
// reads give (CandidateProfiles, ProfileItems, the device channel, the
// user and the tenant); enrollments that do not exist are left out.
func testReconcileInputs(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	other := mustTenant(t, s, "B", "b.example")
	alice := mustUser(t, s, tn.ID, "alice@a.example")
	bob := mustUser(t, s, tn.ID, "bob@a.example")
	carol := mustUser(t, s, tn.ID, "carol@a.example")
	olga := mustUser(t, s, other.ID, "olga@b.example")
	ea, eb, ec, eo := enrolledFor(t, s, tn.ID, alice.ID), enrolledFor(t, s, tn.ID, bob.ID), enrolledFor(t, s, tn.ID, carol.ID), enrolledFor(t, s, other.ID, olga.ID)
	ea2 := enrolledFor(t, s, tn.ID, alice.ID)
	for _, e := range []*store.Enrollment{ea, ec, eo} {
		if err := s.PutChannel(ctx, &store.Channel{ID: "ch-" + e.ID, DeviceID: e.ID, Kind: "device", PushToken: []byte("tok-" + e.ID),
			PushMagic: "magic-" + e.ID, PushDead: e == ec, CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
	}
	// A user channel is not the device channel.
	if err := s.PutChannel(ctx, &store.Channel{ID: "ch-user-" + ea.ID, DeviceID: ea.ID, Kind: "user", EnrollmentUserID: "U1",
		PushToken: []byte("user-tok"), PushMagic: "user-magic", CreatedAt: now(), UpdatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	sales := &store.Group{ID: id("gr"), TenantID: tn.ID, Name: "Sales", CreatedAt: now(), UpdatedAt: now()}
	excl := &store.Group{ID: id("gr"), TenantID: tn.ID, Name: "Contractors", CreatedAt: now(), UpdatedAt: now()}
	for _, g := range []*store.Group{sales, excl} {
		if err := s.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	s.AddGroupMembers(ctx, sales.ID, []string{alice.ID, carol.ID}, now())
	s.AddGroupMembers(ctx, excl.ID, []string{carol.ID}, now())
	all, _ := s.AllUsersGroup(ctx, tn.ID, now())
	oall, _ := s.AllUsersGroup(ctx, other.ID, now())
	p, q, r := mustProfile(t, s, tn.ID, "com.example.wifi"), mustProfile(t, s, tn.ID, "com.example.vpn"), mustProfile(t, s, other.ID, "com.other.mail")
	for _, a := range []store.Assignment{{ProfileID: p.ID, GroupID: all.ID}, {ProfileID: q.ID, GroupID: sales.ID}, {ProfileID: p.ID, GroupID: excl.ID, Exclude: true},
		{ProfileID: r.ID, GroupID: oall.ID}} {
		a.CreatedAt = now()
		if err := s.Assign(ctx, &a, now()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddProfileVersion(ctx, &store.ProfileVersion{ProfileID: q.ID, Plist: []byte("<plist>vpn v2</plist>"), Hash: "h2", CreatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: ea.ID, ProfileID: p.ID, Identifier: p.Identifier, State: "installing", Version: 1,
		Hash: "h", CommandUUID: "C1", UpdatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	// An id given twice is one input with its items once (ea).
	ins, err := s.ReconcileInputs(ctx, []string{ea.ID, eb.ID, ec.ID, eo.ID, ea2.ID, "en-missing", ea.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 5 {
		t.Fatalf("%d inputs", len(ins))
	}
	users := map[string]string{ea.ID: alice.Email, eb.ID: bob.Email, ec.ID: carol.Email, eo.ID: olga.Email, ea2.ID: alice.Email}
	tenants := map[string]string{ea.ID: "A", eb.ID: "A", ec.ID: "A", eo.ID: "B", ea2.ID: "A"}
	for _, in := range ins {
		e := in.Enrollment
		if in.User.Email != users[e.ID] || in.Tenant.Name != tenants[e.ID] || e.Status != store.EnrollmentEnrolled || e.AppleEnrollmentID != "apple-"+e.ID {
			t.Fatalf("input of %s: %+v / %+v / %+v", e.ID, e, in.User, in.Tenant)
		}
		if (in.Channel != nil) != (e.ID == ea.ID || e.ID == ec.ID || e.ID == eo.ID) || in.Channel != nil && (in.Channel.ID != "ch-"+e.ID ||
			in.Channel.DeviceID != e.ID || in.Channel.Kind != "device" || string(in.Channel.PushToken) != "tok-"+e.ID ||
			in.Channel.PushMagic != "magic-"+e.ID || in.Channel.PushDead != (e.ID == ec.ID)) {
			t.Fatalf("channel of %s: %+v", e.ID, in.Channel)
		}
		// The fields planning, the push and the webhooks read, as the
		// single reads give them.
		full, err := s.Enrollment(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		u, err := s.User(ctx, e.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if e.TenantID != full.TenantID || e.UserID != full.UserID || e.Platform != full.Platform || e.OSVersion != full.OSVersion ||
			e.Platform == "" || e.OSVersion == "" || in.Tenant.ID != e.TenantID || in.User.ID != u.ID || in.User.TenantID != u.TenantID ||
			in.User.ManagedAppleID != u.ManagedAppleID || in.User.Name != u.Name {
			t.Fatalf("input of %s: %+v / %+v, want %+v / %+v", e.ID, e, in.User, full, u)
		}
		want, err := s.CandidateProfiles(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%+v", in.Candidates) != fmt.Sprintf("%+v", want) {
			t.Fatalf("candidates of %s:\n got %+v\nwant %+v", e.ID, in.Candidates, want)
		}
		items, _ := s.ProfileItems(ctx, e.ID)
		if fmt.Sprintf("%+v", in.Items) != fmt.Sprintf("%+v", items) {
			t.Fatalf("items of %s: %+v, want %+v", e.ID, in.Items, items)
		}
	}
	// The expectations themselves (carol is excluded from p; q is at v2).
	for _, in := range ins {
		if in.Enrollment.ID == ec.ID {
			if len(in.Candidates) != 2 || !in.Candidates[1].Excluded || in.Candidates[0].ProfileID != q.ID || string(in.Candidates[0].Plist) != "<plist>vpn v2</plist>" {
				t.Fatalf("carol: %+v", in.Candidates)
			}
		}
	}
	if ins, err := s.ReconcileInputs(ctx, []string{"en-missing"}); err != nil || len(ins) != 0 {
		t.Fatalf("missing only: %+v %v", ins, err)
	}
}

// ClaimReconcile claims as ClaimDirty does (order, limit, other holders
// kept off) and gives exactly ReconcileInputs of what it claimed. A claim
// marked again before its batch finished with a next due keeps the due
// and verify it was marked with, and is released.
func testClaimReconcile(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	var ids []string
	for i := 0; i < 3; i++ {
		e := enrolledFor(t, s, tn.ID, u.ID)
		if err := s.PutChannel(ctx, &store.Channel{ID: "ch-" + e.ID, DeviceID: e.ID, Kind: "device", PushToken: []byte("tok-" + e.ID),
			PushMagic: "magic", CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	sort.Strings(ids)
	all, _ := s.AllUsersGroup(ctx, tn.ID, now())
	p := mustProfile(t, s, tn.ID, "com.example.wifi")
	t0 := now().Add(time.Second)
	if err := s.Assign(ctx, &store.Assignment{ProfileID: p.ID, GroupID: all.ID, CreatedAt: now()}, t0); err != nil {
		t.Fatal(err)
	}
	ds, ins, err := s.ClaimReconcile(ctx, "h", t0, time.Minute, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].DeviceID != ids[0] || ds[1].DeviceID != ids[1] {
		t.Fatalf("claims: %+v, want the first two of %v", ds, ids)
	}
	want, err := s.ReconcileInputs(ctx, ids[:2])
	if err != nil {
		t.Fatal(err)
	}
	// Inputs come in no particular order.
	show := func(ins []store.ReconcileInput) string {
		ins = append([]store.ReconcileInput(nil), ins...)
		sort.Slice(ins, func(i, j int) bool { return ins[i].Enrollment.ID < ins[j].Enrollment.ID })
		var b strings.Builder
		for _, in := range ins {
			ch := in.Channel
			in.Channel = nil
			fmt.Fprintf(&b, "%+v channel %+v\n", in, ch)
		}
		return b.String()
	}
	if len(ins) != 2 || show(ins) != show(want) {
		t.Fatalf("inputs:\n got %s\nwant %s", show(ins), show(want))
	}
	for _, in := range ins {
		if len(in.Candidates) != 1 || in.Candidates[0].ProfileID != p.ID || in.Channel == nil || in.Channel.ID != "ch-"+in.Enrollment.ID {
			t.Fatalf("input: %+v", in)
		}
	}
	// Another holder gets the rest, then nothing.
	if ds, ins, err := s.ClaimReconcile(ctx, "B", t0, time.Minute, 10); err != nil || len(ds) != 1 || ds[0].DeviceID != ids[2] ||
		len(ins) != 1 || ins[0].Enrollment.ID != ids[2] {
		t.Fatalf("the rest: %+v %+v %v", ds, ins, err)
	}
	if ds, ins, err := s.ClaimReconcile(ctx, "C", t0, time.Minute, 10); err != nil || len(ds) != 0 || len(ins) != 0 {
		t.Fatalf("nothing due: %+v %+v %v", ds, ins, err)
	}
	// ids[1] marked again (a verification, due at t1) while claimed; the
	// batch finishes both with a next due in a day.
	t1 := t0.Add(time.Hour)
	if err := s.MarkDirty(ctx, ids[1:2], t1, true); err != nil {
		t.Fatal(err)
	}
	day := t0.Add(24 * time.Hour)
	if err := s.ApplyReconcile(ctx, &store.ReconcileBatch{Holder: "h", Finished: []store.FinishedClaim{{Dirty: ds[0], Next: day}, {Dirty: ds[1], Next: day}}}); err != nil {
		t.Fatal(err)
	}
	// Marked again: due as marked (t0, the earlier due, stands) with its
	// verification, and free.
	if got, _ := s.ClaimDirty(ctx, "D", t0, time.Minute, 10); len(got) != 1 || got[0].DeviceID != ids[1] || !got[0].Verify {
		t.Fatalf("marked again: %+v", got)
	}
	// Finished as planned: not due before the day (only the claims whose
	// lease ran out are), then due without a verification.
	if got, _ := s.ClaimDirty(ctx, "D", day.Add(-time.Second), time.Minute, 10); len(got) != 2 || got[0].DeviceID == ids[0] || got[1].DeviceID == ids[0] {
		t.Fatalf("before the day: %+v", got)
	}
	if got, _ := s.ClaimDirty(ctx, "E", day, time.Minute, 10); len(got) != 1 || got[0].DeviceID != ids[0] || got[0].Verify {
		t.Fatalf("finished: %+v", got)
	}
}

// ApplyReconcile writes a batch in one transaction: shared and
// per-device commands queued in each channel's order, challenges, items,
// and the claims finished as FinishDirty would; a failing batch writes
// nothing.
func testApplyReconcile(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	p := mustProfile(t, s, tn.ID, "com.example.wifi")
	var es []*store.Enrollment
	for i := 0; i < 4; i++ {
		e := enrolledFor(t, s, tn.ID, u.ID)
		if err := s.PutChannel(ctx, &store.Channel{ID: "ch-" + e.ID, DeviceID: e.ID, Kind: "device", CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	ids := []string{es[0].ID, es[1].ID, es[2].ID, es[3].ID}
	t0 := now()
	if err := s.MarkDirty(ctx, ids, t0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := s.ClaimDirty(ctx, "h", t0, time.Minute, 10)
	if err != nil || len(ds) != 4 {
		t.Fatalf("claim: %+v %v", ds, err)
	}
	byID := map[string]store.DirtyEnrollment{}
	for _, d := range ds {
		byID[d.DeviceID] = d
	}
	// es[2] is marked again during the claim: it stays due.
	s.MarkDirty(ctx, ids[2:3], t0, false)
	cmd := func(uuid, rt string) store.CommandRecord {
		return store.CommandRecord{UUID: uuid, RequestType: rt, Payload: []byte("<plist>" + uuid + "</plist>"), CreatedAt: t0, CreatedBy: "profiles"}
	}
	shared, own, list := "SHARED-"+es[0].ID, "OWN-"+es[0].ID, "LIST-"+es[0].ID
	item := func(e *store.Enrollment, uuid string) store.ProfileItem {
		return store.ProfileItem{DeviceID: e.ID, ProfileID: p.ID, Identifier: p.Identifier, State: "installing", Version: 1, Hash: "h-" + uuid, CommandUUID: uuid, Attempts: 1, UpdatedAt: t0}
	}
	// A batch that fails (a command that exists already) writes nothing.
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: "TAKEN-" + es[0].ID, RequestType: "DeviceInformation", Payload: []byte("x"), CreatedAt: t0}, nil); err != nil {
		t.Fatal(err)
	}
	bad := &store.ReconcileBatch{Holder: "h", Commands: []store.CommandRecord{cmd(shared, "InstallProfile"), cmd("TAKEN-"+es[0].ID, "ProfileList")},
		Queue:    []store.BatchQueueEntry{{ChannelID: "ch-" + es[0].ID, CommandUUID: shared}},
		PutItems: []store.ProfileItem{item(es[0], shared)}, Finished: []store.FinishedClaim{{Dirty: byID[es[0].ID]}}}
	if err := s.ApplyReconcile(ctx, bad); err == nil {
		t.Fatal("a batch with a taken command UUID was written")
	}
	if its, _ := s.ProfileItems(ctx, es[0].ID); len(its) != 0 {
		t.Fatalf("a failed batch left items: %+v", its)
	}
	if qs, _ := s.QueuedCommands(ctx, "ch-"+es[0].ID, 10); len(qs) != 0 {
		t.Fatalf("a failed batch left commands: %+v", qs)
	}

	b := &store.ReconcileBatch{Holder: "h",
		Commands: []store.CommandRecord{cmd(shared, "InstallProfile"), cmd(own, "InstallProfile"), cmd(list, "ProfileList")},
		Queue: []store.BatchQueueEntry{
			{ChannelID: "ch-" + es[0].ID, CommandUUID: own}, {ChannelID: "ch-" + es[0].ID, CommandUUID: list},
			{ChannelID: "ch-" + es[1].ID, CommandUUID: shared}, {ChannelID: "ch-" + es[1].ID, CommandUUID: list},
			{ChannelID: "ch-" + es[2].ID, CommandUUID: shared},
		},
		Challenges: []store.NewProfileChallenge{{ProfileID: p.ID, Challenge: store.SCEPChallenge{Hash: []byte("bc-" + es[0].ID), DeviceID: es[0].ID, ExpiresAt: t0.Add(time.Hour)}}},
		PutItems:   []store.ProfileItem{item(es[0], own), item(es[1], shared), item(es[2], shared), item(es[3], "OLD")},
		Finished: []store.FinishedClaim{{Dirty: byID[es[0].ID], Next: t0.Add(time.Hour), Verify: true}, {Dirty: byID[es[1].ID]},
			{Dirty: byID[es[2].ID]}, {Dirty: byID[es[3].ID]}},
	}
	if err := s.ApplyReconcile(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Each channel's commands in the batch's order (QueuedCommands lists
	// the newest first); the shared one queued for two channels.
	want := map[string][]string{es[0].ID: {list, own}, es[1].ID: {list, shared}, es[2].ID: {shared}, es[3].ID: nil}
	for _, e := range es {
		qs, err := s.QueuedCommands(ctx, "ch-"+e.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, q := range qs {
			got = append(got, q.UUID)
		}
		if fmt.Sprint(got) != fmt.Sprint(want[e.ID]) {
			t.Fatalf("queue of %s: %v, want %v", e.ID, got, want[e.ID])
		}
	}
	// Items of one shared command are found per enrollment.
	for _, e := range es[1:3] {
		it, err := s.ProfileItemForCommand(ctx, e.ID, shared)
		if err != nil || it.DeviceID != e.ID || it.State != "installing" || it.Hash != "h-"+shared || it.Attempts != 1 {
			t.Fatalf("item of %s by command: %+v %v", e.ID, it, err)
		}
	}
	if _, err := s.ProfileItemForCommand(ctx, es[0].ID, shared); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another enrollment's command: %v", err)
	}
	if _, err := s.ProfileItemForCommand(ctx, es[0].ID, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no command: %v", err)
	}
	if _, pid, err := s.ProfileChallenge(ctx, []byte("bc-"+es[0].ID)); err != nil || pid != p.ID {
		t.Fatalf("challenge: %s %v", pid, err)
	}
	// Claims: es[0] due in an hour for a verification, es[1] and es[3]
	// gone, es[2] (marked again) due now and free to claim.
	if got, _ := s.ClaimDirty(ctx, "other", t0, time.Minute, 10); len(got) != 1 || got[0].DeviceID != es[2].ID {
		t.Fatalf("due after the batch: %+v", got)
	} else if err := s.FinishDirty(ctx, got[0], "other", time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ClaimDirty(ctx, "other", t0.Add(time.Hour), time.Minute, 10); len(got) != 1 || got[0].DeviceID != es[0].ID || !got[0].Verify {
		t.Fatalf("rescheduled: %+v", got)
	}
	// A claim another holder took over is left alone: the old holder's
	// batch is refused (ErrClaimLost, see ApplyReconcileAfterLostClaims).
	s.MarkDirty(ctx, ids[3:4], t0, false)
	old, _ := s.ClaimDirty(ctx, "h", t0, time.Minute, 10)
	taken, _ := s.ClaimDirty(ctx, "B", t0.Add(2*time.Minute), time.Minute, 10)
	if len(old) != 1 || len(taken) != 1 {
		t.Fatalf("takeover: %+v %+v", old, taken)
	}
	if err := s.ApplyReconcile(ctx, &store.ReconcileBatch{Holder: "h", Finished: []store.FinishedClaim{{Dirty: old[0]}}}); !errors.Is(err, store.ErrClaimLost) {
		t.Fatalf("finishing a claim taken over: %v, want ErrClaimLost", err)
	}
	if n, _ := s.DirtyCount(ctx, t0); n != 1 {
		t.Fatal("the old holder finished another's claim")
	}
}

// testProfileItemWritesForCommand: an answer to an older command (read the
// item with C1) neither overwrites nor deletes the item a reconciler pass
// put meanwhile with C2; the same writes for C2 land.
func testProfileItemWritesForCommand(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	e := enrolledFor(t, s, tn.ID, u.ID)
	p := mustProfile(t, s, tn.ID, "com.example.a")
	t0 := now()
	old := store.ProfileItem{DeviceID: e.ID, ProfileID: p.ID, Identifier: p.Identifier, State: "installing", Version: 1, Hash: "h1",
		CommandUUID: id("C1"), UpdatedAt: t0}
	if err := s.PutProfileItem(ctx, &old); err != nil {
		t.Fatal(err)
	}
	// The device's answer to C1 reads the item...
	stale, err := s.ProfileItemForCommand(ctx, e.ID, old.CommandUUID)
	if err != nil {
		t.Fatal(err)
	}
	// ...a reconciler pass replaces it (version 2, command C2)...
	cur := store.ProfileItem{DeviceID: e.ID, ProfileID: p.ID, Identifier: p.Identifier, State: "installing", Version: 2, Hash: "h2",
		CommandUUID: id("C2"), UpdatedAt: t0.Add(time.Second)}
	if err := s.PutProfileItem(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	// ...and the answer's writes, conditional on C1, leave it.
	stale.State, stale.Error, stale.UpdatedAt = "failed", "refused", t0.Add(2*time.Second)
	if err := s.PutProfileItemForCommand(ctx, stale, old.CommandUUID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("put for a superseded command: %v", err)
	}
	if err := s.DeleteProfileItemForCommand(ctx, e.ID, p.ID, old.CommandUUID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete for a superseded command: %v", err)
	}
	if err := s.PutProfileItemForCommand(ctx, stale, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("put for no command: %v", err)
	}
	its, err := s.ProfileItems(ctx, e.ID)
	if err != nil || len(its) != 1 || its[0].CommandUUID != cur.CommandUUID || its[0].Version != 2 || its[0].State != "installing" || its[0].Error != "" {
		t.Fatalf("the newer item was touched: %+v %v", its, err)
	}
	// The same writes for the current command land.
	upd := its[0]
	upd.State, upd.Error, upd.Attempts = "failed", "refused", 1
	if err := s.PutProfileItemForCommand(ctx, &upd, cur.CommandUUID); err != nil {
		t.Fatal(err)
	}
	if its, err := s.ProfileItems(ctx, e.ID); err != nil || len(its) != 1 || its[0].State != "failed" || its[0].Error != "refused" || its[0].Attempts != 1 {
		t.Fatalf("put for the current command: %+v %v", its, err)
	}
	if err := s.DeleteProfileItemForCommand(ctx, e.ID, p.ID, cur.CommandUUID); err != nil {
		t.Fatal(err)
	}
	if its, err := s.ProfileItems(ctx, e.ID); err != nil || len(its) != 0 {
		t.Fatalf("delete for the current command: %+v %v", its, err)
	}
}

// A template command (Render set: a profile rendered per device at
// delivery) is one commands row queued for several channels, each queue
// row with its own Vars: NextCommand and RecordResultNext hand out the
// template, its marker and THAT channel's vars (never another's); a ready
// command around it comes back unchanged, with no marker and no vars.
func testTemplateCommandVars(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn := mustTenant(t, s, "A", "a.example")
	u := mustUser(t, s, tn.ID, "alice@a.example")
	var es []*store.Enrollment
	for i := 0; i < 2; i++ {
		e := enrolledFor(t, s, tn.ID, u.ID)
		if err := s.PutChannel(ctx, &store.Channel{ID: "ch-" + e.ID, DeviceID: e.ID, Kind: "device", CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	t0 := now()
	tmpl := []byte("<plist><string>$EMAIL</string></plist>")
	ready, templ, plain := "READY-"+es[0].ID, "TMPL-"+es[0].ID, "PLAIN-"+es[0].ID
	varsA, varsB := `{"EMAIL":"a@a.example"}`, `{"EMAIL":"b\u003cb@a.example"}`
	b := &store.ReconcileBatch{Holder: "h",
		Commands: []store.CommandRecord{
			{UUID: ready, RequestType: "InstallProfile", Payload: []byte("<plist>ready</plist>"), CreatedAt: t0, CreatedBy: "profiles"},
			{UUID: templ, RequestType: "InstallProfile", Payload: tmpl, CreatedAt: t0, CreatedBy: "profiles", Render: store.RenderProfileSigned},
		},
		Queue: []store.BatchQueueEntry{
			{ChannelID: "ch-" + es[0].ID, CommandUUID: ready},
			{ChannelID: "ch-" + es[0].ID, CommandUUID: templ, Vars: varsA},
			{ChannelID: "ch-" + es[1].ID, CommandUUID: templ, Vars: varsB},
		},
	}
	if err := s.ApplyReconcile(ctx, b); err != nil {
		t.Fatal(err)
	}
	// A ready command queued by Enqueue after them.
	if err := s.Enqueue(ctx, &store.CommandRecord{UUID: plain, RequestType: "ProfileList", Payload: []byte("p"), CreatedAt: t0}, []string{"ch-" + es[0].ID}); err != nil {
		t.Fatal(err)
	}
	q, err := s.NextCommand(ctx, es[0].ID, "ch-"+es[0].ID, true, t0)
	if err != nil || q.UUID != ready || q.Render != store.RenderReady || q.Vars != "" || string(q.Payload) != "<plist>ready</plist>" {
		t.Fatalf("ready command: %+v %v", q, err)
	}
	_, q, err = s.RecordResultNext(ctx, es[0].ID, "ch-"+es[0].ID, ready, "Acknowledged", []byte("ok"), t0, nil, nil)
	if err != nil || q == nil || q.UUID != templ || q.Render != store.RenderProfileSigned || q.Vars != varsA || string(q.Payload) != string(tmpl) {
		t.Fatalf("template after a result: %+v %v", q, err)
	}
	q, err = s.NextCommand(ctx, es[1].ID, "ch-"+es[1].ID, true, t0)
	if err != nil || q.UUID != templ || q.Render != store.RenderProfileSigned || q.Vars != varsB || string(q.Payload) != string(tmpl) {
		t.Fatalf("template on the other channel: %+v %v", q, err)
	}
	_, q, err = s.RecordResultNext(ctx, es[0].ID, "ch-"+es[0].ID, templ, "Acknowledged", []byte("ok"), t0, nil, nil)
	if err != nil || q == nil || q.UUID != plain || q.Render != store.RenderReady || q.Vars != "" || string(q.Payload) != "p" {
		t.Fatalf("ready command after the template: %+v %v", q, err)
	}
	for i, e := range es {
		qs, err := s.QueuedCommands(ctx, "ch-"+e.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			want := ""
			if q.UUID == templ {
				want = []string{varsA, varsB}[i]
			}
			if q.Vars != want {
				t.Fatalf("%s on channel %d: vars %q, want %q", q.UUID, i, q.Vars, want)
			}
		}
	}
}

// testDeletedEnrollmentsLeaveNoQueue: deleting an enrollment — through
// its user (DeleteUser) or its tenant (DeleteTenant with cascade) —
// deletes its reconcile_queue row, claimed or not, and leaves the others.
// SQLite's foreign key cascades; PostgreSQL's queue has no key (migration
// 0035) and a trigger on enrollments does it.
func testDeletedEnrollmentsLeaveNoQueue(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	late := t0.Add(time.Hour)
	a := mustTenant(t, s, "Keep", "keep.example")
	b := mustTenant(t, s, "Gone", "gone.example")
	alice := mustUser(t, s, a.ID, "alice@keep.example")
	bob := mustUser(t, s, a.ID, "bob@keep.example")
	ea := enrolledFor(t, s, a.ID, alice.ID)
	enrolledFor(t, s, a.ID, alice.ID) // alice's second device
	eb := enrolledFor(t, s, a.ID, bob.ID)
	var gone []string
	for i := 0; i < 3; i++ {
		u := mustUser(t, s, b.ID, fmt.Sprintf("u%d@gone.example", i))
		gone = append(gone, enrolledFor(t, s, b.ID, u.ID).ID)
	}
	// Every device queued (a profile assigned to each tenant's users);
	// one of alice's and one of the doomed tenant's rows held by a claim.
	for _, tn := range []*store.Tenant{a, b} {
		all, err := s.AllUsersGroup(ctx, tn.ID, t0)
		if err != nil {
			t.Fatal(err)
		}
		p := mustProfile(t, s, tn.ID, "com.example.queue")
		if err := s.Assign(ctx, &store.Assignment{ProfileID: p.ID, GroupID: all.ID, CreatedAt: t0}, t0); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.DirtyCount(ctx, late); err != nil || n != 6 {
		t.Fatalf("queued before: %d %v", n, err)
	}
	ds, err := s.ClaimDirty(ctx, "h", t0.Add(time.Second), time.Minute, 1000)
	if err != nil || len(ds) != 6 {
		t.Fatalf("claim: %d %v", len(ds), err)
	}
	for _, d := range ds {
		if d.DeviceID == ea.ID || d.DeviceID == gone[0] {
			continue
		}
		if err := s.FinishDirty(ctx, d, "h", late, false); err != nil { // queued again, due later
			t.Fatal(err)
		}
	}
	if err := s.DeleteUser(ctx, alice.ID, store.Ending{Reason: "test", At: t0}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DirtyCount(ctx, late); err != nil || n != 4 {
		t.Fatalf("queued after alice's deletion: %d (want 4: bob's and the other tenant's) %v", n, err)
	}
	if err := s.DeleteTenant(ctx, b.ID, true, store.Ending{Reason: "test", At: t0}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DirtyCount(ctx, late); err != nil || n != 1 {
		t.Fatalf("queued after the tenant's deletion: %d (want 1: bob's) %v", n, err)
	}
	got := claimAll(t, s, late.Add(2*time.Minute))
	if fmt.Sprint(got) != fmt.Sprint([]string{eb.ID}) {
		t.Fatalf("claims after the deletions: %v, want only bob's %s", got, eb.ID)
	}
}
