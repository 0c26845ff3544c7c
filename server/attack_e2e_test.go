package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/store"
)

// Attacks on the MDM channel rebuilt as decorators (issue 14): one
// enrolled device's identity speaking with another's bearer, ids or
// topic, through the running server. Every check below existed before the
// rebuild; these tests make sure none was lost on the way.

// sendSigned sends msg signed with d's identity to the check-in (checkin
// true) or command URL, with authorization as the Authorization header
// ("" none), and returns the status and body.
func sendSigned(t *testing.T, d *devicesim.Device, checkin bool, msg map[string]any, authorization string) (int, string) {
	t.Helper()
	body, err := plist.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := pkcs7.NewSignedData(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.AddSigner(d.IdentityCert, d.IdentityKey, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	sd.Detach()
	sig, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	url, ct := d.Profile.ServerURL, "application/x-apple-aspen-mdm"
	if checkin {
		url, ct = d.Profile.CheckInURL, "application/x-apple-aspen-mdm-checkin"
	}
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Mdm-Signature", base64.StdEncoding.EncodeToString(sig))
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := d.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusUnauthorized && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `method="apple-as-web"`) {
		t.Fatalf("401 without the apple-as-web challenge: %q", resp.Header.Get("WWW-Authenticate"))
	}
	return resp.StatusCode, string(b)
}

// TestAttackBearerAcrossEnrollments: a valid identity with another
// enrollment's bearer, none, a malformed one, or a revoked one; GetToken
// and DeclarativeManagement are admitted like every other message; CheckOut
// is never 401 but still refuses another user's token.
func TestAttackBearerAcrossEnrollments(t *testing.T) {
	w := newWorld(t, true)
	e, ctx := w.e, context.Background()
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	a := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	b := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	c := enrolledDevice(t, w, "iPhone", "bob@example.com", "bob-password")
	idle := func(d *devicesim.Device) map[string]any {
		return map[string]any{"Status": "Idle", "EnrollmentID": d.MDM.EnrollmentID}
	}
	bearer := func(d *devicesim.Device) string { return "Bearer " + d.AccessToken }

	for _, tc := range []struct {
		name    string
		checkin bool
		msg     map[string]any
		auth    string
		want    int
	}{
		{"same user, A's bound token on B's poll", false, idle(b), bearer(a), 403},
		{"another user's token on A's poll", false, idle(a), bearer(c), 403},
		{"no token", false, idle(b), "", 401},
		{"malformed token", false, idle(b), "Bearer !!not a token!!", 401},
		{"unknown token", false, idle(b), "Bearer pomona_" + strings.Repeat("A", 43), 401},
		{"Basic instead of Bearer", false, idle(b), "Basic YWxpY2U6cGFzc3dvcmQ=", 401},
		{"A's EnrollmentID with B's identity and token", false, idle(a), bearer(b), 403},
		{"GetToken without a token", true, map[string]any{"MessageType": "GetToken", "EnrollmentID": b.MDM.EnrollmentID, "TokenServiceType": "com.apple.maid"}, "", 401},
		{"GetToken with another user's token", true, map[string]any{"MessageType": "GetToken", "EnrollmentID": b.MDM.EnrollmentID, "TokenServiceType": "com.apple.maid"}, bearer(c), 403},
		{"GetToken for another enrollment", true, map[string]any{"MessageType": "GetToken", "EnrollmentID": a.MDM.EnrollmentID, "TokenServiceType": "com.apple.maid"}, bearer(b), 403},
		{"DeclarativeManagement without a token", true, map[string]any{"MessageType": "DeclarativeManagement", "EnrollmentID": b.MDM.EnrollmentID, "Endpoint": "tokens"}, "", 401},
		{"DeclarativeManagement for another enrollment", true, map[string]any{"MessageType": "DeclarativeManagement", "EnrollmentID": a.MDM.EnrollmentID, "Endpoint": "tokens"}, bearer(b), 403},
		{"TokenUpdate for another enrollment", true, map[string]any{"MessageType": "TokenUpdate", "EnrollmentID": a.MDM.EnrollmentID, "Token": []byte("x"), "PushMagic": "m", "Topic": b.Profile.Topic}, bearer(b), 403},
		{"user channel on an iPhone", true, map[string]any{"MessageType": "TokenUpdate", "EnrollmentID": b.MDM.EnrollmentID, "EnrollmentUserID": "U1", "Token": []byte("x"), "PushMagic": "m", "Topic": b.Profile.Topic}, bearer(b), 403},
		{"CheckOut with another user's token", true, map[string]any{"MessageType": "CheckOut", "EnrollmentID": b.MDM.EnrollmentID, "Topic": b.Profile.Topic}, bearer(c), 403},
		{"CheckOut with a malformed token", true, map[string]any{"MessageType": "CheckOut", "EnrollmentID": b.MDM.EnrollmentID, "Topic": b.Profile.Topic}, "Bearer !!", 403},
		{"CheckOut naming another enrollment", true, map[string]any{"MessageType": "CheckOut", "EnrollmentID": a.MDM.EnrollmentID, "Topic": b.Profile.Topic}, bearer(b), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, body := sendSigned(t, b, tc.checkin, tc.msg, tc.auth); got != tc.want {
				t.Fatalf("answered %d (%s), want %d", got, strings.TrimSpace(body), tc.want)
			}
		})
	}
	// None of that ended or moved anything: all three still work.
	for _, d := range []*devicesim.Device{a, b, c} {
		if _, err := d.Poll(ctx, nil, false); err != nil {
			t.Fatalf("%s after the attacks: %v", d.MDM.EnrollmentID, err)
		}
	}

	// After a forced re-authentication the old token is refused with the
	// challenge on every message, except CheckOut (the device leaves and
	// cannot sign in again): a stale token of the owner is accepted there.
	mustStatus(t, do(t, e, "POST", "/api/v1/users/alice@example.com/reauthenticate", nil, e.APIKey), 200)
	if got, body := sendSigned(t, b, false, idle(b), bearer(b)); got != 401 {
		t.Fatalf("poll with the revoked token: %d %s", got, body)
	}
	if got, body := sendSigned(t, b, true, map[string]any{"MessageType": "GetToken", "EnrollmentID": b.MDM.EnrollmentID, "TokenServiceType": "com.apple.maid"}, bearer(b)); got != 401 {
		t.Fatalf("GetToken with the revoked token: %d %s", got, body)
	}
	// Bob's token is not revoked, but still not alice's.
	if got, body := sendSigned(t, b, true, map[string]any{"MessageType": "CheckOut", "EnrollmentID": b.MDM.EnrollmentID, "Topic": b.Profile.Topic}, bearer(c)); got != 403 {
		t.Fatalf("CheckOut with bob's token after alice's re-authentication: %d %s", got, body)
	}
	if got, body := sendSigned(t, b, true, map[string]any{"MessageType": "CheckOut", "EnrollmentID": b.MDM.EnrollmentID, "Topic": b.Profile.Topic}, bearer(b)); got != 200 {
		t.Fatalf("CheckOut with the owner's revoked token: %d %s", got, body)
	}
	if got, body := sendSigned(t, b, false, idle(b), bearer(b)); got != 403 || !strings.Contains(body, "com.apple.unrecognized.device") {
		t.Fatalf("poll after CheckOut: %d %s", got, body)
	}
}

