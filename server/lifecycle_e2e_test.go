package server_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/server"
)

// movableClock is the server's lifecycle clock (Config.Clock), moved by
// the test.
type movableClock struct{ off atomic.Int64 }

func (c *movableClock) now() time.Time     { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *movableClock) moveTo(t time.Time) { c.off.Store(int64(time.Until(t))) }
func withClock(c *movableClock) func(*server.Config) {
	return func(cfg *server.Config) { cfg.Clock = c.now }
}

// subscribe registers a webhook receiver for events.
func subscribe(t *testing.T, w *world, events ...string) *receiver {
	t.Helper()
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	a := do(t, w.e, "POST", "/api/v1/webhooks", map[string]any{"url": srv.URL + "/hook", "events": events}, w.e.APIKey)
	mustStatus(t, a, 201)
	rc.mu.Lock()
	rc.secret = []byte(a.json(t)["secret"].(string))
	rc.mu.Unlock()
	return rc
}

func waitEvents(t *testing.T, rc *receiver, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for rc.types() != want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := rc.types(); got != want {
		t.Errorf("webhook events %q, want %q", got, want)
	}
}

// roundTrip queues DeviceInformation through the API and has the device
// fetch and answer it.
func roundTrip(t *testing.T, w *world, d *devicesim.Device) string {
	t.Helper()
	ctx := context.Background()
	a := do(t, w.e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "DeviceInformation", "queries": []string{"OSVersion"}}, w.e.APIKey)
	mustStatus(t, a, 201)
	uuid := a.json(t)["command_uuid"].(string)
	cmd, err := d.Poll(ctx, nil, false)
	if err != nil || cmd == nil || cmd.CommandUUID != uuid {
		t.Fatalf("poll: %+v %v", cmd, err)
	}
	if next, err := d.Poll(ctx, d.Process(ctx, cmd), false); err != nil || next != nil {
		t.Fatalf("answer: %+v %v", next, err)
	}
	return uuid
}

