package mdmservice

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// UnrecognizedDevice is Apple's error code that makes an iOS 17+ or
// macOS 14+ device remove its enrollment: the server no longer knows it
// (Apple's ErrorUnrecognizedDevice, the body of a 403:
// https://developer.apple.com/documentation/devicemanagement/errorunrecognizeddevice).
const UnrecognizedDevice = "com.apple.unrecognized.device"

// unrecognized tells the device the server no longer manages it (403 with
// Apple's {"code": "com.apple.unrecognized.device"}); reason is logged.
func unrecognized(format string, args ...any) error {
	return problem.Coded(problem.Forbidden, UnrecognizedDevice, format, args...)
}

// IdentityStore is what resolving a sender reads: one joined read on the
// hot path, the pieces one by one to say precisely why it failed.
type IdentityStore interface {
	store.DeviceRequestStore
	IdentityCert(ctx context.Context, serial string) (*store.IdentityCert, error)
	Enrollment(ctx context.Context, id string) (*store.Enrollment, error)
	// Tombstone tells a deleted user's device it is no longer managed.
	Tombstone(ctx context.Context, serial string) (*store.Tombstone, error)
}

// Identity authenticates requests: the identity certificate (from
// Mdm-Signature, or TLS / a trusted proxy) must come from Pomona's CA and be
// issued to a live enrollment. A revoked certificate or an ended
// enrollment is terminal: every request, Authenticate and CheckOut
// included, is told the device is unknown, and coming back takes a new
// enrollment (new sign-in, new profile).
type Identity struct {
	Store IdentityStore
	CA    *x509.Certificate
	Log   *slog.Logger
	Now   func() time.Time
	// Events, when set, hears "identity-expired".
	Events func(ctx context.Context, e Event)

	once  sync.Once
	ids   *mdm.IdentityChecker
	certs *mdm.CertCache
}

// certCacheGeneration bounds the parsed identity certificates an instance
// keeps: two generations of this many, about 4.6 KB each for a real
// identity (parsed, and the DER as the key), so ~19 MB (190 B per device
// at 100,000 enrolled), and ~28 MB when an attacker fills it with the
// largest certificates it keeps (mdm.MaxCachedCert), and the devices that polled recently (a command round trip is
// two or three signed requests in a row) are parsed once.
const certCacheGeneration = 2048

func (s *Identity) init() {
	s.once.Do(func() {
		s.ids = &mdm.IdentityChecker{CA: s.CA, Max: 200_000}
		s.certs = &mdm.CertCache{Max: certCacheGeneration}
	})
}

func (s *Identity) checker() *mdm.IdentityChecker {
	s.init()
	return s.ids
}

func (s *Identity) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

// Verify returns the request's verified identity certificate. A present
// Mdm-Signature is always verified, even beside a client certificate (TLS
// or a trusted proxy's header): both must then name the same identity, so
// a signature can never be overridden by, or smuggled past, a certificate
// that proves nothing by itself. Errors: Forbidden.
func (s *Identity) Verify(ctx context.Context, r *Request) (*x509.Certificate, error) {
	now := s.now()
	var cert *x509.Certificate
	var err error
	if r.Signature != "" || r.ClientCert == nil {
		s.init()
		cert, err = mdm.VerifyDetachedWith(r.Signature, r.Body, s.certs)
		if err == nil && r.ClientCert != nil && !r.ClientCert.Equal(cert) {
			err = errors.New("the Mdm-Signature signer is not the client certificate")
		}
		if errors.Is(err, mdm.ErrSigningTime) {
			// An expired identity's signing time fails the CMS check first.
			if c := expiredSigner(r.Signature, r.Body); c != nil {
				if perr := s.expiredIdentity(ctx, c, now); perr != nil {
					return nil, perr
				}
			}
		}
	} else {
		cert = r.ClientCert
	}
	if err == nil {
		err = s.checker().Check(cert, now)
		if err != nil {
			if perr := s.expiredIdentity(ctx, cert, now); perr != nil {
				return nil, perr
			}
		}
	}
	if err != nil {
		return nil, problem.New(problem.Forbidden, "%s", err.Error())
	}
	return cert, nil
}

// Admit is the part of Verify that needs no body: the identity the
// request claims (the Mdm-Signature's signer, else the client certificate)
// must be issued by Pomona's CA. The signature itself is not checked
// (Verify does that with the body), nor the validity window (Verify
// explains an expired identity), nor the store. The HTTP handler asks it
// before reading a body larger than a check-in, so that a client without
// an identity of Pomona's makes the server buffer at most that much
// (mdm.MaxResult bodies were read, up to 8 MiB and more in growth, for
// anyone). Errors: Forbidden.
func (s *Identity) Admit(r *Request) error {
	var cert *x509.Certificate
	var err error
	if r.Signature != "" || r.ClientCert == nil {
		s.init()
		cert, err = mdm.DetachedSigner(r.Signature, s.certs)
	} else {
		cert = r.ClientCert
	}
	if err == nil {
		now := s.now()
		if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
			// Rare (an expired identity): not worth remembering.
			if cert.CheckSignatureFrom(s.CA) != nil {
				err = fmt.Errorf("%w: the identity certificate is not from Pomona's CA", mdm.ErrSignature)
			}
		} else {
			err = s.checker().Check(cert, now)
		}
	}
	if err != nil {
		return problem.New(problem.Forbidden, "%s", err.Error())
	}
	return nil
}

