package pki

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/pomona-mdm/pomona/store"
)

// withExtensions returns the OCSP request req with exts as its
// requestExtensions ([2] EXPLICIT in TBSRequest), as OpenSSL and
// FreeRADIUS (use_nonce = yes) send them.
func withExtensions(t testing.TB, req []byte, exts ...pkix.Extension) []byte {
	t.Helper()
	var outer struct{ TBS asn1.RawValue }
	if _, err := asn1.Unmarshal(req, &outer); err != nil {
		t.Fatal(err)
	}
	seq, _ := asn1.Marshal(exts)
	field, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: seq})
	tbs, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: append(append([]byte(nil), outer.TBS.Bytes...), field...)})
	out, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: tbs})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// nonceExt is the nonce extension with n octets (DER OCTET STRING inside
// extnValue, RFC 8954 §2.1).
func nonceExt(n int) pkix.Extension {
	v, _ := asn1.Marshal(bytes.Repeat([]byte{0xA5}, n))
	return pkix.Extension{Id: OIDOCSPNonce, Value: v}
}

// responseNonce reads the nonce from a response's responseExtensions.
func responseNonce(t *testing.T, der []byte) []byte {
	t.Helper()
	var outer struct {
		Status   asn1.Enumerated
		Response struct {
			Type  asn1.ObjectIdentifier
			Bytes []byte
		} `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		t.Fatal(err)
	}
	var basic struct {
		TBS struct {
			Version    int `asn1:"optional,default:0,explicit,tag:0"`
			Responder  asn1.RawValue
			ProducedAt time.Time `asn1:"generalized"`
			Responses  []asn1.RawValue
			Exts       []pkix.Extension `asn1:"explicit,tag:1,optional"`
		}
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
		Certs     []asn1.RawValue `asn1:"explicit,tag:0,optional"`
	}
	if _, err := asn1.Unmarshal(outer.Response.Bytes, &basic); err != nil {
		t.Fatal(err)
	}
	for _, e := range basic.TBS.Exts {
		if e.Id.Equal(OIDOCSPNonce) {
			return e.Value
		}
	}
	return nil
}

// TestOCSPNonce: a request's nonce (RFC 6960 §4.4.1) of 1 to 32 octets is
// echoed in the signed response's responseExtensions, for an ECDSA and an
// RSA CA; a longer one up to 128 is answered without it; an empty or
// longer one, or two nonces, is malformedRequest (RFC 8954 §2.1). Other
// request extensions are ignored.
func TestOCSPNonce(t *testing.T) {
	now := time.Now()
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		ca, _ := NewCA("Test CA", kt, now)
		c := userCert(t, ca, RevocationURLs{}, now)
		plain, err := ocsp.CreateRequest(c, ca.Cert, nil)
		if err != nil {
			t.Fatal(err)
		}
		good := func(string) (string, *store.RevokedCert, error) { return store.CertGood, nil, nil }
		for _, n := range []int{1, 16, 32} {
			ext := nonceExt(n)
			der, err := ca.RespondOCSP(withExtensions(t, plain, ext), good, now)
			if err != nil {
				t.Fatalf("%v, %d octets: %v", kt, n, err)
			}
			r, err := ocsp.ParseResponseForCert(der, c, ca.Cert) // checks the signature over the extended ResponseData
			if err != nil || r.Status != ocsp.Good {
				t.Fatalf("%v, %d octets: %+v %v", kt, n, r, err)
			}
			if got := responseNonce(t, der); !bytes.Equal(got, ext.Value) {
				t.Fatalf("%v, %d octets: nonce echoed %x, want %x", kt, n, got, ext.Value)
			}
		}
		for name, req := range map[string][]byte{
			"no extension":    plain,
			"33 octets":       withExtensions(t, plain, nonceExt(33)),
			"128 octets":      withExtensions(t, plain, nonceExt(128)),
			"other extension": withExtensions(t, plain, pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 4}, Value: []byte{5, 0}}),
		} {
			der, err := ca.RespondOCSP(req, good, now)
			if err != nil {
				t.Fatalf("%v, %s: %v", kt, name, err)
			}
			if _, err := ocsp.ParseResponseForCert(der, c, ca.Cert); err != nil {
				t.Fatalf("%v, %s: %v", kt, name, err)
			}
			if got := responseNonce(t, der); got != nil {
				t.Fatalf("%v, %s: a nonce was echoed: %x", kt, name, got)
			}
		}
		for name, req := range map[string][]byte{
			"empty nonce": withExtensions(t, plain, nonceExt(0)),
			"129 octets":  withExtensions(t, plain, nonceExt(129)),
			"twice":       withExtensions(t, plain, nonceExt(16), nonceExt(16)),
		} {
			var oe *OCSPError
			if _, err := ca.RespondOCSP(req, good, now); !errors.As(err, &oe) || !bytes.Equal(oe.Response, ocsp.MalformedRequestErrorResponse) {
				t.Fatalf("%v, %s: %v, want malformedRequest", kt, name, err)
			}
		}
	}
}

// TestOCSPNonceOpenSSL: OpenSSL's client (which sends a nonce by default
// and checks it, as FreeRADIUS with use_nonce = yes does) verifies the
// answer and its nonce. Skipped without openssl.
func TestOCSPNonceOpenSSL(t *testing.T) {
	exe, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	now := time.Now()
	ca, _ := NewCA("Test CA", ECDSAP256, now)
	c := userCert(t, ca, RevocationURLs{}, now)
	dir := t.TempDir()
	pemFile := func(name string, der []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
		return p
	}
	caPEM, certPEM := pemFile("ca.pem", ca.Cert.Raw), pemFile("cert.pem", c.Raw)
	reqFile, respFile := filepath.Join(dir, "req.der"), filepath.Join(dir, "resp.der")
	if out, err := exec.Command(exe, "ocsp", "-issuer", caPEM, "-cert", certPEM, "-reqout", reqFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl request: %v %s", err, out)
	}
	req, _ := os.ReadFile(reqFile)
	der, err := ca.RespondOCSP(req, func(string) (string, *store.RevokedCert, error) { return store.CertGood, nil, nil }, now)
	if err != nil {
		t.Fatal(err)
	}
	if responseNonce(t, der) == nil {
		t.Fatal("OpenSSL's nonce was not echoed")
	}
	os.WriteFile(respFile, der, 0o600)
	// (Without -cert: with it, openssl makes a new request with a new nonce.)
	out, err := exec.Command(exe, "ocsp", "-reqin", reqFile, "-respin", respFile, "-CAfile", caPEM, "-VAfile", caPEM).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Response verify OK") || strings.Contains(strings.ToLower(string(out)), "nonce") {
		text, _ := exec.Command(exe, "ocsp", "-respin", respFile, "-resp_text", "-noverify").CombinedOutput()
		t.Fatalf("openssl: %v\n%s\n%s", err, out, text)
	}
}
