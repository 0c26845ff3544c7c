package profiles

import (
	"context"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdm/payloads"
	"github.com/pomona-mdm/pomona/store"
)

// supersedingStore replaces the item (version 2, command C2) right after
// Result read it for the old command: a reconciler pass that ran between
// the read and the write.
type supersedingStore struct {
	store.Store
	next *store.ProfileItem
}

func (s *supersedingStore) ProfileItemForCommand(ctx context.Context, enrollmentID, commandUUID string) (*store.ProfileItem, error) {
	it, err := s.Store.ProfileItemForCommand(ctx, enrollmentID, commandUUID)
	if err == nil && s.next != nil {
		if err := s.Store.PutProfileItem(ctx, s.next); err != nil {
			return nil, err
		}
	}
	return it, err
}

// TestResultOfSupersededCommand: a device's Error for an InstallProfile,
// and its Acknowledged or Error for a RemoveProfile, neither overwrite nor
// delete the item a reconciler pass put between Result's read and its
// write (profiles.Job.Result read the item, then wrote it
// unconditionally).
func TestResultOfSupersededCommand(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	st, tn := testStore(t, now)
	u := &store.User{ID: "us_1", TenantID: tn.ID, Email: "u@example.com", Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	e := &store.Enrollment{ID: "en_1", TenantID: tn.ID, UserID: u.ID, TokenHash: []byte{1}, Platform: "iOS", OSVersion: "18.2",
		Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateEnrollment(ctx, e, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.BindAppleEnrollment(ctx, e.ID, "APPLE-1", store.DeviceInfo{OSVersion: "18.2"}, now); err != nil {
		t.Fatal(err)
	}
	enr, err := st.Enrollment(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	svc := &app.Profiles{Store: st, Rules: payloads.Default(), Now: time.Now}
	p, err := svc.Upload(ctx, app.ProfileUpload{TenantID: tn.ID, Content: []byte(static), Platforms: []string{"iOS"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ requestType, status, state string }{
		{"InstallProfile", "Error", "installing"},
		{"RemoveProfile", "Acknowledged", "removing"},
		{"RemoveProfile", "Error", "removing"},
	} {
		t.Run(tc.requestType+" "+tc.status, func(t *testing.T) {
			old := &store.ProfileItem{DeviceID: e.ID, ProfileID: p.ID, Identifier: p.Identifier, State: tc.state, Version: 1, Hash: "h1",
				CommandUUID: "C1-" + tc.requestType + tc.status, UpdatedAt: now}
			if err := st.PutProfileItem(ctx, old); err != nil {
				t.Fatal(err)
			}
			next := *old
			next.Version, next.Hash, next.CommandUUID, next.State = 2, "h2", "C2-"+tc.requestType+tc.status, "installing"
			ss := &supersedingStore{Store: st, next: &next}
			j := job(ss, "A")
			raw := `<plist version="1.0"><dict><key>CommandUUID</key><string>` + old.CommandUUID + `</string><key>Status</key><string>` +
				tc.status + `</string><key>EnrollmentID</key><string>x</string>` +
				`<key>ErrorChain</key><array><dict><key>ErrorCode</key><integer>4001</integer><key>ErrorDomain</key><string>MCProfileErrorDomain</string></dict></array></dict></plist>`
			res, err := mdm.DecodeResult([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			j.Result(ctx, enr, "ch_1", tc.requestType, res)
			its, err := st.ProfileItems(ctx, e.ID)
			if err != nil || len(its) != 1 {
				t.Fatalf("the newer item is gone: %+v %v", its, err)
			}
			if it := its[0]; it.CommandUUID != next.CommandUUID || it.Version != 2 || it.State != "installing" || it.Error != "" || it.Acknowledged {
				t.Fatalf("the newer item was overwritten: %+v", it)
			}
		})
	}
}
