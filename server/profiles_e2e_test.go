package server_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
)

// wifiProfile is a Wi-Fi profile with the user's email in its EAP
// settings; version marks the content.
func wifiProfile(version string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>com.example.wifi</string>
<key>PayloadUUID</key><string>6A0B0C5E-1111-4222-8333-444455556666</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadDisplayName</key><string>Corp Wi-Fi ` + version + `</string>
<key>PayloadContent</key><array><dict>
	<key>PayloadType</key><string>com.apple.wifi.managed</string>
	<key>PayloadIdentifier</key><string>com.example.wifi.payload</string>
	<key>PayloadUUID</key><string>7A0B0C5E-1111-4222-8333-444455556666</string>
	<key>PayloadVersion</key><integer>1</integer>
	<key>SSID_STR</key><string>Corp-` + version + `</string>
	<key>EncryptionType</key><string>WPA2</string>
	<key>EAPClientConfiguration</key><dict>
		<key>UserName</key><string>$EMAIL</string>
		<key>AcceptEAPTypes</key><array><integer>25</integer></array>
	</dict>
</dict></array>
</dict></plist>`)
}

// eapTLSProfile is a per-user certificate from Pomona's CA (SCEP with a
// challenge filled in per device) and a Wi-Fi network that uses it.
const eapTLSProfile = `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>com.example.eaptls</string>
<key>PayloadUUID</key><string>1A0B0C5E-1111-4222-8333-444455556666</string>
<key>PayloadDisplayName</key><string>Corp secure Wi-Fi</string>
<key>PayloadContent</key><array>
<dict>
	<key>PayloadType</key><string>com.apple.security.scep</string>
	<key>PayloadIdentifier</key><string>com.example.eaptls.scep</string>
	<key>PayloadUUID</key><string>2A0B0C5E-1111-4222-8333-444455556666</string>
	<key>PayloadContent</key><dict>
		<key>URL</key><string>$SCEP_URL</string>
		<key>Challenge</key><string>$SCEP_CHALLENGE</string>
		<key>Subject</key><array><array><array><string>CN</string><string>$EMAIL</string></array></array></array>
		<key>Keysize</key><integer>2048</integer>
	</dict>
</dict>
<dict>
	<key>PayloadType</key><string>com.apple.wifi.managed</string>
	<key>PayloadIdentifier</key><string>com.example.eaptls.wifi</string>
	<key>PayloadUUID</key><string>3A0B0C5E-1111-4222-8333-444455556666</string>
	<key>SSID_STR</key><string>Corp-Secure</string>
	<key>EncryptionType</key><string>WPA2</string>
	<key>PayloadCertificateUUID</key><string>2A0B0C5E-1111-4222-8333-444455556666</string>
	<key>EAPClientConfiguration</key><dict><key>AcceptEAPTypes</key><array><integer>13</integer></array></dict>
</dict>
</array></dict></plist>`

const vpnProfile = `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>com.example.vpn</string>
<key>PayloadUUID</key><string>8A0B0C5E-1111-4222-8333-444455556666</string>
<key>PayloadContent</key><array><dict>
	<key>PayloadType</key><string>com.apple.vpn.managed</string>
	<key>PayloadIdentifier</key><string>com.example.vpn.payload</string>
	<key>PayloadUUID</key><string>9A0B0C5E-1111-4222-8333-444455556666</string>
	<key>VPNType</key><string>IKEv2</string>
</dict></array>
</dict></plist>`

// converge lets the devices fetch and answer their commands until cond
// holds (the reconciler works in the background, woken by changes).
func converge(t *testing.T, ds []*devicesim.Device, what string, cond func() bool) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, d := range ds {
			cmd, err := d.Poll(ctx, nil, false)
			for err == nil && cmd != nil {
				cmd, err = d.Poll(ctx, d.Process(ctx, cmd), false)
			}
			if err != nil {
				t.Fatalf("%s: poll: %v", what, err)
			}
		}
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in 20 s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func eapUser(d *devicesim.Device) string {
	p, ok := d.InstalledProfile("com.example.wifi")
	if !ok {
		return ""
	}
	eap, _ := p.Doc["PayloadContent"].([]any)[0].(map[string]any)["EAPClientConfiguration"].(map[string]any)
	s, _ := eap["UserName"].(string)
	return s
}

func ssid(d *devicesim.Device) string {
	p, ok := d.InstalledProfile("com.example.wifi")
	if !ok {
		return ""
	}
	s, _ := p.Doc["PayloadContent"].([]any)[0].(map[string]any)["SSID_STR"].(string)
	return s
}

// The "Done when" for configuration profiles: devices enrolling
// into a group that has a Wi-Fi profile and a per-user certificate profile
// get both without an admin acting, with their user's email and a
// certificate from Pomona's CA in their user's name; a forbidden payload is refused at upload; a new
// version reaches every device; a refusing device shows Apple's reason and
// is retried; removing the assignment removes the profile; ProfileList is
// what the status says.
func TestProfilesEndToEnd(t *testing.T) {
	clk := &movableClock{}
	w := newWorldWith(t, withClock(clk))
	e := w.e
	k := e.APIKey
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, k), 200)
	hooks := subscribe(t, w, "profile.installed", "profile.failed")

	// The group and its profile exist before any device enrolls.
	a := do(t, e, "POST", "/api/v1/groups", map[string]any{"tenant_id": w.tenant, "name": "Wi-Fi users"}, k)
	mustStatus(t, a, 201)
	gid := a.json(t)["id"].(string)
	a = do(t, e, "POST", "/api/v1/groups/"+gid+"/members", map[string]any{"users": []string{"alice@example.com", "olga@other.example", "nobody@example.com"}}, k)
	mustStatus(t, a, 200)
	if j := a.json(t); j["added"] != 1.0 || j["failed"] != 2.0 {
		t.Fatalf("members: %s", a.body)
	}
	a = do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString(wifiProfile("v1")), "sign": true}, k)
	mustStatus(t, a, 201)
	pid := a.json(t)["id"].(string)
	if j := a.json(t); j["identifier"] != "com.example.wifi" || fmt.Sprint(j["platforms"]) != "[iOS macOS]" || j["version"] != 1.0 {
		t.Fatalf("profile: %s", a.body)
	}
	mustStatus(t, do(t, e, "POST", "/api/v1/profiles/"+pid+"/assignments", map[string]any{"group_id": gid}, k), 200)
	a = do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString([]byte(eapTLSProfile))}, k)
	mustStatus(t, a, 201)
	certPID := a.json(t)["id"].(string)
	mustStatus(t, do(t, e, "POST", "/api/v1/profiles/"+certPID+"/assignments", map[string]any{"group_id": gid}, k), 200)

	// A payload a user enrollment forbids is refused with its name.
	a = do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString([]byte(vpnProfile))}, k)
	mustStatus(t, a, 422)
	if a.code(t) != "user_enrollment_refused" || !strings.Contains(string(a.body), "com.apple.vpn.managed (com.example.vpn.payload)") {
		t.Fatalf("forbidden payload: %s", a.body)
	}
	// Duplicate identifier, binary plist, unknown variable.
	mustStatus(t, do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString(wifiProfile("x"))}, k), 409)
	mustStatus(t, do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString([]byte("bplist00xyz"))}, k), 422)
	bad := strings.Replace(string(wifiProfile("x")), "$EMAIL", "$PHONE", 1)
	bad = strings.Replace(bad, "com.example.wifi<", "com.example.other<", 1)
	if a := do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString([]byte(bad))}, k); a.status != 422 || !strings.Contains(string(a.body), "$PHONE") {
		t.Fatalf("unknown variable: %d %s", a.status, a.body)
	}

	// Two iPhones and a Mac of alice, an iPhone of bob (not in the group).
	phone1 := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	phone2 := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	mac := enrolledDevice(t, w, "Mac", "alice@example.com", "alice-password")
	bobs := enrolledDevice(t, w, "iPhone", "bob@example.com", "bob-password")
	alices := []*devicesim.Device{phone1, phone2, mac}
	all := append(alices, bobs)

	status := func(state string) map[string]any {
		a := do(t, e, "GET", "/api/v1/profiles/"+pid+"/status?state="+state, nil, k)
		mustStatus(t, a, 200)
		return a.json(t)
	}
	installed := func() float64 { return status("")["counts"].(map[string]any)["installed"].(float64) }
	converge(t, all, "v1 installed on alice's devices", func() bool { return installed() == 3 })
	for _, d := range alices {
		if eapUser(d) != "alice@example.com" || ssid(d) != "Corp-v1" {
			t.Fatalf("%s: installed %+v", d.ModelFamily, d.Installed())
		}
		if p, _ := d.InstalledProfile("com.example.wifi"); !p.Signed {
			t.Fatal("the profile was to be signed")
		}
	}
	if len(bobs.Installed()) != 0 {
		t.Fatalf("bob got %+v", bobs.Installed())
	}
	// The per-user certificate: issued by Pomona's CA in alice's name on
	// each of her devices, listed per device, revocable.
	converge(t, all, "certificate profile installed", func() bool {
		c := do(t, e, "GET", "/api/v1/profiles/"+certPID+"/status", nil, k).json(t)["counts"].(map[string]any)
		return c["installed"] == 3.0
	})
	for _, d := range alices {
		p, ok := d.InstalledProfile("com.example.eaptls")
		if !ok || len(p.Certificates) != 1 {
			t.Fatalf("%s: certificate profile %+v", d.ModelFamily, p)
		}
		c := p.Certificates[0]
		if c.CheckSignatureFrom(e.Server.CA.Cert) != nil || c.Subject.CommonName != "alice@example.com" || len(c.EmailAddresses) != 1 || c.EmailAddresses[0] != "alice@example.com" {
			t.Fatalf("user certificate %v %v", c.Subject, c.EmailAddresses)
		}
		// It is not an MDM identity.
		if _, err := e.Server.Store.IdentityCert(t.Context(), fmt.Sprintf("%x", c.SerialNumber.Bytes())); err == nil {
			t.Fatal("a user certificate was recorded as an MDM identity")
		}
	}
	cl := do(t, e, "GET", "/api/v1/devices/"+phone1.MDM.EnrollmentID+"/certificates", nil, k)
	mustStatus(t, cl, 200)
	certs := cl.json(t)["certificates"].([]any)
	if len(certs) != 1 || certs[0].(map[string]any)["email"] != "alice@example.com" || certs[0].(map[string]any)["profile_id"] != certPID {
		t.Fatalf("certificates: %s", cl.body)
	}
	serial := certs[0].(map[string]any)["serial"].(string)
	mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+phone2.MDM.EnrollmentID+"/certificates/"+serial+"/revoke", nil, k), 404)
	mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+phone1.MDM.EnrollmentID+"/certificates/"+serial+"/revoke", nil, k), 204)
	if c := do(t, e, "GET", "/api/v1/devices/"+phone1.MDM.EnrollmentID+"/certificates", nil, k).json(t)["certificates"].([]any)[0].(map[string]any); c["revoked_at"] == nil {
		t.Fatalf("not revoked: %v", c)
	}
	dev := do(t, e, "GET", "/api/v1/devices/"+phone1.MDM.EnrollmentID, nil, k).json(t)
	if ps, _ := dev["profiles"].([]any); len(ps) != 2 || ps[0].(map[string]any)["state"] != "installed" || ps[1].(map[string]any)["identifier"] != "com.example.wifi" {
		t.Fatalf("device profiles: %v", dev["profiles"])
	}

	// Version 2 reaches every device; phone2 refuses it.
	phone2.RefuseInstall("com.example.wifi", "The user declined the profile.")
	a = do(t, e, "POST", "/api/v1/profiles/"+pid+"/versions", map[string]any{"content": base64.StdEncoding.EncodeToString(wifiProfile("v2"))}, k)
	mustStatus(t, a, 201)
	if a.json(t)["version"] != 2.0 {
		t.Fatalf("v2: %s", a.body)
	}
	converge(t, all, "v2 on phone1 and the Mac, phone2 failed", func() bool {
		c := status("")["counts"].(map[string]any)
		return c["installed"] == 2.0 && c["failed"] == 1.0
	})
	if ssid(phone1) != "Corp-v2" || ssid(mac) != "Corp-v2" || ssid(phone2) != "Corp-v1" {
		t.Fatalf("v2: %s %s %s", ssid(phone1), ssid(mac), ssid(phone2))
	}
	f := status("failed")["devices"].([]any)[0].(map[string]any)
	if !strings.Contains(f["error"].(string), "MCProfileErrorDomain 1009: The user declined the profile.") || f["attempts"] != 1.0 || f["next_retry"] == nil {
		t.Fatalf("failed device: %v", f)
	}
	// The retry comes after the backoff, by itself.
	phone2.AllowInstall("com.example.wifi")
	clk.moveTo(time.Now().Add(2 * time.Minute))
	e.Server.ProfileJob.Wake()
	converge(t, all, "phone2 retried", func() bool { return installed() == 3 })
	if ssid(phone2) != "Corp-v2" {
		t.Fatal("phone2 has not got v2")
	}

	// Drift: the profile disappears from a device; the periodic
	// verification (here: the admin's retry path is not needed) finds it.
	mac.RemoveLocally("com.example.wifi")
	clk.moveTo(time.Now().Add(2*time.Minute + 25*time.Hour))
	e.Server.ProfileJob.Wake()
	converge(t, all, "drift repaired", func() bool { return ssid(mac) == "Corp-v2" && installed() == 3 })

	// Removing the assignment removes the profile from every device.
	mustStatus(t, do(t, e, "DELETE", "/api/v1/profiles/"+pid+"/assignments/"+gid, nil, k), 204)
	converge(t, all, "removed", func() bool {
		for _, d := range alices {
			if _, ok := d.InstalledProfile("com.example.wifi"); ok {
				return false
			}
		}
		c := status("")["counts"].(map[string]any)
		return c["installed"] == 0.0 && c["removing"] == 0.0
	})
	dev = do(t, e, "GET", "/api/v1/devices/"+phone1.MDM.EnrollmentID, nil, k).json(t)
	if ps, _ := dev["profiles"].([]any); len(ps) != 1 || ps[0].(map[string]any)["identifier"] != "com.example.eaptls" {
		t.Fatalf("device profiles after removal: %v", dev["profiles"])
	}
	// Webhooks: an event for every installed (verified) item and for the
	// failure.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && (strings.Count(hooks.types(), "profile.installed") < 10 || !strings.Contains(hooks.types(), "profile.failed")) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := hooks.types(); strings.Count(got, "profile.installed") != 10 || strings.Count(got, "profile.failed") != 1 {
		t.Fatalf("webhook events: %s", got)
	}
}
