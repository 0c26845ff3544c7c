package mdmservice

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

// expiredIdentity answers a request signed by an identity certificate
// Pomona issued to an enrollment that is past its NotAfter: a clear 403
// (not the generic "not valid now") and an operator log line with the
// next step. An ending wins over the expiry: when the enrollment was
// deleted (tombstone) or ended, the answer is com.apple.unrecognized.device
// as for a valid certificate, so the device still removes its profile. nil
// when cert is not such a certificate.
func (s *Service) expiredIdentity(ctx context.Context, cert *x509.Certificate, now time.Time) *Response {
	if cert == nil || !now.After(cert.NotAfter) || cert.CheckSignatureFrom(s.CA) != nil {
		return nil
	}
	ic, err := s.Store.IdentityCert(ctx, enroll.SerialHex(cert))
	if err != nil {
		return s.tombstoned(ctx, cert)
	}
	if sum := sha256.Sum256(cert.Raw); !bytes.Equal(sum[:], ic.SHA256) {
		return nil
	}
	enr, err := s.Store.Enrollment(ctx, ic.EnrollmentID)
	if err != nil {
		return nil
	}
	if !ic.RevokedAt.IsZero() || enr.Status == store.EnrollmentUnenrolled {
		resp := unrecognized("the enrollment of this expired identity was ended")
		return &resp
	}
	s.Log.Warn("a device's identity certificate expired before it was renewed: the device cannot be managed any more. "+
		"Next step: ask the user to remove the work account (Settings > General > VPN & Device Management) and sign in again; "+
		"GET /api/v1/devices/<device> shows why the renewal did not happen",
		"device", enr.ID, "enrollment_id", enr.AppleEnrollmentID, "user", enr.UserID, "serial", ic.Serial, "expired", cert.NotAfter)
	s.emit(ctx, Event{Kind: "identity-expired", Enrollment: enr})
	resp := plain(http.StatusForbidden, fmt.Sprintf("the identity certificate of this enrollment expired on %s before it was renewed; the device must enroll again",
		cert.NotAfter.UTC().Format(time.RFC3339)))
	return &resp
}

// unknownResult takes a result for a CommandUUID that was never queued for
// this channel: it is acknowledged (the caller answers 200 with the next
// command) so the device stops resending it, logged and counted — never
// stored against another command.
func (s *Service) unknownResult(ctx context.Context, enr *store.Enrollment, channel string, res *mdm.Result) {
	s.Log.Warn("MDM result for a command never queued for this channel: acknowledged and dropped",
		"device", enr.ID, "channel", channel, "command_uuid", res.CommandUUID, "status", res.Status, "request_type", res.RequestType)
	s.emit(ctx, Event{Kind: "unknown-result", Enrollment: enr, ChannelID: channel, CommandUUID: res.CommandUUID, Status: res.Status,
		RequestType: res.RequestType})
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

// tombstoned answers com.apple.unrecognized.device when cert's enrollment
// was deleted with its user or tenant (a tombstone names this very
// certificate: serial and SHA-256 fingerprint); nil otherwise. The device
// then removes its profile (docs/lifecycle.md, "Endings").
func (s *Service) tombstoned(ctx context.Context, cert *x509.Certificate) *Response {
	ts, err := s.Store.Tombstone(ctx, enroll.SerialHex(cert))
	if err != nil || !sameFingerprint(ts.SHA256, cert) {
		return nil
	}
	if s.Log != nil {
		s.Log.Info("request from a device whose enrollment was deleted", "enrollment", ts.EnrollmentID,
			"enrollment_id", ts.AppleEnrollmentID, "user", ts.UserID, "tenant", ts.TenantID, "reason", ts.Reason, "ended", ts.EndedAt)
	}
	resp := unrecognized("the enrollment was deleted: " + ts.Reason)
	return &resp
}
