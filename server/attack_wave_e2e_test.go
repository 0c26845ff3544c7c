package server_test

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
)

// waveInstall assigns a Wi-Fi profile to every device of w's tenant and
// polls until d is handed its InstallProfile; it returns the profile id
// and that command.
func waveInstall(t *testing.T, w *world, d *devicesim.Device) (string, *devicesim.ReceivedCommand) {
	t.Helper()
	ctx := context.Background()
	e := w.e
	groups := do(t, e, "GET", "/api/v1/groups?tenant_id="+w.tenant, nil, e.APIKey).json(t)["groups"].([]any)
	var all string
	for _, g := range groups {
		if g := g.(map[string]any); g["source"] == "all" {
			all = g["id"].(string)
		}
	}
	pid := do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString(wifiProfile("v1"))}, e.APIKey).json(t)["id"].(string)
	do(t, e, "POST", "/api/v1/profiles/"+pid+"/assignments", map[string]any{"group_id": all}, e.APIKey)
	deadline := time.Now().Add(20 * time.Second)
	cmd, err := d.Poll(ctx, nil, false)
	for err == nil && cmd == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		cmd, err = d.Poll(ctx, nil, false)
	}
	if err != nil || cmd == nil || cmd.RequestType() != "InstallProfile" {
		t.Fatalf("first command: %+v %v", cmd, err)
	}
	return pid, cmd
}

// profileState is the one device's state of profile pid (status API).
func profileState(t *testing.T, w *world, pid string) map[string]any {
	t.Helper()
	devs, _ := do(t, w.e, "GET", "/api/v1/profiles/"+pid+"/status", nil, w.e.APIKey).json(t)["devices"].([]any)
	if len(devs) != 1 {
		t.Fatalf("status lists %d devices", len(devs))
	}
	return devs[0].(map[string]any)
}

// A ProfileList answer without its ProfileList array (Apple: required) is
// malformed, not "the device has no profiles": it must not turn the
// acknowledged install into drift and a reinstall.
func TestAttackProfileListWithoutList(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, true)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	pid, cmd := waveInstall(t, w, d)
	list, err := d.Poll(ctx, d.Process(ctx, cmd), false)
	if err != nil || list == nil || list.RequestType() != "ProfileList" {
		t.Fatalf("the install's answer: %+v %v", list, err)
	}
	for _, odd := range []map[string]any{
		{"Status": "Acknowledged", "CommandUUID": list.CommandUUID},
		{"Status": "Acknowledged", "CommandUUID": list.CommandUUID, "ProfileList": "com.example.wifi"},
	} {
		if next, err := d.Poll(ctx, odd, false); err != nil || next != nil {
			t.Fatalf("after the odd ProfileList answer: %+v %v", next, err)
		}
		if st := profileState(t, w, pid); st["state"] != "installing" || st["error"] != nil {
			t.Fatalf("after a ProfileList answer without its list the item is %v (want installing, no error)", st)
		}
	}
	// The well-formed answer still verifies it.
	if next, err := d.Poll(ctx, d.Process(ctx, list), false); err != nil || next != nil {
		t.Fatalf("after the ProfileList: %+v %v", next, err)
	}
	if st := profileState(t, w, pid); st["state"] != "installed" {
		t.Fatalf("after the device's real ProfileList: %v", st)
	}
}

// A device that acknowledges every InstallProfile and never lists the
// profile (hostile, or broken) must not loop the server through
// install, acknowledgement, ProfileList and drift without a pause: the
// install that was never seen installed is a failed attempt with a
// backoff, like a refused one.
func TestAttackAcknowledgedNeverListed(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, true)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	pid, cmd := waveInstall(t, w, d)
	list, err := d.Poll(ctx, map[string]any{"Status": "Acknowledged", "CommandUUID": cmd.CommandUUID}, false)
	if err != nil || list == nil || list.RequestType() != "ProfileList" {
		t.Fatalf("the install's answer: %+v %v", list, err)
	}
	if next, err := d.Poll(ctx, map[string]any{"Status": "Acknowledged", "CommandUUID": list.CommandUUID, "ProfileList": []any{}}, false); err != nil || next != nil {
		t.Fatalf("after the empty ProfileList: %+v %v", next, err)
	}
	st := profileState(t, w, pid)
	if st["state"] != "failed" || st["next_retry"] == nil || st["attempts"] != float64(1) {
		t.Fatalf("an install acknowledged and not listed is %v (want failed, attempt 1, a retry later)", st)
	}
	// No reinstall comes before the backoff (the reconciler is woken by
	// the enqueue of other work too; give it a moment).
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		next, err := d.Poll(ctx, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if next != nil {
			t.Fatalf("the device was handed %s right after the failed verification", next.RequestType())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Pomona installs profiles on the device channel only, so a ProfileList
// answered on a Mac's user channel (an admin's command there) lists the
// user's profiles, not the device's: it must not verify the device's
// items (read as their list, every installed profile was drift).
func TestAttackUserChannelProfileList(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, true)
	e := w.e
	d := enrolledDevice(t, w, "Mac", "alice@example.com", "alice-password")
	if err := d.TokenUpdate(ctx, true); err != nil {
		t.Fatal(err)
	}
	pid, cmd := waveInstall(t, w, d)
	list, err := d.Poll(ctx, d.Process(ctx, cmd), false)
	if err != nil || list == nil || list.RequestType() != "ProfileList" {
		t.Fatalf("the install's answer: %+v %v", list, err)
	}
	if next, err := d.Poll(ctx, d.Process(ctx, list), false); err != nil || next != nil {
		t.Fatalf("after the ProfileList: %+v %v", next, err)
	}
	if st := profileState(t, w, pid); st["state"] != "installed" {
		t.Fatalf("after the device's ProfileList: %v", st)
	}
	mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "ProfileList", "channel": "user"}, e.APIKey), 201)
	ucmd, err := d.Poll(ctx, nil, true)
	if err != nil || ucmd == nil || ucmd.RequestType() != "ProfileList" {
		t.Fatalf("user channel poll: %+v %v", ucmd, err)
	}
	if _, err := d.Poll(ctx, map[string]any{"Status": "Acknowledged", "CommandUUID": ucmd.CommandUUID, "ProfileList": []any{}}, true); err != nil {
		t.Fatal(err)
	}
	if st := profileState(t, w, pid); st["state"] != "installed" || st["error"] != nil {
		t.Fatalf("after the user channel's ProfileList the device's profile is %v", st)
	}
}

