package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"time"
)

// UserValidity is how long a user certificate from a profile's SCEP
// payload is valid; the reconciler's periodic reinstall is not tied to it
// (a new challenge comes with every new version of the profile).
const UserValidity = 365 * 24 * time.Hour

// IssueUser issues a user certificate for a profile's SCEP payload (Wi-Fi
// EAP-TLS, VPN, S/MIME): the subject and the rfc822Name SAN are the
// user's email — whatever the CSR asks for, so a device cannot obtain a
// certificate in another person's name — with the tenant as organisation;
// client authentication and e-mail protection (RFC 5280 §4.2.1.12). The
// CSR's own signature must verify (proof of possession). rev, when set,
// puts the CRL distribution point and the OCSP responder (AIA) into the
// certificate, so a relying party (a RADIUS server, a mail client) can
// learn its revocation.
func (ca *CA) IssueUser(csr *x509.CertificateRequest, email, org string, rev RevocationURLs, now time.Time) (*x509.Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: the CSR signature does not verify: %w", err)
	}
	if email == "" {
		return nil, fmt.Errorf("pki: a user certificate needs the user's email")
	}
	subj := pkix.Name{CommonName: email}
	if org != "" {
		subj.Organization = []string{org}
	}
	tmpl := &x509.Certificate{
		Subject:        subj,
		EmailAddresses: []string{email},
		NotBefore:      now.Add(-IdentityBackdate), NotAfter: now.Add(UserValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection},
	}
	if rev.CRL != "" {
		tmpl.CRLDistributionPoints = []string{rev.CRL}
	}
	if rev.OCSP != "" {
		tmpl.OCSPServer = []string{rev.OCSP}
	}
	return ca.issue(tmpl, csr.PublicKey)
}
