package app

// The revocation status of the certificates Pomona's CA issues, for
// relying parties outside Pomona (docs/security.md, "Revocation"): the
// CRL every instance serves (the same one: it is stored, numbered, and
// made again only when a revocation was recorded or it is CRLRefresh old)
// and OCSP answers read from the store on every request.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/store"
)

// Revocation serves the CRL and OCSP of Pomona's CA.
type Revocation struct {
	Store store.RevocationStore
	CA    *pki.CA
	Now   func() time.Time

	mu  sync.Mutex
	cur *store.CRLState // this instance's copy of the stored CRL

	signOnce          sync.Once
	signers           chan struct{} // OCSPSigners slots
	ocspMu            sync.Mutex
	ocspCur, ocspPrev map[string]ocspAnswer
}

// crlAttempts bounds the rounds lost to other instances storing a CRL
// first (each loss means a newer CRL exists to read).
const crlAttempts = 5

// CRL returns the current CRL (RFC 5280 §5). Cost per call: one COUNT of
// the revocation records; while it is unchanged and the CRL is younger
// than pki.CRLRefresh, the cached CRL. Otherwise the stored CRL when it is
// current, or a new one with the next CRL number, stored unless another
// instance stored one first (then that one is read and served): every
// instance serves the same CRL, numbers only increase, and a revocation
// shows in the next CRL fetched from any instance.
func (r *Revocation) CRL(ctx context.Context) (*store.CRLState, error) {
	n, err := r.Store.RevokedCount(ctx)
	if err != nil {
		return nil, err
	}
	now := r.Now().UTC().Truncate(time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	if current(r.cur, n, now) {
		return r.cur, nil
	}
	for i := 0; i < crlAttempts; i++ {
		st, err := r.Store.CRL(ctx)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if current(st, n, now) {
			r.cur = st
			return st, nil
		}
		// Read after the count: everything counted is listed.
		list, err := r.Store.RevokedCerts(ctx, now)
		if err != nil {
			return nil, err
		}
		var prev int64
		if st != nil {
			prev = st.Number
		}
		der, err := r.CA.CreateCRL(list, prev+1, now)
		if err != nil {
			return nil, fmt.Errorf("sign the CRL: %w", err)
		}
		c := &store.CRLState{Number: prev + 1, Revoked: n, ThisUpdate: now, NextUpdate: now.Add(pki.CRLValidity), DER: der}
		err = r.Store.PutCRL(ctx, c, prev)
		if errors.Is(err, store.ErrConflict) {
			continue // another instance was first: read its CRL
		}
		if err != nil {
			return nil, err
		}
		r.cur = c
		return c, nil
	}
	return nil, fmt.Errorf("the CRL kept changing under %d attempts", crlAttempts)
}

// current: c reflects n revocations and is younger than CRLRefresh (a
// CRL dated in the future — another instance's clock ahead — counts as
// young: its nextUpdate is still CRLValidity away from its thisUpdate).
func current(c *store.CRLState, n int64, now time.Time) bool {
	return c != nil && c.Revoked >= n && now.Sub(c.ThisUpdate) < pki.CRLRefresh
}

// OCSP answers one DER OCSP request (RFC 6960) from the store's records:
// see pki.CA.RespondOCSP for the answers and the errors.
//
// The responder is public, and every answer is a signature with the CA
// key (~1 ms of CPU for an ECDSA CA, ~14 for RSA-2048, more for RSA-4096),
// so signing is bounded: an answer about a certificate Pomona issued
// (good or revoked) is signed once per serial and status and sent again
// for OCSPReuse (a revocation changes the status, so it shows in the next
// answer at once); only OCSPSigners answers are signed at a time, and a
// request that finds no free signer within OCSPSignWait is answered
// tryLater. A flood of requests (unknown serials are never reused: anyone
// can invent them) then costs at most OCSPSigners cores, not the server.
func (r *Revocation) OCSP(ctx context.Context, req []byte) ([]byte, error) {
	now := r.Now()
	tmpl, err := r.CA.OCSPTemplate(req, func(serial string) (string, *store.RevokedCert, error) {
		return r.Store.CertStatus(ctx, serial)
	}, now)
	if err != nil {
		return nil, err
	}
	// Only serials on record are remembered: their number is bounded by
	// what Pomona issued, so invented serials cannot churn the memory. An
	// answer echoing a request's nonce is for that request alone: signed
	// every time (under the same bound on signers), never remembered.
	key := ""
	if tmpl.Status != ocsp.Unknown && tmpl.Nonce == nil {
		key = fmt.Sprintf("%x/%d/%d/%d", tmpl.SerialNumber, tmpl.Status, tmpl.RevokedAt.Unix(), tmpl.RevocationReason)
		if b := r.ocspCached(key, now); b != nil {
			return b, nil
		}
	}
	r.signOnce.Do(func() { r.signers = make(chan struct{}, OCSPSigners) })
	t := time.NewTimer(OCSPSignWait)
	defer t.Stop()
	select {
	case r.signers <- struct{}{}:
	case <-t.C:
		return nil, &pki.OCSPError{Response: ocsp.TryLaterErrorResponse, Reason: "every OCSP signer is busy"}
	case <-ctx.Done():
		// The client left while waiting (not a server failure to log).
		return nil, &pki.OCSPError{Response: ocsp.TryLaterErrorResponse, Reason: "the client left while every OCSP signer was busy"}
	}
	b, err := r.CA.SignOCSP(tmpl)
	<-r.signers
	if err != nil {
		return nil, err
	}
	if key != "" {
		r.ocspRemember(key, b, tmpl.ThisUpdate)
	}
	return b, nil
}

// Bounds of the OCSP responder's signing (Revocation.OCSP).
const (
	// OCSPReuse: an answer about a certificate on record is sent again
	// while it is younger than this (its nextUpdate is pki.OCSPValidity
	// after its thisUpdate; HTTP caches keep it a minute anyway).
	OCSPReuse = time.Minute
	// OCSPSigners: answers signed at once (one core at most).
	OCSPSigners = 1
	// OCSPSignWait: how long a request waits for a signer before tryLater.
	OCSPSignWait = 250 * time.Millisecond
	// ocspCacheMax bounds each of the two generations of remembered
	// answers (a few hundred bytes each).
	ocspCacheMax = 4096
)

type ocspAnswer struct {
	der []byte
	at  time.Time // its thisUpdate
}

func (r *Revocation) ocspCached(key string, now time.Time) []byte {
	r.ocspMu.Lock()
	defer r.ocspMu.Unlock()
	a, ok := r.ocspCur[key]
	if !ok {
		a, ok = r.ocspPrev[key]
	}
	if !ok || now.Before(a.at) || now.Sub(a.at) >= OCSPReuse {
		return nil
	}
	return a.der
}

func (r *Revocation) ocspRemember(key string, der []byte, at time.Time) {
	r.ocspMu.Lock()
	defer r.ocspMu.Unlock()
	if r.ocspCur == nil || len(r.ocspCur) >= ocspCacheMax {
		r.ocspPrev, r.ocspCur = r.ocspCur, make(map[string]ocspAnswer)
	}
	r.ocspCur[key] = ocspAnswer{der: der, at: at}
}
