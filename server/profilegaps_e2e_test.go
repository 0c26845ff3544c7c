package server_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/store"
)

// assignToAllUsers uploads a profile to the world's tenant through the
// API and assigns it to the tenant's All users group; it returns its id.
func assignToAllUsers(t *testing.T, w *world, content []byte) string {
	t.Helper()
	e, k := w.e, w.e.APIKey
	groups := do(t, e, "GET", "/api/v1/groups?tenant_id="+w.tenant, nil, k).json(t)["groups"].([]any)
	a := do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString(content)}, k)
	mustStatus(t, a, 201)
	pid := a.json(t)["id"].(string)
	mustStatus(t, do(t, e, "POST", "/api/v1/profiles/"+pid+"/assignments", map[string]any{"group_id": groups[0].(map[string]any)["id"]}, k), 200)
	return pid
}

// TestNewVersionSupersedesCertEndToEnd: version 2 of a profile with a
// SCEP payload gives the device a new user certificate; once the device
// has acknowledged the install (and so holds the new one), the certificate
// of version 1 is revoked (OCSP: revoked, superseded) and the new one is
// good. A device that refuses version 2 keeps its version-1 certificate
// valid: its Wi-Fi must keep working.
func TestNewVersionSupersedesCertEndToEnd(t *testing.T) {
	w := newWorldWith(t)
	e := w.e
	k := e.APIKey
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, k), 200)
	pid := assignToAllUsers(t, w, []byte(eapTLSProfile))
	phone := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	refuser := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	ds := []*devicesim.Device{phone, refuser}
	serial := func(d *devicesim.Device) string {
		p, ok := d.InstalledProfile("com.example.eaptls")
		if !ok || len(p.Certificates) != 1 {
			return ""
		}
		return p.Certificates[0].SerialNumber.String()
	}
	converge(t, ds, "version 1 installed", func() bool { return serial(phone) != "" && serial(refuser) != "" })
	p1, _ := phone.InstalledProfile("com.example.eaptls")
	r1, _ := refuser.InstalledProfile("com.example.eaptls")
	old, refuserOld := p1.Certificates[0], r1.Certificates[0]
	status := func(serialHex string) (int, int) {
		t.Helper()
		c := old
		if serialHex == "refuser" {
			c = refuserOld
		} else if serialHex == "new" {
			p, _ := phone.InstalledProfile("com.example.eaptls")
			c = p.Certificates[0]
		}
		req, err := ocsp.CreateRequest(c, e.Server.CA.Cert, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.Client.Post(e.URL+"/pki/ocsp", "application/ocsp-request", bytes.NewReader(req))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r, err := ocsp.ParseResponseForCert(b, c, e.Server.CA.Cert)
		if err != nil {
			t.Fatal(err)
		}
		return r.Status, r.RevocationReason
	}

	refuser.RefuseInstall("com.example.eaptls", "The user declined the profile.")
	v2 := strings.Replace(eapTLSProfile, "Corp-Secure", "Corp-Secure-2", 1)
	mustStatus(t, do(t, e, "POST", "/api/v1/profiles/"+pid+"/versions", map[string]any{"content": base64.StdEncoding.EncodeToString([]byte(v2))}, k), 201)
	converge(t, ds, "version 2 on the phone, refused by the other", func() bool {
		c := do(t, e, "GET", "/api/v1/profiles/"+pid+"/status", nil, k).json(t)["counts"].(map[string]any)
		return serial(phone) != "" && serial(phone) != old.SerialNumber.String() && c["installed"] == 1.0 && c["failed"] == 1.0
	})
	if st, reason := status("old"); st != ocsp.Revoked || reason != ocsp.Superseded {
		t.Fatalf("version 1's certificate after version 2 was installed: status %d reason %d, want revoked, superseded", st, reason)
	}
	if st, _ := status("new"); st != ocsp.Good {
		t.Fatalf("version 2's certificate: status %d", st)
	}
	if st, _ := status("refuser"); st != ocsp.Good {
		t.Fatalf("the device that refused version 2 lost its certificate: status %d", st)
	}
	if certs := do(t, e, "GET", "/api/v1/devices/"+phone.MDM.EnrollmentID+"/certificates", nil, k); !strings.Contains(string(certs.body), "superseded by a new delivery of the profile") {
		t.Fatalf("certificates of the phone: %s", certs.body)
	}
}

