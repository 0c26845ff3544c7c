package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/store"
)

// Who a request speaks for (issue 11, findings 4, 5 and 9), tried against
// a running server as an enrolled attacker would.

// enrolledMac enrolls a Mac with its device and user channels.
func enrolledMac(t *testing.T, w *world, user, pw string) *devicesim.Device {
	t.Helper()
	d := enrolledDevice(t, w, "Mac", user, pw)
	if err := d.TokenUpdate(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	return d
}

// Finding 4: an enrolled Mac announcing EnrollmentID
// "<victim's EnrollmentID>/<victim's EnrollmentUserID>" got the victim's
// user-channel commands on its own device channel, and could answer them.
func TestForgedEnrollmentIDCannotReachAnotherChannel(t *testing.T) {
	w := newWorld(t, true)
	e, ctx := w.e, context.Background()
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	victim := enrolledMac(t, w, "bob@example.com", "bob-password")
	a := do(t, e, "POST", "/api/v1/devices/"+victim.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "ProfileList", "channel": "user"}, e.APIKey)
	mustStatus(t, a, 201)
	uuid := a.json(t)["command_uuid"].(string)

	// The attacker enrolls its own Mac (as another user) and announces the
	// victim's ids as its EnrollmentID (both are shown in the API, the
	// console and webhooks).
	attacker := w.device(t, "Mac")
	if _, err := attacker.Enroll(ctx, e.URL, devicesim.Credentials{User: "alice@example.com", Password: "alice-password"}); err != nil {
		t.Fatal(err)
	}
	forged := victim.MDM.EnrollmentID + "/" + victim.MDM.EnrollmentUserID
	attacker.MDM.EnrollmentID = forged
	if err := attacker.Authenticate(ctx); err == nil {
		// Accepted (today's code): then it must still not reach the victim.
		attacker.TokenUpdate(ctx, false)
		if cmd, _ := attacker.Poll(ctx, nil, false); cmd != nil && cmd.CommandUUID == uuid {
			t.Fatal("the attacker's device channel received the victim's user-channel command")
		}
		attacker.Poll(ctx, map[string]any{"Status": "Acknowledged", "CommandUUID": uuid}, false)
	} else if !strings.Contains(err.Error(), "400") {
		t.Fatalf("forged EnrollmentID: %v", err)
	}
	// Nothing the attacker did touched the victim's queue: the command is
	// still there for the victim's user channel.
	list := do(t, e, "GET", "/api/v1/devices/"+victim.MDM.EnrollmentID+"/commands", nil, e.APIKey).json(t)["commands"].([]any)
	if st := list[0].(map[string]any)["status"]; st != "queued" {
		t.Fatalf("the victim's command is %v after the attack", st)
	}
	cmd, err := victim.Poll(ctx, nil, true)
	if err != nil || cmd == nil || cmd.CommandUUID != uuid {
		t.Fatalf("victim's user channel: %+v %v", cmd, err)
	}

	// With its own (well-formed) EnrollmentID, the attacker naming the
	// victim's EnrollmentUserID reaches no channel either.
	attacker.MDM.EnrollmentID = ""
	if err := attacker.Authenticate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := attacker.TokenUpdate(ctx, false); err != nil {
		t.Fatal(err)
	}
	attacker.MDM.EnrollmentUserID = victim.MDM.EnrollmentUserID
	if cmd, err := attacker.Poll(ctx, map[string]any{"Status": "Acknowledged", "CommandUUID": uuid}, true); err == nil || cmd != nil {
		t.Fatalf("the victim's EnrollmentUserID on the attacker's enrollment: %+v %v", cmd, err)
	}
	if _, err := victim.Poll(ctx, victim.Answer(cmd), true); err != nil {
		t.Fatal(err)
	}
	list = do(t, e, "GET", "/api/v1/devices/"+victim.MDM.EnrollmentID+"/commands", nil, e.APIKey).json(t)["commands"].([]any)
	if st := list[0].(map[string]any)["status"]; st != "Acknowledged" {
		t.Fatalf("the victim's own answer: %v", st)
	}
}

// unrecognized reports whether err is the answer that makes a device
// unenroll itself.
func unrecognized(err error) bool {
	return err != nil && strings.Contains(err.Error(), "403") && strings.Contains(err.Error(), "com.apple.unrecognized.device")
}