// serialHex is the store's key of an identity certificate: its serial in
// lower-case hex (as enroll.SerialHex writes it at issuance).
func serialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// Resolve finds the enrollment cert was issued to, with (in the same
// store read) its user, q's access token and q's channel. The hot path is
// one store round trip; any miss reads the pieces one by one, so that the
// answer says exactly what is wrong. Errors: Forbidden, or Forbidden with
// com.apple.unrecognized.device when the enrollment is revoked, ended or
// deleted.
func (s *Identity) Resolve(ctx context.Context, cert *x509.Certificate, q store.DeviceRequestQuery) (*Device, error) {
	q.Serial = serialHex(cert)
	if dr, err := s.Store.DeviceRequest(ctx, q); err == nil && dr.IdentityCert.RevokedAt.IsZero() && dr.Enrollment.Status != store.EnrollmentUnenrolled {
		u := dr.User
		return &Device{Certificate: cert, IdentityCert: dr.IdentityCert, Enrollment: dr.Enrollment, User: &u, AccessToken: dr.AccessToken, Channel: dr.Channel,
			CommandWaiting: dr.CommandWaiting}, nil
	}
	ic, err := s.Store.IdentityCert(ctx, q.Serial)
	if err != nil {
		// The enrollment may have gone with its user or tenant: its
		// tombstone says so, and com.apple.unrecognized.device makes the
		// device remove its profile (docs/lifecycle.md, "Endings").
		if err := s.tombstoned(ctx, cert); err != nil {
			return nil, err
		}
		return nil, problem.New(problem.Forbidden, "the identity certificate is not one Pomona issued to an enrollment")
	}
	if !ic.RevokedAt.IsZero() {
		return nil, unrecognized("the identity certificate was revoked: %s", ic.RevokedReason)
	}
	enr, err := s.Store.Enrollment(ctx, ic.DeviceID)
	if err != nil {
		return nil, unrecognized("the enrollment of this identity no longer exists")
	}
	if enr.Status == store.EnrollmentUnenrolled {
		return nil, unrecognized("the enrollment was ended")
	}
	return &Device{Certificate: cert, IdentityCert: *ic, Enrollment: *enr}, nil
}

// sameFingerprint reports whether fp is the SHA-256 of cert's DER: the
// tombstone must name this very certificate, not only its serial.
func sameFingerprint(fp []byte, cert *x509.Certificate) bool {
	sum := sha256.Sum256(cert.Raw)
	return bytes.Equal(sum[:], fp)
}

// tombstoned answers com.apple.unrecognized.device when cert's enrollment
// was deleted with its user or tenant (a tombstone names this very
// certificate: serial and SHA-256 fingerprint); nil otherwise. The device
// then removes its profile (docs/lifecycle.md, "Endings").
func (s *Identity) tombstoned(ctx context.Context, cert *x509.Certificate) error {
	ts, err := s.Store.Tombstone(ctx, serialHex(cert))
	if err != nil || !sameFingerprint(ts.SHA256, cert) {
		return nil
	}
	if s.Log != nil {
		s.Log.Info("request from a device whose enrollment was deleted", "device", ts.DeviceID,
			"enrollment_id", ts.AppleEnrollmentID, "user", ts.UserID, "tenant", ts.TenantID, "reason", ts.Reason, "ended", ts.EndedAt)
	}
	return unrecognized("the enrollment was deleted: %s", ts.Reason)
}

// expiredIdentity answers a request signed by an identity certificate
// Pomona issued to an enrollment that is past its NotAfter: a clear 403
// (not the generic "not valid now") and an operator log line with the
// next step. An ending wins over the expiry: when the enrollment was
// deleted (tombstone) or ended, the answer is com.apple.unrecognized.device
// as for a valid certificate, so the device still removes its profile.
// nil when cert is not such a certificate.
func (s *Identity) expiredIdentity(ctx context.Context, cert *x509.Certificate, now time.Time) error {
	if cert == nil || !now.After(cert.NotAfter) || cert.CheckSignatureFrom(s.CA) != nil {
		return nil
	}
	ic, err := s.Store.IdentityCert(ctx, serialHex(cert))
	if err != nil {
		return s.tombstoned(ctx, cert)
	}
	if !sameFingerprint(ic.SHA256, cert) {
		return nil
	}
	enr, err := s.Store.Enrollment(ctx, ic.DeviceID)
	if err != nil {
		return nil
	}
	if !ic.RevokedAt.IsZero() || enr.Status == store.EnrollmentUnenrolled {
		return unrecognized("the enrollment of this expired identity was ended")
	}
	s.Log.Warn("a device's identity certificate expired before it was renewed: the device cannot be managed any more. "+
		"Next step: ask the user to remove the work account (Settings > General > VPN & Device Management) and sign in again; "+
		"GET /api/v1/devices/<device> shows why the renewal did not happen",
		"device", enr.ID, "enrollment_id", enr.AppleEnrollmentID, "user", enr.UserID, "serial", ic.Serial, "expired", cert.NotAfter)
	if s.Events != nil {
		s.Events(ctx, Event{Kind: "identity-expired", Enrollment: enr})
	}
	return problem.New(problem.Forbidden, "%s", fmt.Sprintf("the identity certificate of this enrollment expired on %s before it was renewed; the device must enroll again",
		cert.NotAfter.UTC().Format(time.RFC3339)))
}

// expiredSigner returns the signer of an Mdm-Signature whose only fault is
// its signing time. A device whose identity expired signs with a time
// after the certificate's NotAfter, and the CMS check (mdm.VerifyDetached)
// refuses that before the identity check can say why. The bytes are the
// same unauthenticated ones, so they go through the same bounded parse
// (mdm.VerifyDetachedAnyTime); the caller checks validity with the
// server's clock. nil when the signature does not verify.
func expiredSigner(header string, body []byte) *x509.Certificate {
	c, err := mdm.VerifyDetachedAnyTime(header, body)
	if err != nil {
		return nil
	}
	return c
}
