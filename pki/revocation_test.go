package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/pomona-mdm/pomona/store"
)

func userCert(t testing.TB, ca *CA, rev RevocationURLs, now time.Time) *x509.Certificate {
	t.Helper()
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "someone else"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	c, err := ca.IssueUser(csr, "alice@a.example", "A", rev, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestUserCertCarriesRevocationURLs(t *testing.T) {
	now := time.Now()
	ca, _ := NewCA("Test CA", ECDSAP256, now)
	c := userCert(t, ca, RevocationURLs{CRL: "https://mdm.example/pki/crl", OCSP: "https://mdm.example/pki/ocsp"}, now)
	if len(c.CRLDistributionPoints) != 1 || c.CRLDistributionPoints[0] != "https://mdm.example/pki/crl" ||
		len(c.OCSPServer) != 1 || c.OCSPServer[0] != "https://mdm.example/pki/ocsp" {
		t.Fatalf("CDP %v, OCSP %v", c.CRLDistributionPoints, c.OCSPServer)
	}
	if c := userCert(t, ca, RevocationURLs{}, now); len(c.CRLDistributionPoints) != 0 || len(c.OCSPServer) != 0 {
		t.Fatal("extensions without URLs")
	}
}

func TestCreateCRL(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		ca, _ := NewCA("Test CA", kt, now)
		c := userCert(t, ca, RevocationURLs{}, now)
		der, err := ca.CreateCRL([]store.RevokedCert{
			{Serial: SerialHex(c), RevokedAt: now.Add(-time.Minute), Reason: 5},
			{Serial: "not hex", RevokedAt: now},
		}, 7, now)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := crl.CheckSignatureFrom(ca.Cert); err != nil {
			t.Fatal(err)
		}
		if crl.Number.Int64() != 7 || !crl.ThisUpdate.Equal(now) || !crl.NextUpdate.Equal(now.Add(CRLValidity)) {
			t.Fatalf("number %v, %v – %v", crl.Number, crl.ThisUpdate, crl.NextUpdate)
		}
		if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(c.SerialNumber) != 0 ||
			crl.RevokedCertificateEntries[0].ReasonCode != 5 || !crl.RevokedCertificateEntries[0].RevocationTime.Equal(now.Add(-time.Minute)) {
			t.Fatalf("entries: %+v", crl.RevokedCertificateEntries)
		}
	}
}

func TestRespondOCSP(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	ca, _ := NewCA("Test CA", ECDSAP256, now)
	other, _ := NewCA("Other CA", ECDSAP256, now)
	good, revoked, unknown := userCert(t, ca, RevocationURLs{}, now), userCert(t, ca, RevocationURLs{}, now), userCert(t, ca, RevocationURLs{}, now)
	lookup := func(serial string) (string, *store.RevokedCert, error) {
		switch serial {
		case SerialHex(good):
			return store.CertGood, nil, nil
		case SerialHex(revoked):
			return store.CertRevoked, &store.RevokedCert{Serial: serial, RevokedAt: now.Add(-time.Hour), Reason: 1}, nil
		}
		return store.CertUnknown, nil, nil
	}
	for _, tc := range []struct {
		name   string
		cert   *x509.Certificate
		hash   crypto.Hash
		status int
	}{
		{"good", good, crypto.SHA1, ocsp.Good},
		{"good sha256", good, crypto.SHA256, ocsp.Good},
		{"revoked", revoked, crypto.SHA1, ocsp.Revoked},
		{"unknown", unknown, crypto.SHA1, ocsp.Unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ocsp.CreateRequest(tc.cert, ca.Cert, &ocsp.RequestOptions{Hash: tc.hash})
			if err != nil {
				t.Fatal(err)
			}
			der, err := ca.RespondOCSP(req, lookup, now)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := ocsp.ParseResponseForCert(der, tc.cert, ca.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status || !resp.ThisUpdate.Equal(now) || !resp.NextUpdate.Equal(now.Add(OCSPValidity)) {
				t.Fatalf("status %d, %v – %v", resp.Status, resp.ThisUpdate, resp.NextUpdate)
			}
			if tc.status == ocsp.Revoked && (!resp.RevokedAt.Equal(now.Add(-time.Hour)) || resp.RevocationReason != 1) {
				t.Fatalf("revoked at %v reason %d", resp.RevokedAt, resp.RevocationReason)
			}
		})
	}
	// Another issuer's certificate: unauthorized, without a lookup.
	foreign := userCert(t, other, RevocationURLs{}, now)
	req, _ := ocsp.CreateRequest(foreign, other.Cert, nil)
	_, err := ca.RespondOCSP(req, func(string) (string, *store.RevokedCert, error) { t.Fatal("looked up"); return "", nil, nil }, now)
	var oe *OCSPError
	if !errors.As(err, &oe) || string(oe.Response) != string(ocsp.UnauthorizedErrorResponse) {
		t.Fatalf("foreign issuer: %v", err)
	}
	// Malformed and oversized requests.
	for _, bad := range [][]byte{nil, []byte("junk"), make([]byte, MaxOCSPRequest+1)} {
		if _, err := ca.RespondOCSP(bad, lookup, now); !errors.As(err, &oe) || string(oe.Response) != string(ocsp.MalformedRequestErrorResponse) {
			t.Fatalf("%d bytes: %v", len(bad), err)
		}
	}
	// A store failure is the caller's (tryLater), not an answer.
	boom := errors.New("db down")
	req, _ = ocsp.CreateRequest(good, ca.Cert, nil)
	if _, err := ca.RespondOCSP(req, func(string) (string, *store.RevokedCert, error) { return "", nil, boom }, now); !errors.Is(err, boom) {
		t.Fatalf("lookup error: %v", err)
	}
}

// FuzzRespondOCSP: whatever the bytes, RespondOCSP answers an error
// response or a response that parses and names the request's serial.
func FuzzRespondOCSP(f *testing.F) {
	now := time.Now()
	ca, _ := NewCA("Test CA", ECDSAP256, now)
	c := userCert(f, ca, RevocationURLs{}, now)
	req, _ := ocsp.CreateRequest(c, ca.Cert, nil)
	f.Add(req)
	f.Add([]byte{0x30, 0x03, 0x30, 0x01, 0x00})
	f.Add([]byte("junk"))
	// Hostile nonces (RFC 8954): nested OCTET STRINGs, bare octets,
	// repeated, oversized, inside a critical extension.
	nested, _ := asn1.Marshal(bytes.Repeat([]byte{0x04, 0x02, 0x04, 0x00}, 8))
	twice, _ := asn1.Marshal(nested)
	for _, exts := range [][]pkix.Extension{
		{nonceExt(16)},
		{{Id: OIDOCSPNonce, Value: twice}},
		{{Id: OIDOCSPNonce, Value: []byte{1, 2, 3}}},
		{{Id: OIDOCSPNonce, Critical: true, Value: []byte{0x04, 0x80}}},
		{nonceExt(16), nonceExt(16)},
		{nonceExt(4000)},
	} {
		f.Add(withExtensions(f, req, exts...))
	}
	lookup := func(string) (string, *store.RevokedCert, error) { return store.CertGood, nil, nil }
	f.Fuzz(func(t *testing.T, in []byte) {
		der, err := ca.RespondOCSP(in, lookup, now)
		var oe *OCSPError
		if errors.As(err, &oe) {
			if len(oe.Response) == 0 {
				t.Fatal("an error without a response")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		r, _ := ocsp.ParseRequest(in)
		resp, err := ocsp.ParseResponse(der, ca.Cert)
		if err != nil {
			t.Fatal(err)
		}
		if resp.SerialNumber.Cmp(r.SerialNumber) != 0 {
			t.Fatalf("answered %v for %v", resp.SerialNumber, r.SerialNumber)
		}
	})
}

func BenchmarkRespondOCSP(b *testing.B) {
	now := time.Now()
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		ca, _ := NewCA("Test CA", kt, now)
		c := userCert(b, ca, RevocationURLs{}, now)
		req, _ := ocsp.CreateRequest(c, ca.Cert, nil)
		lookup := func(string) (string, *store.RevokedCert, error) { return store.CertGood, nil, nil }
		b.Run(string(kt), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := ca.RespondOCSP(req, lookup, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCreateCRL10k: a CRL of 10,000 revoked certificates.
func BenchmarkCreateCRL10k(b *testing.B) {
	now := time.Now()
	ca, _ := NewCA("Test CA", ECDSAP256, now)
	rs := make([]store.RevokedCert, 10000)
	for i := range rs {
		rs[i] = store.RevokedCert{Serial: SerialHex(&x509.Certificate{SerialNumber: NewSerial()}), RevokedAt: now}
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ca.CreateCRL(rs, int64(i+1), now); err != nil {
			b.Fatal(err)
		}
	}
}
