// Package profile builds the account-driven (BYOD) enrollment profile from
// typed structs marshalled with micromdm/plist, and signs it (CMS). Which
// keys appear follows Apple's account-driven user-enrollment rules: an MDM
// payload with EnrollmentMode BYOD and AssignedManagedAppleID, never
// AccessRights or the legacy ManagedAppleID, a SCEP payload with a one-time
// challenge, and Pomona's CA when the TLS chain needs it.
//
// Apple: "Profile-specific payload keys",
// https://developer.apple.com/documentation/devicemanagement/profile-specific-payload-keys
// (each payload's "Allowed in user enrollment" row), the MDM payload
// https://developer.apple.com/documentation/devicemanagement/mdm and the SCEP payload
// https://developer.apple.com/documentation/devicemanagement/scep; account-driven rules in
// https://developer.apple.com/documentation/devicemanagement/onboarding-users-with-account-driven-enrollment
package profile

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/mdm/catalog"
)

// Common holds the keys every payload has
// (https://developer.apple.com/documentation/devicemanagement/commonpayloadkeys).
type Common struct {
	PayloadType         string `plist:"PayloadType"`
	PayloadVersion      int    `plist:"PayloadVersion"`
	PayloadIdentifier   string `plist:"PayloadIdentifier"`
	PayloadUUID         string `plist:"PayloadUUID"`
	PayloadDisplayName  string `plist:"PayloadDisplayName,omitempty"`
	PayloadDescription  string `plist:"PayloadDescription,omitempty"`
	PayloadOrganization string `plist:"PayloadOrganization,omitempty"`
}

// Configuration is the top level of a profile.
type Configuration struct {
	Common
	PayloadContent []any `plist:"PayloadContent"`
}

// MDM is the com.apple.mdm payload (https://developer.apple.com/documentation/devicemanagement/mdm),
// with the keys a user enrollment allows; ServerCapabilities holds
// capability strings such as CapPerUserConnections.
type MDM struct {
	Common
	IdentityCertificateUUID string   `plist:"IdentityCertificateUUID"`
	Topic                   string   `plist:"Topic"`
	ServerURL               string   `plist:"ServerURL"`
	CheckInURL              string   `plist:"CheckInURL,omitempty"`
	SignMessage             bool     `plist:"SignMessage"`
	CheckOutWhenRemoved     bool     `plist:"CheckOutWhenRemoved"`
	ServerCapabilities      []string `plist:"ServerCapabilities,omitempty"`
	EnrollmentMode          string   `plist:"EnrollmentMode"`
	AssignedManagedAppleID  string   `plist:"AssignedManagedAppleID"`
}

// SCEP is the com.apple.security.scep payload
// (https://developer.apple.com/documentation/devicemanagement/scep).
type SCEP struct {
	Common
	PayloadContent SCEPContent `plist:"PayloadContent"`
}

// SCEPContent is the SCEP payload's settings.
type SCEPContent struct {
	URL              string       `plist:"URL"`
	Name             string       `plist:"Name,omitempty"`
	Subject          [][][]string `plist:"Subject,omitempty"`
	Challenge        string       `plist:"Challenge"`
	Keysize          int          `plist:"Keysize"`
	KeyType          string       `plist:"Key Type"`
	KeyUsage         int          `plist:"Key Usage"`
	Retries          int          `plist:"Retries,omitempty"`
	RetryDelay       int          `plist:"RetryDelay,omitempty"`
	KeyIsExtractable *bool        `plist:"KeyIsExtractable,omitempty"`
}

// Root is a com.apple.security.root payload (a trusted CA certificate).
type Root struct {
	Common
	PayloadCertificateFileName string `plist:"PayloadCertificateFileName,omitempty"`
	PayloadContent             []byte `plist:"PayloadContent"`
}

// Capabilities Pomona advertises in the MDM payload's ServerCapabilities
// (https://developer.apple.com/documentation/devicemanagement/mdm). per-user-connections is what lets a Mac
// open its user channel; it cannot be added later.
const CapPerUserConnections = "com.apple.mdm.per-user-connections"

// CapToken makes the device send GetToken check-ins (Apple: "Get Token";
// Managed Apple Account access needs it). Unlike per-user-connections it
// may be added to an installed profile by re-delivering it.
const CapToken = "com.apple.mdm.token"

