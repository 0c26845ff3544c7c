package server_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/pomona-mdm/pomona/mdm"
)

// An enrolled device could create any number of channels for its
// enrollment: every TokenUpdate with a new EnrollmentUserID added one
// (rows that grow without bound, each a push target and a command queue),
// an iPhone included, whose user enrollment has no user channel at all.
// A user enrollment has the device channel and, on a Mac, the one user
// channel of the person who enrolled.
func TestDeviceCannotMultiplyChannels(t *testing.T) {
	w := newWorld(t, true)
	e, ctx := w.e, context.Background()
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)

	for _, tc := range []struct {
		family, user, pw string
		userIDs          []string // EnrollmentUserIDs sent in TokenUpdates, in order
		wantOK           []bool   // whether each TokenUpdate is accepted
		wantUser         int      // user channels afterwards
	}{
		{family: "iPhone", user: "alice@example.com", pw: "alice-password",
			userIDs: []string{"U-1", "U-2"}, wantOK: []bool{false, false}, wantUser: 0},
		{family: "Mac", user: "bob@example.com", pw: "bob-password",
			userIDs: []string{"U-1", "U-1", "U-2", "U-3", "U-1"}, wantOK: []bool{true, true, false, false, true}, wantUser: 1},
	} {
		t.Run(tc.family, func(t *testing.T) {
			d := enrolledDevice(t, w, tc.family, tc.user, tc.pw)
			for i, uid := range tc.userIDs {
				d.MDM.EnrollmentUserID = uid
				err := d.TokenUpdate(ctx, true)
				if (err == nil) != tc.wantOK[i] {
					t.Fatalf("TokenUpdate %d with EnrollmentUserID %s: %v (want accepted: %v)", i, uid, err, tc.wantOK[i])
				}
			}
			// And many more, as an attacker would send them.
			for i := 0; i < 50; i++ {
				d.MDM.EnrollmentUserID = fmt.Sprint("FLOOD-", i)
				d.TokenUpdate(ctx, true)
			}
			enr, err := e.Server.Store.EnrollmentByAppleID(ctx, d.MDM.EnrollmentID)
			if err != nil {
				t.Fatal(err)
			}
			chs, err := e.Server.Store.Channels(ctx, enr.ID)
			if err != nil {
				t.Fatal(err)
			}
			users := 0
			for _, ch := range chs {
				if ch.Kind == mdm.UserChannel {
					users++
				}
			}
			if users != tc.wantUser || len(chs) != 1+tc.wantUser {
				t.Fatalf("%d channels, %d of them user channels; want 1 device channel and %d user channel(s)", len(chs), users, tc.wantUser)
			}
			// The device channel still works.
			if _, err := d.Poll(ctx, nil, false); err != nil {
				t.Fatal(err)
			}
		})
	}
}