// TestAttackResultForAnotherDevicesCommand: a device reporting a result
// for another enrollment's CommandUUID is acknowledged and dropped; the
// victim's command stays queued for the victim alone.
func TestAttackResultForAnotherDevicesCommand(t *testing.T) {
	w := newWorld(t, true)
	e, ctx := w.e, context.Background()
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	victim := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	attacker := enrolledDevice(t, w, "iPhone", "bob@example.com", "bob-password")
	a := do(t, e, "POST", "/api/v1/devices/"+victim.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "ProfileList"}, e.APIKey)
	mustStatus(t, a, 201)
	uuid := a.json(t)["command_uuid"].(string)
	for _, status := range []string{"Acknowledged", "Error", "NotNow", "CommandFormatError"} {
		if cmd, err := attacker.Poll(ctx, map[string]any{"Status": status, "CommandUUID": uuid, "RequestType": "ProfileList"}, false); err != nil || cmd != nil {
			t.Fatalf("%s for the victim's command: %+v %v", status, cmd, err)
		}
	}
	list := do(t, e, "GET", "/api/v1/devices/"+victim.MDM.EnrollmentID+"/commands", nil, e.APIKey).json(t)["commands"].([]any)
	if st := list[0].(map[string]any)["status"]; st != "queued" {
		t.Fatalf("the victim's command is %v after the attack", st)
	}
	if cmd, err := victim.Poll(ctx, nil, false); err != nil || cmd == nil || cmd.CommandUUID != uuid {
		t.Fatalf("the victim's own poll: %+v %v", cmd, err)
	}
}

// TestAttackWrongTopicWarmCache: with the push topic cached (a check-in
// just carried it), a check-in with another topic is still refused.
func TestAttackWrongTopicWarmCache(t *testing.T) {
	w := newWorld(t, true)
	e, ctx := w.e, context.Background()
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	if err := d.TokenUpdate(ctx, false); err != nil { // warm
		t.Fatal(err)
	}
	for _, topic := range []string{"com.apple.mgmt.External.00000000-0000-0000-0000-000000000000", d.Profile.Topic + " ", strings.ToUpper(d.Profile.Topic)} {
		msg := map[string]any{"MessageType": "TokenUpdate", "EnrollmentID": d.MDM.EnrollmentID, "Token": []byte("x"), "PushMagic": "m", "Topic": topic}
		if got, body := sendSigned(t, d, true, msg, "Bearer "+d.AccessToken); got != 400 || !strings.Contains(body, "push topic") {
			t.Fatalf("topic %q with a warm cache: %d %s", topic, got, body)
		}
	}
	if err := d.TokenUpdate(ctx, false); err != nil {
		t.Fatalf("the right topic afterwards: %v", err)
	}
}

// TestAttackChannelBeforeTokenUpdate: the joined read finds no channel
// (a Mac's user channel never announced): the fallback's documented
// answer is 400, and nothing is created.
func TestAttackChannelBeforeTokenUpdate(t *testing.T) {
	w := newWorld(t, true)
	e, ctx := w.e, context.Background()
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	d := enrolledDevice(t, w, "Mac", "bob@example.com", "bob-password")
	d.MDM.EnrollmentUserID = "11111111-2222-3333-4444-555555555555"
	_, err := d.Poll(ctx, nil, true)
	var re *devicesim.ReauthError
	if err == nil || errors.As(err, &re) || !strings.Contains(err.Error(), "400") {
		t.Fatalf("poll of a user channel never announced: %v", err)
	}
	ref := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID, nil, e.APIKey).json(t)["id"].(string)
	chs, err := e.Server.Store.Channels(ctx, ref)
	if err != nil || len(chs) != 1 {
		t.Fatalf("channels after the attack: %+v %v", chs, err)
	}
	if got, _ := e.Server.Store.Enrollment(ctx, ref); got.Status != store.EnrollmentEnrolled {
		t.Fatalf("enrollment: %s", got.Status)
	}
}
