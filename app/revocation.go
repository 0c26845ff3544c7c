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
func (r *Revocation) OCSP(ctx context.Context, req []byte) ([]byte, error) {
	return r.CA.RespondOCSP(req, func(serial string) (string, *store.RevokedCert, error) {
		return r.Store.CertStatus(ctx, serial)
	}, r.Now())
}
