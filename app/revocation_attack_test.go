package app

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/store"
)

// fakeRevocations: serial "0a" is good, "0b" revoked, the rest unknown.
type fakeRevocations struct {
	store.RevocationStore
	mu      sync.Mutex
	revoked bool // "0a" revoked too
}

func (f *fakeRevocations) CertStatus(_ context.Context, serial string) (string, *store.RevokedCert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case serial == "0b" || (serial == "0a" && f.revoked):
		return store.CertRevoked, &store.RevokedCert{Serial: serial, RevokedAt: time.Unix(1700000000, 0), Reason: 5}, nil
	case serial == "0a":
		return store.CertGood, nil, nil
	}
	return store.CertUnknown, nil, nil
}

// countingSigner counts signatures and, while gate is set, blocks in Sign.
type countingSigner struct {
	crypto.Signer
	n    atomic.Int64
	gate chan struct{}
	in   chan struct{}
}

func (s *countingSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	s.n.Add(1)
	if s.gate != nil {
		s.in <- struct{}{}
		<-s.gate
	}
	return s.Signer.Sign(r, d, o)
}

func ocspReq(t *testing.T, ca *pki.CA, serial int64) []byte {
	t.Helper()
	// A throwaway certificate only to name the serial and the issuer.
	leaf := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "x"}}
	req, err := ocsp.CreateRequest(leaf, ca.Cert, &ocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// Attack: every OCSP answer was a fresh signature with the CA key, for
// anyone, without bound. Answers about certificates on record are now
// signed once per status (a revocation still shows at once), and signing
// is bounded: a flood waits at most OCSPSignWait and gets tryLater.
func TestAttackOCSPSigningIsBounded(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA("Test CA", pki.ECDSAP256, now)
	if err != nil {
		t.Fatal(err)
	}
	signer := &countingSigner{Signer: ca.Key}
	ca.Key = signer
	st := &fakeRevocations{}
	clock := now
	r := &Revocation{Store: st, CA: ca, Now: func() time.Time { return clock }}
	ctx := context.Background()
	status := func(serial int64) int {
		t.Helper()
		der, err := r.OCSP(ctx, ocspReq(t, ca, serial))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ocsp.ParseResponseForCert(der, &x509.Certificate{SerialNumber: big.NewInt(serial)}, ca.Cert)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Status
	}
	for i := 0; i < 100; i++ {
		if s := status(10); s != ocsp.Good {
			t.Fatalf("status %d", s)
		}
	}
	if n := signer.n.Load(); n != 1 {
		t.Fatalf("100 identical OCSP requests about a good certificate made %d signatures, want 1", n)
	}
	// A revocation shows in the very next answer.
	st.mu.Lock()
	st.revoked = true
	st.mu.Unlock()
	if s := status(10); s != ocsp.Revoked {
		t.Fatalf("after the revocation: status %d", s)
	}
	// After OCSPReuse the answer is signed anew.
	clock = clock.Add(OCSPReuse)
	before := signer.n.Load()
	status(10)
	if signer.n.Load() != before+1 {
		t.Fatal("an answer older than OCSPReuse was sent again")
	}
	// Invented serials are never remembered (they would churn the memory).
	status(999)
	status(999)
	if signer.n.Load() != before+3 {
		t.Fatalf("unknown serials: %d signatures, want 2", signer.n.Load()-before-1)
	}

	// Bounded signing: while OCSPSigners signatures are under way, a
	// further request is answered tryLater after OCSPSignWait.
	signer.gate, signer.in = make(chan struct{}), make(chan struct{}, OCSPSigners)
	var wg sync.WaitGroup
	for i := 0; i < OCSPSigners; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r.OCSP(ctx, ocspReq(t, ca, int64(2000+i)))
		}(i)
		<-signer.in
	}
	start := time.Now()
	_, err = r.OCSP(ctx, ocspReq(t, ca, 3000))
	var oe *pki.OCSPError
	if !errors.As(err, &oe) || string(oe.Response) != string(ocsp.TryLaterErrorResponse) {
		t.Fatalf("with every signer busy: %v, want tryLater", err)
	}
	if d := time.Since(start); d > 5*OCSPSignWait {
		t.Fatalf("waited %v", d)
	}
	close(signer.gate)
	wg.Wait()
}
