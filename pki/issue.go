package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Validity periods of the certificates Pomona issues.
const (
	ProfileSignerValidity = 2 * 365 * 24 * time.Hour
	SCEPRAValidity        = 5 * 365 * 24 * time.Hour
	// IdentityValidity is the lifetime of a device identity certificate;
	// the server renews it before expiry by re-sending the enrollment
	// profile (package renewal; docs/lifecycle.md).
	IdentityValidity = 365 * 24 * time.Hour
	// IdentityBackdate moves an identity certificate's NotBefore this far
	// into the past, so a device whose clock is up to that much slow still
	// finds its new certificate valid and can check in (docs/lifecycle.md,
	// "Clock skew").
	IdentityBackdate = 10 * time.Minute
)

func (ca *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	tmpl.SerialNumber = NewSerial()
	tmpl.SubjectKeyId = keyID(pub)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// IssueProfileSigner issues the certificate that signs enrollment profiles.
func (ca *CA) IssueProfileSigner(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := GenerateKey(RSA2048)
	if err != nil {
		return nil, nil, err
	}
	c, err := ca.issue(&x509.Certificate{
		Subject:   pkix.Name{CommonName: "Pomona profile signing", Organization: []string{"Pomona MDM"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(ProfileSignerValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning, x509.ExtKeyUsageEmailProtection},
	}, key.Public())
	return c, key, err
}

// IssueSCEPRA issues the SCEP registration authority certificate. SCEP
// clients encrypt their request to it, which needs an RSA key whatever the
// CA's own key type.
func (ca *CA) IssueSCEPRA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := GenerateKey(RSA2048)
	if err != nil {
		return nil, nil, err
	}
	c, err := ca.issue(&x509.Certificate{
		Subject:   pkix.Name{CommonName: "Pomona SCEP RA", Organization: []string{"Pomona MDM"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(SCEPRAValidity),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment,
	}, key.Public())
	return c, key, err
}

// IssueIdentity issues a device identity certificate for the public key of
// a CSR whose signature has been checked. The subject is Pomona's, not the
// CSR's: CN names the enrollment.
func (ca *CA) IssueIdentity(csr *x509.CertificateRequest, enrollmentID, org string, now time.Time) (*x509.Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: the CSR signature does not verify: %w", err)
	}
	subj := pkix.Name{CommonName: enrollmentID}
	if org != "" {
		subj.Organization = []string{org}
	}
	return ca.issue(&x509.Certificate{
		Subject:   subj,
		NotBefore: now.Add(-IdentityBackdate), NotAfter: now.Add(IdentityValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, csr.PublicKey)
}

// Issuer is Pomona's CA with the certificates derived from it, as every
// instance loads them from the store.
type Issuer struct {
	CA *CA
	// ProfileSigner signs enrollment profiles.
	ProfileSigner    *x509.Certificate
	ProfileSignerKey crypto.Signer
	// SCEPRA decrypts SCEP requests and signs SCEP answers.
	SCEPRA    *x509.Certificate
	SCEPRAKey crypto.Signer
	// Revocation is put into the user certificates of profiles (not into
	// identity certificates: only Pomona checks those, against its store).
	Revocation RevocationURLs
}

// LoadIssuer loads (creating on first use) the profile signer and SCEP RA
// of ca from the store, re-issuing one that is missing, not from ca, or
// within 30 days of expiry.
func LoadIssuer(ctx context.Context, secrets Secrets, sealer Sealer, ca *CA, now time.Time) (*Issuer, error) {
	is := &Issuer{CA: ca}
	var err error
	is.ProfileSigner, is.ProfileSignerKey, err = leaf(ctx, secrets, sealer, ca, "pki/profile-signer", now, ca.IssueProfileSigner)
	if err != nil {
		return nil, err
	}
	is.SCEPRA, is.SCEPRAKey, err = leaf(ctx, secrets, sealer, ca, "pki/scep-ra", now, ca.IssueSCEPRA)
	if err != nil {
		return nil, err
	}
	return is, nil
}

func leaf(ctx context.Context, secrets Secrets, sealer Sealer, ca *CA, name string, now time.Time,
	issue func(time.Time) (*x509.Certificate, crypto.Signer, error)) (*x509.Certificate, crypto.Signer, error) {
	p, err := loadPair(ctx, secrets, sealer, name)
	if err == nil && p.cert.CheckSignatureFrom(ca.Cert) == nil && now.Add(30*24*time.Hour).Before(p.cert.NotAfter) {
		return p.cert, p.key, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	fresh := err != nil
	cert, key, err := issue(now)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := sealPair(sealer, name, cert, key)
	if err != nil {
		return nil, nil, err
	}
	if fresh {
		// Several instances may start at once: the first one's wins.
		if err := secrets.CreateSecret(ctx, name, sealed); errors.Is(err, store.ErrConflict) {
			p, err := loadPair(ctx, secrets, sealer, name)
			if err != nil {
				return nil, nil, err
			}
			return p.cert, p.key, nil
		} else if err != nil {
			return nil, nil, err
		}
		return cert, key, nil
	}
	if err := secrets.PutSecret(ctx, name, sealed); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}
