package server_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/store"
)

// The console's Groups and Profiles pages: create a group, add a member,
// upload (a forbidden payload shows the check inline), assign, see the
// device install it on the device page and the profile's counts.
func TestConsoleProfiles(t *testing.T) {
	w, clk := consoleWorld(t)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	u := newConsoleUser(t, w, clk, "owner@ops.example", store.RoleOwner)

	code, body := u.post("/console/groups", url.Values{"tenant": {w.tenant}, "name": {"Wi-Fi users"}})
	gid := regexp.MustCompile(`/console/groups/(gr_[a-z0-9]+)`).FindStringSubmatch(body)
	if code != 200 || gid == nil || !strings.Contains(body, "Group Wi-Fi users created.") {
		t.Fatalf("create group: %d %.500s", code, body)
	}
	code, body = u.postMultipart("/console/groups/"+gid[1]+"/members", map[string]string{"users": "alice@example.com, nobody@example.com"}, map[string][]byte{})
	if code != 200 || !strings.Contains(body, "1 added; 1 not added: nobody@example.com") {
		t.Fatalf("add members: %d %.800s", code, body)
	}

	code, body = u.postMultipart("/console/profiles", map[string]string{"tenant": w.tenant}, map[string][]byte{"file": []byte(vpnProfile)})
	if code != 422 || !strings.Contains(body, "A user enrollment would refuse this profile") || !strings.Contains(body, "com.apple.vpn.managed (com.example.vpn.payload)") {
		t.Fatalf("forbidden upload: %d %.800s", code, body)
	}
	code, body = u.postMultipart("/console/profiles", map[string]string{"tenant": w.tenant, "sign": "on"}, map[string][]byte{"file": wifiProfile("v1")})
	pid := regexp.MustCompile(`/console/profiles/(pr_[a-z0-9]+)`).FindStringSubmatch(body)
	if code != 200 || pid == nil || !strings.Contains(body, "Profile com.example.wifi uploaded") {
		t.Fatalf("upload: %d %.800s", code, body)
	}
	code, body = u.post("/console/profiles/"+pid[1]+"/assignments", url.Values{"group": {gid[1]}, "mode": {"include"}})
	if code != 200 || !strings.Contains(body, "Assignment saved") || !strings.Contains(body, "assigned to <a href=\"/console/groups/"+gid[1]) {
		t.Fatalf("assign: %d %.800s", code, body)
	}
	converge(t, []*devicesim.Device{d}, "installed", func() bool {
		_, ok := d.InstalledProfile("com.example.wifi")
		_, body := u.get("/console/profiles/" + pid[1])
		return ok && strings.Contains(body, "1 installed ·")
	})
	dev, _ := w.e.Server.Store.EnrollmentByAppleID(t.Context(), d.MDM.EnrollmentID)
	code, body = u.get("/console/devices/" + dev.ID)
	if code != 200 || !strings.Contains(body, "com.example.wifi</a> version 1: <span class=\"badge good\">installed</span>") {
		t.Fatalf("device page: %d %.3000s", code, body)
	}
	for _, p := range []string{"/console/groups", "/console/groups/" + gid[1], "/console/profiles", "/console/profiles/" + pid[1]} {
		if code, body := u.get(p); code != 200 || !strings.Contains(body, "</html>") {
			t.Errorf("%s: %d", p, code)
		}
	}
	auditor := newConsoleUser(t, w, clk, "auditor@ops.example", store.RoleAuditor)
	if _, body := auditor.get("/console/profiles/" + pid[1]); strings.Contains(body, "/assignments\"") {
		t.Error("the auditor is offered the assignment form")
	}
	if code, _ := auditor.post("/console/profiles/"+pid[1]+"/assignments/"+gid[1]+"/remove", url.Values{"confirm": {"on"}}); code != 403 {
		t.Errorf("auditor removes an assignment: %d", code)
	}
	// Removing takes the profile off the group's devices: not on one key
	// press without the box ticked.
	if _, body := u.get("/console/profiles/" + pid[1]); !strings.Contains(body, `name="confirm" required> the profile leaves its members' devices`) {
		t.Fatalf("remove form without its confirmation: %.3000s", body)
	}
	code, body = u.post("/console/profiles/"+pid[1]+"/assignments/"+gid[1]+"/remove", nil)
	if code != 200 || !strings.Contains(body, "Not removed") {
		t.Fatalf("unconfirmed remove: %d %.800s", code, body)
	}
	if _, ok := d.InstalledProfile("com.example.wifi"); !ok {
		t.Fatal("the profile left the device on an unconfirmed remove")
	}
	code, body = u.post("/console/profiles/"+pid[1]+"/assignments/"+gid[1]+"/remove", url.Values{"confirm": {"on"}})
	if code != 200 || !strings.Contains(body, "Assignment removed") {
		t.Fatalf("remove: %d %.800s", code, body)
	}
	converge(t, []*devicesim.Device{d}, "removed", func() bool { _, ok := d.InstalledProfile("com.example.wifi"); return !ok })
}

