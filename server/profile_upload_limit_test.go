package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/profile"
)

// bigWifi is wifiProfile with identifier id and a PayloadDescription of pad bytes.
func bigWifi(id string, pad int) []byte {
	p := strings.Replace(string(wifiProfile("v")), "com.example.wifi</string>", id+"</string>", 1)
	return []byte(strings.Replace(p, "<key>PayloadContent</key>", "<key>PayloadDescription</key><string>"+strings.Repeat("a", pad)+"</string><key>PayloadContent</key>", 1))
}

// signedBig signs content with a self-signed certificate carrying an
// extension of ext bytes (to make the CMS large without many elements).
func signedBig(t *testing.T, content []byte, ext int) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v, _ := asn1.Marshal(make([]byte, ext))
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signer"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: v}}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	out, err := profile.Sign(content, c, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// padded is wifiProfile("v") after leading spaces, n bytes in all
// (mobileconfig.Read skips them: only the size is wrong).
func padded(n int) []byte {
	p := wifiProfile("v")
	return append(bytes.Repeat([]byte{' '}, n-len(p)), p...)
}

// signedOf is a CMS-signed profile of n bytes (about: within 16) whose
// signed property list is small.
func signedOf(t *testing.T, n int) []byte {
	b := signedBig(t, bigWifi("com.example.signed", 1000), 0)
	return signedBig(t, bigWifi("com.example.signed", 1000), n-len(b))
}

// TestProfileUploadOverLimitEverySurface: a file over the 2 MiB limit is
// 413 with the limit and what to do, on the API (a new profile, a new
// version) and on the console whatever its size: on the old code the API
// accepted an unsigned file of up to ~2 MiB + 48 KiB (mobileconfig.Read
// skips leading white space, nothing counted the file), refused a signed
// one as "malformed or oversized BER/DER" (422), and its body bound said
// only "request body is larger than 2861740 bytes"; the console refused a
// file over its 4 MiB form bound on an error page ("The form could not be
// read: http: request body too large", 400) instead of the profiles page.
func TestProfileUploadOverLimitEverySurface(t *testing.T) {
	w, clk := consoleWorld(t)
	e := w.e
	a := do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": padded(app.MaxProfileFile)}, e.APIKey)
	mustStatus(t, a, 201)
	id := a.json(t)["id"].(string)
	// A signed profile between 1 and 2 MiB (its property list < 1 MiB) is taken.
	mustStatus(t, do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": signedBig(t, bigWifi("com.example.s1", 1000000), 700000)}, e.APIKey), 201)

	over := map[string][]byte{
		"unsigned, 1 byte over":  padded(app.MaxProfileFile + 1),
		"unsigned, 40 KB over":   padded(app.MaxProfileFile + 40000),
		"signed, 100 bytes over": signedOf(t, app.MaxProfileFile+100),
		"unsigned, 10 MiB":       padded(10 << 20),
	}
	for name, b := range over {
		for _, path := range []string{"/api/v1/profiles", "/api/v1/profiles/" + id + "/versions"} {
			body := map[string]any{"content": b}
			if path == "/api/v1/profiles" {
				body["tenant_id"] = w.tenant
			}
			a := do(t, e, "POST", path, body, e.APIKey)
			if a.status != 413 || !strings.Contains(string(a.body), `"code":"body_too_large"`) || !strings.Contains(string(a.body), "at most 2 MiB (signed) or 1 MiB (unsigned)") {
				t.Errorf("API %s, %s (%d bytes): %d %.300s, want 413 body_too_large naming the 2 MiB limit", path, name, len(b), a.status, a.body)
			}
		}
	}

	// content that is not standard base64 says so, not "malformed JSON".
	for _, c := range []string{"YWJ", "YW=j", "Y-_j", " YWJj"} {
		a := do(t, e, "POST", "/api/v1/profiles", fmt.Sprintf(`{"tenant_id":%q,"content":%q}`, w.tenant, c), e.APIKey)
		if a.status != 400 || !strings.Contains(string(a.body), "not standard base64") {
			t.Errorf("content %q: %d %s, want 400 saying it is not standard base64", c, a.status, a.body)
		}
	}

	u := newConsoleUser(t, w, clk, "owner@ops.example", "owner")
	for _, n := range []int{app.MaxProfileFile + 1, 3 << 20, 5 << 20, 30 << 20} {
		for _, path := range []string{"/console/profiles", "/console/profiles/" + id + "/versions"} {
			back := strings.Replace(path, "/versions", "", 1) + "?tenant=" + w.tenant
			u.get(back)
			code, body := u.postMultipartFrom(e.URL+back, path, map[string]string{"tenant": w.tenant}, map[string][]byte{"file": padded(n)})
			if code != 200 || !strings.Contains(body, "The file is larger than 2 MiB: a configuration profile is at most 2 MiB (signed) or 1 MiB (unsigned).") ||
				!strings.Contains(body, "Configuration profile") && !strings.Contains(body, "Corp Wi-Fi") {
				i := strings.Index(body, "<main")
				t.Errorf("console %s, file of %d bytes: %d, want the page it came from saying it is too large:\n%.600s", path, n, code, body[max(i, 0):])
			}
		}
	}
}