// A device is renewed before its identity expires, the way Apple devices
// renew (re-sent enrollment profile, SCEP with its challenge), and is still
// managed a day after the original certificate's expiry, under one
// EnrollmentID with its history.
func TestIdentityRenewalEndToEnd(t *testing.T) {
	// The device enrolled 345 days ago (the server's clock moves; the
	// simulator's CMS library stamps signing times from the host clock,
	// so the timeline ends near the real present).
	clk := &movableClock{}
	clk.moveTo(time.Now().Add(-345 * 24 * time.Hour))
	w := newWorldWith(t, withClock(clk))
	e, ctx := w.e, context.Background()
	hooks := subscribe(t, w, "device.renewal_queued", "device.identity_renewed", "device.identity_expired")
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	d.Now = clk.now // the device's clock is right: the world moves
	first := roundTrip(t, w, d)
	orig, origKey := d.IdentityCert, d.IdentityKey
	enrollmentID := d.MDM.EnrollmentID

	// Nothing is due a year ahead of expiry.
	if rep, err := e.Server.Renewal.RunLogged(ctx); err != nil || rep.Queued != 0 {
		t.Fatalf("renewals at enrollment: %+v %v", rep, err)
	}
	// 20 days before expiry the renewal is queued, once.
	clk.moveTo(orig.NotAfter.Add(-20 * 24 * time.Hour))
	if rep, err := e.Server.Renewal.RunLogged(ctx); err != nil || rep.Queued != 1 {
		t.Fatalf("renewals 20 days before expiry: %+v %v", rep, err)
	}
	if rep, _ := e.Server.Renewal.RunLogged(ctx); rep.Queued != 0 {
		t.Fatalf("a queued renewal was queued again: %+v", rep)
	}
	dev := do(t, e, "GET", "/api/v1/devices/"+enrollmentID, nil, e.APIKey).json(t)
	if r, _ := dev["renewal"].(map[string]any); r == nil || r["status"] != "queued" || r["certificate_serial"] != pki.SerialHex(orig) {
		t.Fatalf("renewal not visible: %v", dev["renewal"])
	}
	cmd, err := d.Poll(ctx, nil, false)
	if err != nil || cmd == nil || cmd.RequestType() != "InstallProfile" {
		t.Fatalf("poll after the renewal: %+v %v", cmd, err)
	}
	answer := d.Process(ctx, cmd)
	if answer["Status"] != "Acknowledged" || d.IdentityCert.Equal(orig) {
		t.Fatalf("the device did not install the re-sent profile: %v", answer)
	}
	if next, err := d.Poll(ctx, answer, false); err != nil || next != nil {
		t.Fatalf("the answer signed by the new identity: %+v %v", next, err)
	}
	dev = do(t, e, "GET", "/api/v1/devices/"+enrollmentID, nil, e.APIKey).json(t)
	if r := dev["renewal"].(map[string]any); r["status"] != "done" || r["new_certificate_serial"] != pki.SerialHex(d.IdentityCert) {
		t.Fatalf("renewal after SCEP: %v", r)
	}

	// A day after the original certificate's expiry: the old identity gets
	// a clear answer, the device (on its new one) is still managed.
	clk.moveTo(orig.NotAfter.Add(24 * time.Hour))
	renewedKey, renewed := d.IdentityKey, d.IdentityCert
	d.IdentityKey, d.IdentityCert = origKey, orig
	if _, err := d.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "expired on") {
		t.Fatalf("the expired identity: %v", err)
	}
	d.IdentityKey, d.IdentityCert = renewedKey, renewed
	second := roundTrip(t, w, d)
	dev = do(t, e, "GET", "/api/v1/devices/"+enrollmentID, nil, e.APIKey).json(t)
	if dev["enrollment_id"] != enrollmentID || dev["status"] != "enrolled" {
		t.Fatalf("device after expiry: %v", dev)
	}
	list := do(t, e, "GET", "/api/v1/devices/"+enrollmentID+"/commands", nil, e.APIKey).json(t)["commands"].([]any)
	seen := map[string]bool{}
	for _, c := range list {
		seen[c.(map[string]any)["command_uuid"].(string)] = true
	}
	if len(list) != 3 || !seen[first] || !seen[second] || !seen[cmd.CommandUUID] {
		t.Fatalf("history: %v", list)
	}
	if all := do(t, e, "GET", "/api/v1/devices", nil, e.APIKey).json(t)["devices"].([]any); len(all) != 1 {
		t.Fatalf("%d enrollments, want one", len(all))
	}
	m := get(t, e, "/metrics")
	for _, want := range []string{`pomona_identity_renewals_total{event="queued"} 1`, `pomona_identity_renewals_total{event="issued"} 1`,
		`pomona_identity_renewals_total{event="expired"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	waitEvents(t, hooks, "device.identity_expired device.identity_renewed device.renewal_queued")
}

// Renewal failures are visible: a device that refuses the re-sent profile
// (12012, an immutable key changed) and one that never fetches it.
func TestIdentityRenewalFailures(t *testing.T) {
	clk, cc := &movableClock{}, &consoleClock{}
	clk.moveTo(time.Now().Add(-345 * 24 * time.Hour))
	w := newWorldWith(t, withClock(clk), func(c *server.Config) { c.ConsoleClock = cc.now })
	e, ctx := w.e, context.Background()
	hooks := subscribe(t, w, "device.renewal_failed")
	refusing := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	silent := enrolledDevice(t, w, "iPad", "bob@example.com", "bob-password")
	refusing.Now, silent.Now = clk.now, clk.now
	clk.moveTo(refusing.IdentityCert.NotAfter.Add(-20 * 24 * time.Hour))
	if rep, err := e.Server.Renewal.RunLogged(ctx); err != nil || rep.Queued != 2 {
		t.Fatalf("renewals: %+v %v", rep, err)
	}

	// The device compares the immutable keys with what it installed.
	refusing.Profile.Topic = "com.apple.mgmt.External.changed"
	cmd, err := refusing.Poll(ctx, nil, false)
	if err != nil || cmd == nil || cmd.RequestType() != "InstallProfile" {
		t.Fatalf("poll: %+v %v", cmd, err)
	}
	answer := refusing.Process(ctx, cmd)
	if answer["Status"] != "Error" {
		t.Fatalf("the simulator accepted a changed Topic: %v", answer)
	}
	if _, err := refusing.Poll(ctx, answer, false); err != nil {
		t.Fatal(err)
	}
	r := do(t, e, "GET", "/api/v1/devices/"+refusing.MDM.EnrollmentID, nil, e.APIKey).json(t)["renewal"].(map[string]any)
	if r["status"] != "failed" || !strings.Contains(r["error"].(string), "MCMDMErrorDomain 12012") {
		t.Fatalf("refused renewal: %v", r)
	}

	// No SCEP within the timeout: failed, then tried again.
	clk.moveTo(refusing.IdentityCert.NotAfter.Add(-12 * 24 * time.Hour))
	rep, err := e.Server.Renewal.RunLogged(ctx)
	if err != nil || rep.Failed != 1 || rep.Queued != 1 {
		t.Fatalf("after the timeout: %+v %v", rep, err)
	}
	r = do(t, e, "GET", "/api/v1/devices/"+silent.MDM.EnrollmentID, nil, e.APIKey).json(t)["renewal"].(map[string]any)
	if r["status"] != "failed" || !strings.Contains(r["error"].(string), "did not request") {
		t.Fatalf("silent device: %v", r)
	}
	r = do(t, e, "GET", "/api/v1/devices/"+refusing.MDM.EnrollmentID, nil, e.APIKey).json(t)["renewal"].(map[string]any)
	if r["status"] != "queued" || r["attempts"] != float64(2) {
		t.Fatalf("retried renewal: %v", r)
	}
	if m := get(t, e, "/metrics"); !strings.Contains(m, `pomona_identity_renewals_total{event="failed"} 2`) {
		t.Error("failed renewals not counted")
	}
	waitEvents(t, hooks, "device.renewal_failed device.renewal_failed")
	// The console's device page says so too.
	admin := newConsoleUser(t, w, cc, "ops@example.com", "admin")
	id := do(t, e, "GET", "/api/v1/devices/"+silent.MDM.EnrollmentID, nil, e.APIKey).json(t)["id"].(string)
	if code, body := admin.get("/console/devices/" + id); code != 200 || !strings.Contains(body, "Identity renewal") ||
		!strings.Contains(body, "did not request its renewed identity") {
		t.Fatalf("console device page: %d %s", code, body)
	}
}

// Identity certificates are backdated: a device whose clock is a few
// minutes slow finds its new identity valid and checks in. The window is
// pki.IdentityBackdate (10 minutes). A device slower than that fails, and
// once its clock is set retries without a new sign-in.
func TestSlowDeviceClockEnrolls(t *testing.T) {
	w := newWorld(t, true)
	ctx := context.Background()
	for _, tc := range []struct {
		slow time.Duration
		ok   bool
	}{{4 * time.Minute, true}, {9 * time.Minute, true}, {11 * time.Minute, false}} {
		t.Run(tc.slow.String(), func(t *testing.T) {
			user := fmt.Sprintf("skew%d@example.com", int(tc.slow.Minutes()))
			mustStatus(t, do(t, w.e, "POST", "/api/v1/users", map[string]any{"email": user, "password": "skew-password"}, w.e.APIKey), 201)
			d := w.device(t, "iPhone")
			// The person reads TOTP codes from their authenticator (right
			// time); the device's own clock is slow from the profile on.
			if _, err := d.Discover(ctx, w.e.URL, user); err != nil {
				t.Fatal(err)
			}
			if _, err := d.FirstPost(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := d.SignIn(ctx, devicesim.Credentials{User: user, Password: "skew-password"}); err != nil {
				t.Fatal(err)
			}
			d.Now = func() time.Time { return time.Now().Add(-tc.slow) }
			raw, err := d.FetchProfile(ctx)
			if err == nil {
				_, err = d.CheckProfile(raw)
			}
			if err == nil {
				_, err = d.SCEPEnroll(ctx)
			}
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), "not valid on this device's clock") {
					t.Fatalf("a clock %s slow: %v", tc.slow, err)
				}
				// Its challenge is spent. Once its clock is set, the device
				// retries with the same sign-in: the profile fetched again
				// carries a fresh challenge for the same enrollment.
				spent := d.Profile.SCEPChallenge
				d.Now = time.Now
				raw, err := d.FetchProfile(ctx)
				if err != nil {
					t.Fatalf("re-fetching the profile without a new sign-in: %v", err)
				}
				if _, err := d.CheckProfile(raw); err != nil || d.Profile.SCEPChallenge == spent {
					t.Fatalf("the re-fetched profile: %v (challenge repeated: %v)", err, d.Profile.SCEPChallenge == spent)
				}
				if _, err := d.SCEPEnroll(ctx); err != nil {
					t.Fatalf("SCEP after the clock was set: %v", err)
				}
				if err := d.Authenticate(ctx); err != nil {
					t.Fatalf("check-in after the retry: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Authenticate(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A result for a CommandUUID never queued for the channel is acknowledged
// (200), so the device stops resending it, and the next command is handed
// out as usual.
func TestResultForUnknownCommand(t *testing.T) {
	w := newWorld(t, true)
	e, ctx := w.e, context.Background()
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	a := do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "ProfileList"}, e.APIKey)
	mustStatus(t, a, 201)
	next, err := d.Poll(ctx, map[string]any{"Status": "Acknowledged", "CommandUUID": "NEVER-SENT", "RequestType": "DeviceInformation"}, false)
	if err != nil || next == nil || next.CommandUUID != a.json(t)["command_uuid"] {
		t.Fatalf("after a result for an unknown command: %+v %v", next, err)
	}
	list := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", nil, e.APIKey).json(t)["commands"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["status"] == "Acknowledged" {
		t.Fatalf("the unknown result touched the queue: %v", list)
	}
	if m := get(t, e, "/metrics"); !strings.Contains(m, `pomona_commands_total{event="result-unknown-command"} 1`) {
		t.Error("unknown result not counted")
	}
	logs, _ := os.ReadFile(e.Logs.Name())
	if !strings.Contains(string(logs), "never queued for this channel") || !strings.Contains(string(logs), "NEVER-SENT") {
		t.Error("unknown result not logged")
	}
}