// The profile page's settings form and its delete with the count of
// devices that lose it (confirmed, and refused when the count changed).
func TestConsoleProfileSettingsAndDelete(t *testing.T) {
	w, clk := consoleWorld(t)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	u := newConsoleUser(t, w, clk, "owner@ops.example", store.RoleOwner)
	groups, _ := w.e.Server.App.Profiles.Groups(t.Context(), w.tenant)
	code, body := u.postMultipart("/console/profiles", map[string]string{"tenant": w.tenant}, map[string][]byte{"file": wifiProfile("v1")})
	pid := regexp.MustCompile(`/console/profiles/(pr_[a-z0-9]+)`).FindStringSubmatch(body)
	if code != 200 || pid == nil {
		t.Fatalf("upload: %d %.800s", code, body)
	}
	u.post("/console/profiles/"+pid[1]+"/assignments", url.Values{"group": {groups[0].ID}, "mode": {"include"}})
	converge(t, []*devicesim.Device{d}, "installed", func() bool { _, ok := d.InstalledProfile("com.example.wifi"); return ok })

	code, body = u.post("/console/profiles/"+pid[1]+"/settings", url.Values{"name": {"Phones only"}, "platforms": {"macOS"}, "min_os": {""}})
	if code != 200 || !strings.Contains(body, "Settings saved") || !strings.Contains(body, "<h1>Phones only</h1>") {
		t.Fatalf("settings: %d %.800s", code, body)
	}
	converge(t, []*devicesim.Device{d}, "removed from the iPhone", func() bool { _, ok := d.InstalledProfile("com.example.wifi"); return !ok })
	u.post("/console/profiles/"+pid[1]+"/settings", url.Values{"name": {"Phones only"}, "platforms": {"iOS"}})
	converge(t, []*devicesim.Device{d}, "back on the iPhone", func() bool {
		_, ok := d.InstalledProfile("com.example.wifi")
		_, body := u.get("/console/profiles/" + pid[1])
		return ok && strings.Contains(body, "1 installed ·")
	})
	if _, body := u.get("/console/profiles/" + pid[1]); !strings.Contains(body, "1 device(s) will lose it") {
		t.Fatalf("delete card: %.3000s", body)
	}
	// A stale count is refused.
	code, body = u.post("/console/profiles/"+pid[1]+"/delete", url.Values{"devices": {"0"}, "confirm": {"on"}})
	if code != 200 || !strings.Contains(body, "Not deleted") {
		t.Fatalf("stale delete: %d %.800s", code, body)
	}
	code, body = u.post("/console/profiles/"+pid[1]+"/delete", url.Values{"devices": {"1"}, "confirm": {"on"}})
	if code != 200 || !strings.Contains(body, "Profile Phones only deleted: 1 device(s) will lose it.") {
		t.Fatalf("delete: %d %.800s", code, body)
	}
	converge(t, []*devicesim.Device{d}, "removed", func() bool { _, ok := d.InstalledProfile("com.example.wifi"); return !ok })
	if code, _ := u.get("/console/profiles/" + pid[1]); code != 404 {
		t.Fatalf("deleted profile page: %d", code)
	}
}
