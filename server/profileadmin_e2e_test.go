package server_test

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/pomona-mdm/pomona/devicesim"
)

// namedWifiProfile uses $USER_NAME, which bob (no name) has no value for.
var namedWifiProfile = strings.NewReplacer("com.example.wifi<", "com.example.named<", "com.example.wifi.payload", "com.example.named.payload",
	"6A0B0C5E", "6B0B0C5E", "7A0B0C5E", "7B0B0C5E", "$EMAIL", "$USER_NAME").Replace(string(wifiProfile("named")))

// Deleting and editing a profile: the devices it concerns follow, only
// them; a variable without a value fails only that device's item.
func TestProfileDeleteAndUpdateEndToEnd(t *testing.T) {
	w := newWorldWith(t)
	e := w.e
	k := e.APIKey
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, k), 200)
	groups := do(t, e, "GET", "/api/v1/groups?tenant_id="+w.tenant, nil, k).json(t)["groups"].([]any)
	allUsers := groups[0].(map[string]any)["id"].(string)
	upload := func(content string) string {
		t.Helper()
		a := do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString([]byte(content))}, k)
		mustStatus(t, a, 201)
		id := a.json(t)["id"].(string)
		mustStatus(t, do(t, e, "POST", "/api/v1/profiles/"+id+"/assignments", map[string]any{"group_id": allUsers}, k), 200)
		return id
	}
	pid := upload(string(wifiProfile("v1")))
	named := upload(namedWifiProfile)

	phone := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	mac := enrolledDevice(t, w, "Mac", "alice@example.com", "alice-password")
	bobs := enrolledDevice(t, w, "iPhone", "bob@example.com", "bob-password")
	all := []*devicesim.Device{phone, mac, bobs}
	counts := func(id string) map[string]any {
		a := do(t, e, "GET", "/api/v1/profiles/"+id+"/status", nil, k)
		mustStatus(t, a, 200)
		return a.json(t)["counts"].(map[string]any)
	}
	converge(t, all, "installed", func() bool {
		return counts(pid)["installed"] == 3.0 && counts(named)["installed"] == 2.0 && counts(named)["failed"] == 1.0
	})

	// A variable with no value: bob's item failed with the reason, on
	// the API's status and device, the others installed.
	f := do(t, e, "GET", "/api/v1/profiles/"+named+"/status?state=failed", nil, k).json(t)["devices"].([]any)[0].(map[string]any)
	if f["user_email"] != "bob@example.com" || f["device"] == "" || f["device"] == nil || !strings.Contains(f["error"].(string), "$USER_NAME") {
		t.Fatalf("failed item: %v", f)
	}
	if _, ok := bobs.InstalledProfile("com.example.named"); ok {
		t.Fatal("bob got a profile with an empty name")
	}
	if _, ok := bobs.InstalledProfile("com.example.wifi"); !ok {
		t.Fatal("bob's other profile was affected")
	}
	dev := do(t, e, "GET", "/api/v1/devices/"+bobs.MDM.EnrollmentID, nil, k).json(t)
	if !strings.Contains(fmt.Sprint(dev["profiles"]), "$USER_NAME") {
		t.Fatalf("device profiles: %v", dev["profiles"])
	}

	// Platforms: macOS removed → RemoveProfile on the Mac only.
	a := do(t, e, "PATCH", "/api/v1/profiles/"+pid, map[string]any{"platforms": []string{"iOS"}, "name": "Corp Wi-Fi (phones)"}, k)
	mustStatus(t, a, 200)
	if j := a.json(t); fmt.Sprint(j["platforms"]) != "[iOS]" || j["name"] != "Corp Wi-Fi (phones)" {
		t.Fatalf("patched: %s", a.body)
	}
	converge(t, all, "removed from the Mac", func() bool {
		_, onMac := mac.InstalledProfile("com.example.wifi")
		return !onMac && counts(pid)["installed"] == 2.0 && counts(pid)["removing"] == 0.0
	})
	if _, ok := phone.InstalledProfile("com.example.wifi"); !ok {
		t.Fatal("the phone lost it")
	}
	// Signing: every device that has it gets it again, signed.
	mustStatus(t, do(t, e, "PATCH", "/api/v1/profiles/"+pid, map[string]any{"sign": true}, k), 200)
	converge(t, all, "signed", func() bool {
		p, _ := phone.InstalledProfile("com.example.wifi")
		q, _ := bobs.InstalledProfile("com.example.wifi")
		return p.Signed && q.Signed && counts(pid)["installed"] == 2.0
	})
	// Bad edits change nothing.
	mustStatus(t, do(t, e, "PATCH", "/api/v1/profiles/"+pid, map[string]any{"platforms": []string{"tvOS"}}, k), 400)
	mustStatus(t, do(t, e, "PATCH", "/api/v1/profiles/"+pid, map[string]any{"min_os_version": "seventeen"}, k), 400)
	mustStatus(t, do(t, e, "PATCH", "/api/v1/profiles/"+pid, map[string]any{}, k), 400)
	mustStatus(t, do(t, e, "PATCH", "/api/v1/profiles/pr_nope", map[string]any{"name": "x"}, k), 404)

	// Delete: the dry run counts, changes nothing; then every device
	// that has it gets RemoveProfile and the profile is gone.
	a = do(t, e, "DELETE", "/api/v1/profiles/"+pid+"?dry_run=true", nil, k)
	mustStatus(t, a, 200)
	if a.json(t)["devices_losing_it"] != 2.0 {
		t.Fatalf("dry run: %s", a.body)
	}
	mustStatus(t, do(t, e, "GET", "/api/v1/profiles/"+pid, nil, k), 200)
	mustStatus(t, do(t, e, "DELETE", "/api/v1/profiles/"+pid, nil, k), 204)
	mustStatus(t, do(t, e, "GET", "/api/v1/profiles/"+pid, nil, k), 404)
	mustStatus(t, do(t, e, "DELETE", "/api/v1/profiles/"+pid, nil, k), 404)
	// While devices still have it, its identifier is not free.
	a = do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString(wifiProfile("v9"))}, k)
	if a.status != 409 || !strings.Contains(string(a.body), "still being removed") {
		t.Fatalf("re-upload while removing: %d %s", a.status, a.body)
	}
	converge(t, all, "deleted profile removed", func() bool {
		for _, d := range all {
			if _, ok := d.InstalledProfile("com.example.wifi"); ok {
				return false
			}
		}
		return true
	})
	if _, ok := phone.InstalledProfile("com.example.named"); !ok {
		t.Fatal("the other profile went too")
	}
	dev = do(t, e, "GET", "/api/v1/devices/"+phone.MDM.EnrollmentID, nil, k).json(t)
	if strings.Contains(fmt.Sprint(dev["profiles"]), "com.example.wifi") {
		t.Fatalf("items left: %v", dev["profiles"])
	}
	// Removed everywhere: the identifier is free again.
	mustStatus(t, do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString(wifiProfile("v9"))}, k), 201)
	// The audit log has the deletion.
	if a := do(t, e, "GET", "/api/v1/audit?action="+url.QueryEscape("DELETE /api/v1/profiles/{id}"), nil, k); !strings.Contains(string(a.body), pid) {
		t.Fatalf("audit: %s", a.body)
	}
}