// TestRetryAfterProfileDeleted: Retry on a failed item of a profile that
// was deleted meanwhile answers 404 (API) or says so on the library page
// (console) — the item is not brought back, nothing answers 500.
func TestRetryAfterProfileDeleted(t *testing.T) {
	w, clk := consoleWorld(t)
	e := w.e
	k := e.APIKey
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	d.RefuseInstall("com.example.wifi", "The user declined the profile.")
	u := newConsoleUser(t, w, clk, "owner@ops.example", store.RoleOwner)
	pid := assignToAllUsers(t, w, wifiProfile("v1"))
	dev, err := e.Server.Store.EnrollmentByAppleID(t.Context(), d.MDM.EnrollmentID)
	if err != nil {
		t.Fatal(err)
	}
	items := func() []store.ProfileItem {
		its, err := e.Server.Store.ProfileItems(t.Context(), dev.ID)
		if err != nil {
			t.Fatal(err)
		}
		return its
	}
	converge(t, []*devicesim.Device{d}, "failed", func() bool { its := items(); return len(its) == 1 && its[0].State == "failed" })

	// The page with the failed device and its Retry button is open; the
	// profile is deleted meanwhile (another admin, the CLI).
	code, page := u.get("/console/profiles/" + pid)
	retry := "/console/profiles/" + pid + "/devices/" + dev.ID + "/retry"
	if code != 200 || !strings.Contains(page, `action="`+retry+`"`) {
		t.Fatalf("profile page: %d %.2000s", code, page)
	}
	mustStatus(t, do(t, e, "DELETE", "/api/v1/profiles/"+pid, nil, k), 204)
	before := items()

	code, body := u.post(retry, url.Values{}, "Referer", e.URL+"/console/profiles/"+pid)
	if code != 200 || !strings.Contains(body, "Not retried: the profile was deleted meanwhile") || !strings.Contains(body, "<h1>Configuration profiles</h1>") {
		t.Fatalf("console retry of a deleted profile: %d %.2000s", code, body)
	}
	r := do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/profiles/"+pid+"/retry", nil, k)
	mustStatus(t, r, 404)
	// (The reconciler may have forgotten the never-installed item by now;
	// what must not happen is an item made pending again.)
	if after := items(); len(after) > 1 || len(after) == 1 && (after[0].State != before[0].State || after[0].Attempts != before[0].Attempts) {
		t.Fatalf("the retry changed the deleted profile's item: %+v → %+v", before, after)
	}
	// The audit log records the console's refusal as a 404.
	_, audit := u.get("/console/audit?actor=console:owner@ops.example")
	if !strings.Contains(audit, "POST /console/profiles/{id}/devices/{device}/retry") || !strings.Contains(audit, "404") {
		t.Fatalf("audit: %.2000s", audit)
	}
	// The reconciler forgets the item; a late retry still brings nothing back.
	converge(t, []*devicesim.Device{d}, "item forgotten", func() bool { return len(items()) == 0 })
	mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/profiles/"+pid+"/retry", nil, k), 404)
	if len(items()) != 0 {
		t.Fatalf("a late retry resurrected the item: %+v", items())
	}
}

// TestConsoleGroupDeleteNeedsConfirmation: a group's deletion takes its
// profiles off its members' devices, so the console refuses it (400, the
// group kept) unless the confirmation was ticked — also when the form is
// sent without the browser's own check of the required box.
func TestConsoleGroupDeleteNeedsConfirmation(t *testing.T) {
	w, clk := consoleWorld(t)
	u := newConsoleUser(t, w, clk, "owner@ops.example", store.RoleOwner)
	g, err := w.e.Server.App.Profiles.CreateGroup(t.Context(), w.tenant, "Field sales")
	if err != nil {
		t.Fatal(err)
	}
	code, body := u.post("/console/groups/"+g.ID+"/delete", url.Values{}, "Referer", w.e.URL+"/console/groups/"+g.ID)
	if code != 200 || !strings.Contains(body, "Not deleted: tick that the group") {
		t.Fatalf("unconfirmed delete: %d %.1500s", code, body)
	}
	if _, err := w.e.Server.Store.Group(t.Context(), g.ID); err != nil {
		t.Fatalf("the group went without confirmation: %v", err)
	}
	if _, body := u.get("/console/audit?actor=console:owner@ops.example"); !strings.Contains(body, "POST /console/groups/{id}/delete") || !strings.Contains(body, "400") {
		t.Fatalf("audit: %.1500s", body)
	}
	code, body = u.post("/console/groups/"+g.ID+"/delete", url.Values{"confirm": {"on"}})
	if code != 200 || !strings.Contains(body, "Group Field sales deleted.") {
		t.Fatalf("confirmed delete: %d %.1500s", code, body)
	}
}