// The same Acknowledged sent many times at once (a replaying device, or
// retries over a flaky link) moves the item once and queues one
// verifying ProfileList: after the device answers it, nothing is left.
func TestAttackConcurrentReplayedAcknowledged(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, true)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	pid, cmd := waveInstall(t, w, d)
	ack := d.Process(ctx, cmd)
	const n = 8
	got := make(chan *devicesim.ReceivedCommand, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			c, err := d.Poll(ctx, ack, false)
			errs <- err
			got <- c
		}()
	}
	var list *devicesim.ReceivedCommand
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if c := <-got; c != nil {
			if c.RequestType() != "ProfileList" || list != nil && c.CommandUUID != list.CommandUUID {
				t.Fatalf("a replayed Acknowledged was answered with %s %s (first ProfileList %+v)", c.RequestType(), c.CommandUUID, list)
			}
			list = c
		}
	}
	if list == nil {
		t.Fatal("no answer carried the ProfileList")
	}
	if next, err := d.Poll(ctx, d.Process(ctx, list), false); err != nil || next != nil {
		t.Fatalf("after the ProfileList: %+v %v (a second ProfileList was queued)", next, err)
	}
	if st := profileState(t, w, pid); st["state"] != "installed" {
		t.Fatalf("after the ProfileList: %v", st)
	}
}

// A device's answer to a command stands once given (store.RecordResult):
// an Error sent later for an InstallProfile it acknowledged (or an
// Acknowledged after its Error) must not move the profile's item either,
// nor reach webhooks as that command's result.
func TestAttackContradictingResult(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, true)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	pid, cmd := waveInstall(t, w, d)
	list, err := d.Poll(ctx, d.Process(ctx, cmd), false)
	if err != nil || list == nil || list.RequestType() != "ProfileList" {
		t.Fatalf("the install's answer: %+v %v", list, err)
	}
	if next, err := d.Poll(ctx, d.Process(ctx, list), false); err != nil || next != nil {
		t.Fatalf("after the ProfileList: %+v %v", next, err)
	}
	late := map[string]any{"Status": "Error", "CommandUUID": cmd.CommandUUID, "RequestType": "InstallProfile",
		"ErrorChain": []any{map[string]any{"ErrorDomain": "MCInstallationErrorDomain", "ErrorCode": 4001, "LocalizedDescription": "late"}}}
	if next, err := d.Poll(ctx, late, false); err != nil || next != nil {
		t.Fatalf("after the contradicting Error: %+v %v", next, err)
	}
	if st := profileState(t, w, pid); st["state"] != "installed" || st["error"] != nil {
		t.Fatalf("an Error after the Acknowledged moved the item: %v", st)
	}
}

// An Acknowledged for an install the plan has replaced (a new version
// uploaded meanwhile) is a late answer: it acknowledges nothing and
// queues no ProfileList; the new version's install comes next, and only
// its answer and list make the profile installed.
func TestAttackAcknowledgedAfterNewVersion(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, true)
	e := w.e
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	pid, v1 := waveInstall(t, w, d)
	mustStatus(t, do(t, e, "POST", "/api/v1/profiles/"+pid+"/versions", map[string]any{"content": base64.StdEncoding.EncodeToString(wifiProfile("v2"))}, e.APIKey), 201)
	deadline := time.Now().Add(20 * time.Second)
	for st := profileState(t, w, pid); st["version"] != float64(2) || st["state"] != "installing"; st = profileState(t, w, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("version 2 was not queued: %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	next, err := d.Poll(ctx, map[string]any{"Status": "Acknowledged", "CommandUUID": v1.CommandUUID}, false)
	if err != nil || next == nil || next.RequestType() != "InstallProfile" {
		t.Fatalf("the late Acknowledged was answered with %+v (%v), want version 2's InstallProfile", next, err)
	}
	if st := profileState(t, w, pid); st["state"] != "installing" || st["version"] != float64(2) {
		t.Fatalf("after the late Acknowledged: %v", st)
	}
	list, err := d.Poll(ctx, d.Process(ctx, next), false)
	if err != nil || list == nil || list.RequestType() != "ProfileList" {
		t.Fatalf("version 2's answer: %+v %v", list, err)
	}
	if next, err := d.Poll(ctx, d.Process(ctx, list), false); err != nil || next != nil {
		t.Fatalf("after the ProfileList: %+v %v", next, err)
	}
	if st := profileState(t, w, pid); st["state"] != "installed" || st["version"] != float64(2) {
		t.Fatalf("after version 2's list: %v", st)
	}
}