// Finding 5: after `unenroll --immediately` (or a CheckOut) the device
// re-sent Authenticate signed with its old identity and was enrolled again.
func TestEndedEnrollmentIsTerminal(t *testing.T) {
	w := newWorld(t, true)
	e, ctx := w.e, context.Background()
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	st := e.Server.Store
	for _, tc := range []struct {
		name, family, user, pw string
		end                    func(t *testing.T, d *devicesim.Device)
	}{
		{"unenroll immediately, iPhone", "iPhone", "alice@example.com", "alice-password", func(t *testing.T, d *devicesim.Device) {
			mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/unenroll", map[string]any{"immediately": true}, e.APIKey), 202)
		}},
		{"unenroll immediately, Mac of a disabled user", "Mac", "bob@example.com", "bob-password", func(t *testing.T, d *devicesim.Device) {
			mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/unenroll", map[string]any{"immediately": true}, e.APIKey), 202)
			mustStatus(t, do(t, e, "PATCH", "/api/v1/users/bob@example.com", map[string]any{"enabled": false}, e.APIKey), 200)
		}},
		{"CheckOut, iPhone", "iPhone", "alice@example.com", "alice-password", func(t *testing.T, d *devicesim.Device) {
			if err := d.CheckOut(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{"CheckOut, Mac", "Mac", "bob@example.com", "bob-password", func(t *testing.T, d *devicesim.Device) {
			if err := d.CheckOut(ctx); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustStatus(t, do(t, e, "PATCH", "/api/v1/users/"+tc.user, map[string]any{"enabled": true}, e.APIKey), 200)
			d := enrolledDevice(t, w, tc.family, tc.user, tc.pw)
			ref := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID, nil, e.APIKey).json(t)["id"].(string)
			tc.end(t, d)

			// The old identity re-sends Authenticate: refused, still ended.
			if err := d.Authenticate(ctx); !unrecognized(err) {
				t.Fatalf("re-Authenticate with the old identity: %v", err)
			}
			if got, _ := st.Enrollment(ctx, ref); got.Status != store.EnrollmentUnenrolled {
				t.Fatalf("the device re-enrolled itself: %s", got.Status)
			}
			for name, send := range map[string]func() error{
				"TokenUpdate": func() error { return d.TokenUpdate(ctx, false) },
				"Idle":        func() error { _, err := d.Poll(ctx, nil, false); return err },
				"CheckOut":    func() error { return d.CheckOut(ctx) },
			} {
				if err := send(); !unrecognized(err) {
					t.Errorf("%s after the ending: %v", name, err)
				}
			}
			// Its certificate and the sign-in's token are revoked.
			if ic, err := st.IdentityCert(ctx, pki.SerialHex(d.IdentityCert)); err != nil || ic.RevokedAt.IsZero() {
				t.Errorf("the ended enrollment's certificate is not revoked: %+v %v", ic, err)
			}
			if _, err := d.FetchProfile(ctx); err == nil || !strings.Contains(err.Error(), "403") {
				t.Errorf("profile with the ended enrollment's token: %v", err)
			}
			// Coming back takes a new enrollment: a new sign-in, a new
			// profile, a new pending enrollment.
			mustStatus(t, do(t, e, "PATCH", "/api/v1/users/"+tc.user, map[string]any{"enabled": true}, e.APIKey), 200)
			d2 := enrolledDevice(t, w, tc.family, tc.user, tc.pw)
			again := do(t, e, "GET", "/api/v1/devices/"+d2.MDM.EnrollmentID, nil, e.APIKey).json(t)
			if again["id"] == ref || again["status"] != store.EnrollmentEnrolled {
				t.Fatalf("re-enrollment: %v", again)
			}
		})
	}
}

// A Mac's device channel carries no bearer: requests on it are refused
// while the enrollment's user is disabled (and work again once enabled).
func TestMacDeviceChannelOfDisabledUser(t *testing.T) {
	w := newWorld(t, true)
	e, ctx := w.e, context.Background()
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	d := enrolledDevice(t, w, "Mac", "bob@example.com", "bob-password")
	mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "ProfileList"}, e.APIKey), 201)
	mustStatus(t, do(t, e, "PATCH", "/api/v1/users/bob@example.com", map[string]any{"enabled": false}, e.APIKey), 200)
	if cmd, err := d.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("device channel of a disabled user: %+v %v", cmd, err)
	}
	if err := d.TokenUpdate(ctx, false); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("TokenUpdate of a disabled user: %v", err)
	}
	if err := d.Authenticate(ctx); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Authenticate of a disabled user: %v", err)
	}
	mustStatus(t, do(t, e, "PATCH", "/api/v1/users/bob@example.com", map[string]any{"enabled": true}, e.APIKey), 200)
	if cmd, err := d.Poll(ctx, nil, false); err != nil || cmd == nil || cmd.RequestType() != "ProfileList" {
		t.Fatalf("after re-enabling: %+v %v", cmd, err)
	}
}

// Finding 9: one access token enrolled 5 Macs, and 10 parallel profile
// requests with one token made 10 pending enrollments and 10 certificates.
func TestOneSignInOneEnrollment(t *testing.T) {
	w := newWorld(t, true)
	e, ctx := w.e, context.Background()
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	first := w.device(t, "Mac")
	if _, err := first.Discover(ctx, e.URL, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := first.FirstPost(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := first.SignIn(ctx, devicesim.Credentials{User: "bob@example.com", Password: "bob-password"}); err != nil {
		t.Fatal(err)
	}
	// Ten Macs present the same token at once.
	const n = 10
	macs := make([]*devicesim.Device, n)
	errs := make([]error, n)
	for i := range macs {
		macs[i] = w.device(t, "Mac")
		macs[i].BaseURL, macs[i].LoginURL, macs[i].AccessToken = first.BaseURL, first.LoginURL, first.AccessToken
	}
	var wg sync.WaitGroup
	for i := range macs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			raw, err := macs[i].FetchProfile(ctx)
			if err == nil {
				_, err = macs[i].CheckProfile(raw)
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("profile request %d: %v", i, err)
		}
	}
	u, _ := e.Server.Store.UserByEmail(ctx, "bob@example.com")
	all, _ := e.Server.Store.Enrollments(ctx, store.EnrollmentFilter{UserID: u.ID})
	if len(all) != 1 {
		t.Fatalf("%d enrollments from one sign-in", len(all))
	}
	issued := 0
	var enrolled *devicesim.Device
	for _, m := range macs {
		if _, err := m.SCEPEnroll(ctx); err == nil {
			issued++
			enrolled = m
		}
	}
	if issued != 1 {
		t.Fatalf("%d identity certificates from one sign-in", issued)
	}
	if err := enrolled.Authenticate(ctx); err != nil {
		t.Fatal(err)
	}
	// Enrolled: the token fetches no further profile, for any Mac.
	if _, err := macs[0].FetchProfile(ctx); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("profile after the sign-in enrolled a Mac: %v", err)
	}
	if all, _ := e.Server.Store.Enrollments(ctx, store.EnrollmentFilter{UserID: u.ID}); len(all) != 1 {
		t.Fatalf("%d enrollments", len(all))
	}
}