// The user certificates of profiles name Pomona's CRL and OCSP responder,
// and a revocation — by an admin or by the end of the enrollment — shows
// in both at once.
func TestProfileCertRevocationEndToEnd(t *testing.T) {
	w := newWorldWith(t)
	e := w.e
	k := e.APIKey
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, k), 200)
	assignToAllUsers(t, w, []byte(eapTLSProfile))
	phone1 := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	phone2 := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	ds := []*devicesim.Device{phone1, phone2}
	converge(t, ds, "certificates installed", func() bool {
		for _, d := range ds {
			if p, ok := d.InstalledProfile("com.example.eaptls"); !ok || len(p.Certificates) != 1 {
				return false
			}
		}
		return true
	})
	cert := func(d *devicesim.Device) *x509.Certificate {
		p, _ := d.InstalledProfile("com.example.eaptls")
		return p.Certificates[0]
	}
	c1, c2 := cert(phone1), cert(phone2)
	ca := e.Server.CA.Cert
	if fmt.Sprint(c1.CRLDistributionPoints) != "["+e.URL+"/pki/crl]" || fmt.Sprint(c1.OCSPServer) != "["+e.URL+"/pki/ocsp]" {
		t.Fatalf("CDP %v, AIA OCSP %v", c1.CRLDistributionPoints, c1.OCSPServer)
	}
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := e.Client.Get(e.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	crl := func() *x509.RevocationList {
		t.Helper()
		resp, b := get("/pki/crl")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-crl" {
			t.Fatalf("CRL: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		l, err := x509.ParseRevocationList(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.CheckSignatureFrom(ca); err != nil {
			t.Fatal(err)
		}
		if !l.NextUpdate.After(l.ThisUpdate) {
			t.Fatalf("nextUpdate %v", l.NextUpdate)
		}
		return l
	}
	listed := func(l *x509.RevocationList, c *x509.Certificate) bool {
		for _, r := range l.RevokedCertificateEntries {
			if r.SerialNumber.Cmp(c.SerialNumber) == 0 {
				return true
			}
		}
		return false
	}
	status := func(c *x509.Certificate, useGET bool) int {
		t.Helper()
		req, err := ocsp.CreateRequest(c, ca, nil)
		if err != nil {
			t.Fatal(err)
		}
		var b []byte
		if useGET {
			_, b = get("/pki/ocsp/" + url.PathEscape(base64.StdEncoding.EncodeToString(req)))
		} else {
			resp, err := e.Client.Post(e.URL+"/pki/ocsp", "application/ocsp-request", bytes.NewReader(req))
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		r, err := ocsp.ParseResponseForCert(b, c, ca)
		if err != nil {
			t.Fatal(err)
		}
		return r.Status
	}
	l0 := crl()
	if listed(l0, c1) || listed(l0, c2) || status(c1, false) != ocsp.Good || status(c2, true) != ocsp.Good {
		t.Fatal("valid certificates reported revoked")
	}
	if l := crl(); l.Number.Cmp(l0.Number) != 0 {
		t.Fatalf("the CRL changed without a revocation: %v → %v", l0.Number, l.Number)
	}
	// An admin revokes phone1's certificate.
	mustStatus(t, do(t, e, "POST", fmt.Sprintf("/api/v1/devices/%s/certificates/%x/revoke", phone1.MDM.EnrollmentID, c1.SerialNumber.Bytes()), nil, k), 204)
	l1 := crl()
	if !listed(l1, c1) || listed(l1, c2) || l1.Number.Cmp(l0.Number) <= 0 {
		t.Fatalf("after revocation: number %v → %v, entries %v", l0.Number, l1.Number, l1.RevokedCertificateEntries)
	}
	if status(c1, false) != ocsp.Revoked || status(c1, true) != ocsp.Revoked || status(c2, false) != ocsp.Good {
		t.Fatal("OCSP after revocation")
	}
	// Ending phone2's enrollment revokes its certificate.
	mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+phone2.MDM.EnrollmentID+"/unenroll", map[string]any{"immediately": true}, k), 202)
	if l := crl(); !listed(l, c2) || status(c2, false) != ocsp.Revoked {
		t.Fatal("the ended enrollment's certificate is still good")
	}
	// Another CA's certificate is not answered as good; junk is malformed.
	resp, err := e.Client.Post(e.URL+"/pki/ocsp", "application/ocsp-request", strings.NewReader("junk"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(b, ocsp.MalformedRequestErrorResponse) {
		t.Fatalf("junk: %x", b)
	}
	if resp, b := get("/pki/ca"); resp.StatusCode != 200 || !bytes.Equal(b, ca.Raw) {
		t.Fatalf("CA: %d", resp.StatusCode)
	}
}