// Params personalise the profile for one enrollment.
type Params struct {
	// Identifier is the stable PayloadIdentifier of the profile; the
	// payloads' identifiers derive from it. It must stay the same for an
	// enrollment (RemoveProfile names it).
	Identifier     string
	Organization   string // the tenant's name
	Topic          string // APNs topic of the push certificate
	ServerURL      string
	CheckInURL     string
	SCEPURL        string
	SCEPChallenge  string
	ManagedAppleID string
	Platform       string // catalog.IOS or catalog.MacOS
	// GetToken advertises CapToken (the tenant has an Apple Business
	// Manager server token to answer GetToken with).
	GetToken bool
	// TrustedCA, when set, is installed as a trusted root (needed when the
	// server's TLS certificate comes from Pomona's own CA).
	TrustedCA *x509.Certificate
}

func (p Params) check() error {
	var missing []string
	for name, v := range map[string]string{"Identifier": p.Identifier, "Topic": p.Topic, "ServerURL": p.ServerURL,
		"SCEPURL": p.SCEPURL, "SCEPChallenge": p.SCEPChallenge, "ManagedAppleID": p.ManagedAppleID} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("profile: missing %s", strings.Join(missing, ", "))
	}
	if !strings.HasPrefix(p.ServerURL, "https://") {
		return errors.New("profile: the ServerURL must be https")
	}
	if p.Platform != catalog.IOS && p.Platform != catalog.MacOS {
		return fmt.Errorf("profile: unknown platform %q", p.Platform)
	}
	return nil
}

// NewUUID returns a random upper-case UUID, the form Apple's tools write.
func NewUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// Build returns the profile as an XML plist.
func Build(p Params) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	scepUUID := NewUUID()
	scep := SCEP{
		Common: Common{PayloadType: "com.apple.security.scep", PayloadVersion: 1, PayloadIdentifier: p.Identifier + ".scep",
			PayloadUUID: scepUUID, PayloadDisplayName: "Device management identity"},
		PayloadContent: SCEPContent{
			URL: p.SCEPURL, Name: "Pomona", Challenge: p.SCEPChallenge,
			Subject: [][][]string{{{"O", p.Organization}}, {{"CN", "MDM Identity"}}},
			Keysize: 2048, KeyType: "RSA", KeyUsage: 5, // signing + encryption
			Retries: 3, RetryDelay: 10,
		},
	}
	if p.Platform == catalog.MacOS {
		no := false
		scep.PayloadContent.KeyIsExtractable = &no
	}
	mdm := MDM{
		Common: Common{PayloadType: "com.apple.mdm", PayloadVersion: 1, PayloadIdentifier: p.Identifier + ".mdm",
			PayloadUUID: NewUUID(), PayloadDisplayName: "Device management"},
		IdentityCertificateUUID: scepUUID,
		Topic:                   p.Topic,
		ServerURL:               p.ServerURL,
		CheckInURL:              p.CheckInURL,
		SignMessage:             true,
		CheckOutWhenRemoved:     true,
		ServerCapabilities:      []string{CapPerUserConnections},
		EnrollmentMode:          "BYOD",
		AssignedManagedAppleID:  p.ManagedAppleID,
	}
	if p.GetToken {
		mdm.ServerCapabilities = append(mdm.ServerCapabilities, CapToken)
	}
	content := []any{}
	if p.TrustedCA != nil {
		content = append(content, Root{
			Common: Common{PayloadType: "com.apple.security.root", PayloadVersion: 1, PayloadIdentifier: p.Identifier + ".ca",
				PayloadUUID: NewUUID(), PayloadDisplayName: p.TrustedCA.Subject.CommonName},
			PayloadCertificateFileName: "pomona-ca.cer",
			PayloadContent:             p.TrustedCA.Raw,
		})
	}
	content = append(content, scep, mdm)
	org := p.Organization
	if org == "" {
		org = "Pomona"
	}
	cfg := Configuration{
		Common: Common{PayloadType: "Configuration", PayloadVersion: 1, PayloadIdentifier: p.Identifier, PayloadUUID: NewUUID(),
			PayloadDisplayName: org + " work management", PayloadOrganization: org,
			PayloadDescription: "Lets " + org + " manage work apps, accounts and settings on this device. Your personal data stays private."},
		PayloadContent: content,
	}
	return plist.MarshalIndent(cfg, "\t")
}

// Sign wraps the profile in a CMS SignedData (RFC 5652 §5) signed by cert (SHA-256),
// carrying chain so the device can build the path.
func Sign(profile []byte, cert *x509.Certificate, key crypto.Signer, chain []*x509.Certificate) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(profile)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(cert, key, chain, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("profile: sign: %w", err)
	}
	return sd.Finish()
}
