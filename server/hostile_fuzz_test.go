package server_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

// Fuzz targets at the HTTP level: each input goes through the real
// handlers of a fully wired server (testenv) on a loopback listener. An
// input fails the target when the request errors (the server crashed or
// hung up), gets a 5xx, takes longer than fuzzLimit or makes the process
// allocate more than fuzzAlloc while it runs (untrustedtest.Bounded).
// .ci/run runs each for a fixed number of executions.
const (
	fuzzLimit = 2 * time.Second // the hostile inputs of issue 11 took 15–24 s
	fuzzAlloc = 64 << 20
)

func fuzzSend(t *testing.T, h *hostileTarget, in hostileInput) {
	var status int
	var answer string
	var err error
	untrustedtest.Bounded(t, fuzzLimit, fuzzAlloc, func() { status, answer, err = h.send(in) })
	if err != nil || status >= 500 {
		t.Fatalf("%s: status %d, err %v: %.200s", in.ep, status, err, answer)
	}
}

func realCaptures(f *testing.F) [][]byte {
	files, _ := filepath.Glob("../mdm/testdata/*.plist")
	var out [][]byte
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		f.Fatal("no captures")
	}
	return out
}

func hostileSeeds(f *testing.F) [][]byte {
	out := [][]byte{untrustedtest.Read(f, untrustedtest.NestedBER)}
	for _, n := range untrustedtest.BinaryPlists {
		out = append(out, untrustedtest.Read(f, n))
	}
	return out
}

// FuzzEnrollHTTP: the unauthenticated enrollment POST body.
func FuzzEnrollHTTP(f *testing.F) {
	real, err := os.ReadFile("../enroll/testdata/iphone12-1-ios15.7-enroll-body.p7s")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add([]byte(`<?xml version="1.0"?><plist version="1.0"><dict><key>PRODUCT</key><string>Mac14,2</string></dict></plist>`))
	for _, b := range hostileSeeds(f) {
		f.Add(b)
	}
	h := newHostileTarget(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzSend(t, h, hostileInput{ep: epEnroll, body: body})
	})
}

// FuzzMDMHTTP: the check-in and connect endpoints, body and Mdm-Signature.
// With signBody the enrolled device signs the body, so it reaches the
// plist decoder; otherwise sig is sent as the Mdm-Signature.
func FuzzMDMHTTP(f *testing.F) {
	for _, b := range realCaptures(f) {
		f.Add(false, b, []byte(nil), true)
		f.Add(true, b, []byte(nil), true)
	}
	for _, b := range hostileSeeds(f) {
		f.Add(false, b, []byte(nil), true)
		f.Add(true, []byte("<plist/>"), b, false)
	}
	h := newHostileTarget(f)
	f.Fuzz(func(t *testing.T, connect bool, body, sig []byte, signBody bool) {
		ep := epCheckin
		if connect {
			ep = epConnect
		}
		fuzzSend(t, h, hostileInput{ep: ep, body: body, sig: sig, signBody: signBody})
	})
}

// FuzzSCEPHTTP: the unauthenticated SCEP PKIOperation body.
func FuzzSCEPHTTP(f *testing.F) {
	for _, b := range hostileSeeds(f) {
		f.Add(b)
		f.Add(untrustedtest.SCEPWithContent(f, b, 1, pkcs7.OIDDigestAlgorithmSHA256))
	}
	f.Add(untrustedtest.SCEPWithContent(f, []byte{0x30, 0x03, 0x02, 0x01, 0x00}, 1, pkcs7.OIDDigestAlgorithmSHA1))
	h := newHostileTarget(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzSend(t, h, hostileInput{ep: epSCEP, body: body})
	})
}

// FuzzAdminPlistHTTP: the admin API's raw command plist (the console's
// raw-plist field goes through the same app.Commands.Build).
func FuzzAdminPlistHTTP(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>RequestType</key><string>DeviceInformation</string><key>Queries</key><array><string>OSVersion</string></array></dict></plist>`))
	f.Add([]byte(`<plist version="1.0"><dict><key>CommandUUID</key><string>x</string><key>Command</key><dict><key>RequestType</key><string>ProfileList</string></dict></dict></plist>`))
	for _, b := range hostileSeeds(f) {
		f.Add(b)
	}
	h := newHostileTarget(f)
	f.Fuzz(func(t *testing.T, plist []byte) {
		if len(plist) == 0 {
			return // the API refuses an empty plist field before decoding
		}
		fuzzSend(t, h, hostileInput{ep: epAdmin, body: plist})
	})
}
