package server_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/mdm"
)

// TestAttackLargeMDMBodyNeedsAnIdentity: the check-in and command
// endpoints read a body larger than a check-in (up to mdm.MaxResult,
// 8 MiB) only for a request whose Mdm-Signature (or client certificate)
// names an identity of Pomona's CA; anyone else is answered 403 from the
// headers, before a byte of the body. On the old code every row but the
// last got no answer within 3 s: the server waited to buffer the whole
// body (sixty 8 MiB PUTs without any credential took a server from 35 MB
// to 516 MB of RSS). A real device's large result is still read and
// answered.
func TestAttackLargeMDMBodyNeedsAnIdentity(t *testing.T) {
	w := newWorld(t, true)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")

	// A certificate of its own, signing as a device does.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "en_forged"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := x509.ParseCertificate(der)
	forger := &devicesim.Device{IdentityCert: foreign, IdentityKey: key}
	forgedSig, err := forger.SignMessage([]byte("anything"))
	if err != nil {
		t.Fatal(err)
	}
	// The device's own signature, over other bytes: Admit passes it (it
	// claims a Pomona identity), the full check after the body refuses it.
	deviceSig, err := d.SignMessage([]byte("other bytes"))
	if err != nil {
		t.Fatal(err)
	}

	const big8 = 8 << 20
	for _, tc := range []struct {
		name, path, ct, sig string
		length              int64 // -1: chunked
		code                int
		bodyNeeded          bool // the server reads the body before answering
	}{
		{"command, no credential", "/mdm/connect", "application/x-apple-aspen-mdm", "", big8, 403, false},
		{"command, no credential, chunked", "/mdm/connect", "application/x-apple-aspen-mdm", "", -1, 403, false},
		{"check-in, no credential, above a check-in's bound", "/mdm/checkin", "application/x-apple-aspen-mdm-checkin", "", mdm.MaxCheckin + 1, 403, false},
		{"command, foreign CA's signature", "/mdm/connect", "application/x-apple-aspen-mdm", base64.StdEncoding.EncodeToString(forgedSig), big8, 403, false},
		{"command, garbage signature", "/mdm/connect", "application/x-apple-aspen-mdm", "AAAA", big8, 403, false},
		{"command, the device's signature over other bytes", "/mdm/connect", "application/x-apple-aspen-mdm", base64.StdEncoding.EncodeToString(deviceSig), 1 << 20, 403, true},
	} {
		u, _ := url.Parse(w.e.URL)
		c, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		hdr := "PUT " + tc.path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: " + tc.ct + "\r\n"
		if tc.length < 0 {
			hdr += "Transfer-Encoding: chunked\r\n"
		} else {
			hdr += "Content-Length: " + strconv.FormatInt(tc.length, 10) + "\r\n"
		}
		if tc.sig != "" {
			hdr += "Mdm-Signature: " + tc.sig + "\r\n"
		}
		c.Write([]byte(hdr + "\r\n"))
		if tc.bodyNeeded {
			go c.Write([]byte(strings.Repeat("a", int(tc.length))))
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Errorf("%s: no answer within 3 s: %v", tc.name, err)
		} else {
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.code)
			}
		}
		c.Close()
	}

	// A device's own large result is read and answered as before.
	ctx := context.Background()
	if _, err := d.Poll(ctx, map[string]any{"CommandUUID": "not-queued", "Status": "Acknowledged", "Pad": strings.Repeat("p", 1<<20)}, false); err != nil {
		t.Fatalf("a device's 1 MiB result: %v", err)
	}
}
