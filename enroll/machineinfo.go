// Package enroll is the enrollment of account-driven User Enrollment.
// Its protocol logic is pure (machineinfo.go: reading the device's signed
// machine-info plist, deciding the device's platform, the WWW-Authenticate
// and error answers Apple's flow expects; no I/O). Service (service.go,
// renewal.go) does the enrollment's storage and issuance: the pending
// enrollment and its one-time SCEP challenge, the signed enrollment
// profile, SCEP issuance and the re-sent profile of a renewal.
// See https://developer.apple.com/documentation/devicemanagement/onboarding-users-with-account-driven-enrollment
package enroll

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/untrusted"
)

// MaxBody bounds the enrollment POST body; real ones are a few KiB.
const MaxBody = 64 << 10

// Limits of the enrollment body, enforced by package untrusted before
// smallstep/pkcs7 or micromdm/plist see it. An iPhone's body (BER with
// indefinite lengths, 4 certificates) is 3.4 KiB, 10 levels deep, 288 elements.
var (
	bodyASN1  = untrusted.ASN1Limits{MaxSize: MaxBody, MaxDepth: 32, MaxElements: 4096}
	bodyPlist = untrusted.PlistLimits{MaxSize: MaxBody, MaxDepth: 8, MaxElements: 1000}
	// bodyDigests are what devices sign the machine info with (the
	// captured iPhone body uses SHA-1).
	bodyDigests = []asn1.ObjectIdentifier{untrusted.SHA1, untrusted.SHA256}
)

// MachineInfo is the content of the device's signed plist. Hardware
// identifiers that user enrollment forbids (UDID, SERIAL, IMEI, MEID) are
// never kept, even if a device sent them.
type MachineInfo struct {
	Language                    string `plist:"LANGUAGE,omitempty"`
	Product                     string `plist:"PRODUCT,omitempty"`
	Version                     string `plist:"VERSION,omitempty"` // build, e.g. 22C152
	OSVersion                   string `plist:"OS_VERSION,omitempty"`
	SupplementalBuildVersion    string `plist:"SUPPLEMENTAL_BUILD_VERSION,omitempty"`
	SupplementalOSVersionExtra  string `plist:"SUPPLEMENTAL_OS_VERSION_EXTRA,omitempty"`
	MDMCanRequestSoftwareUpdate bool   `plist:"MDM_CAN_REQUEST_SOFTWARE_UPDATE,omitempty"`
}

// Signature results of the advisory device-signature check.
const (
	SigApple    = "apple"    // signed by a device identity that chains to Apple's iPhone CA
	SigOther    = "other"    // a valid CMS signature by a certificate that is not Apple's
	SigInvalid  = "invalid"  // CMS that does not verify
	SigUnsigned = "unsigned" // a bare plist
)

// Parsed is what the enrollment endpoint learns from the body.
type Parsed struct {
	Info MachineInfo
	// Signature is one of the Sig* values. It is advisory: the signed blob
	// is not proof of anything (it can be replayed), so it is recorded and
	// logged, never used to grant access.
	Signature string
	// SignatureDetail explains Signature for the log.
	SignatureDetail string
}

// appleIPhoneCA pins "Apple iPhone Certification Authority" (the CA above
// "Apple iPhone Device CA") by the SHA-256 of its certificate. Apple's
// device chains carry it; its validity period ended in 2022 and Apple's
// chains use SHA-1, so the chain is checked by signature only.
var appleIPhoneCA = mustHex("e4e2936d3c076ec4aea8ac3727752495 0ca005894b39bba2d347fa33155ae5fa")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// ErrBody is returned for a body that is neither a CMS-signed plist nor a
// plist.
var ErrBody = errors.New("the request body is not a signed machine-info property list")

// ParseBody reads the enrollment POST body whatever its Content-Type (iOS
// 15 sent form-urlencoded): CMS SignedData (RFC 5652 §5; DER or, as real
// iPhones send it, BER with indefinite lengths) with an XML plist inside,
// or, from tools, a bare XML plist. Binary plists are refused. Both layers
// are decoded by package untrusted within bodyASN1 and bodyPlist. Errors
// wrap ErrBody; either layer over MaxBody bytes is refused. Apple: the
// device's POST to the BaseURL that discovery named
// (https://developer.apple.com/documentation/devicemanagement/implementing-the-simple-authentication-account-driven-enrollment-flow).
func ParseBody(body []byte) (*Parsed, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: the body is empty", ErrBody)
	}
	var p Parsed
	content := body
	if body[0] == 0x30 { // an ASN.1 SEQUENCE: CMS ContentInfo
		p7, err := untrusted.ParseCMS(body, bodyASN1)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBody, err)
		}
		if len(p7.Content) == 0 {
			return nil, fmt.Errorf("%w: the CMS message has no content", ErrBody)
		}
		content = p7.Content
		p.Signature, p.SignatureDetail = checkSignature(p7)
	} else {
		p.Signature, p.SignatureDetail = SigUnsigned, "the body is a bare property list"
	}
	if err := untrusted.Plist(content, &p.Info, bodyPlist); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBody, err)
	}
	if p.Info.Product == "" {
		return nil, fmt.Errorf("%w: PRODUCT is missing", ErrBody)
	}
	return &p, nil
}

func checkSignature(p7 *pkcs7.PKCS7) (string, string) {
	// Bounded before hashing: one SignerInfo, an expected digest.
	if err := untrusted.OneSigner(p7, bodyDigests...); err != nil {
		return SigInvalid, "not verified: " + err.Error()
	}
	if err := p7.Verify(); err != nil {
		return SigInvalid, "the CMS signature does not verify: " + err.Error()
	}
	signer := p7.GetOnlySigner()
	if signer == nil {
		return SigInvalid, "the CMS has no single signer"
	}
	// Walk up the embedded certificates by signature (validity ignored:
	// Apple's intermediates expired long ago) to the pinned Apple CA.
	cur := signer
	for depth := 0; depth < 4; depth++ {
		if fp := sha256.Sum256(cur.Raw); bytes.Equal(fp[:], appleIPhoneCA) {
			return SigApple, "signed by " + signer.Subject.CommonName + " under Apple iPhone Certification Authority"
		}
		parent := findParent(cur, p7.Certificates)
		if parent == nil {
			break
		}
		cur = parent
	}
	return SigOther, "signed by " + signer.Subject.String() + ", which does not chain to Apple's iPhone CA"
}

func findParent(c *x509.Certificate, pool []*x509.Certificate) *x509.Certificate {
	for _, p := range pool {
		if p.Equal(c) || !bytes.Equal(p.RawSubject, c.RawIssuer) {
			continue
		}
		// CheckSignature accepts the SHA-1 signatures Apple's chain uses.
		if p.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil {
			return p
		}
	}
	return nil
}

// Platform maps a PRODUCT string to the platform Pomona manages, or ""
// for devices it does not enroll.
func Platform(product string) string {
	switch {
	case strings.HasPrefix(product, "iPhone"), strings.HasPrefix(product, "iPad"), strings.HasPrefix(product, "iPod"):
		return catalog.IOS
	case strings.HasPrefix(product, "Mac"), strings.HasPrefix(product, "iMac"), strings.HasPrefix(product, "VirtualMac"):
		return catalog.MacOS
	}
	return ""
}

// Sanitized re-encodes the machine info without forbidden identifiers, for
// storage.
func (m MachineInfo) Sanitized() []byte {
	b, err := plist.MarshalIndent(m, "  ")
	if err != nil {
		return nil
	}
	return b
}

// WWWAuthenticate is the WWW-Authenticate header value of the 401 that
// starts the sign-in (the authentication challenge of account-driven
// enrollment, not the SCEP challenge): Apple's comma form,
// Bearer method="apple-as-web", url="<loginURL>". State rides in
// loginURL's path, never its query (the device replaces the query with
// user-identifier). The header is RFC 9110 §11.6.1 with RFC 6750's Bearer
// scheme. Apple: "Implementing the simple authentication account-driven
// enrollment flow",
// https://developer.apple.com/documentation/devicemanagement/implementing-the-simple-authentication-account-driven-enrollment-flow
func WWWAuthenticate(loginURL string) string {
	return `Bearer method="apple-as-web", url="` + loginURL + `"`
}

// CallbackURL is where a finished sign-in sends the web view: Apple's
// callback scheme, apple-remotemanagement-user-login://authentication-results,
// with the access token query-escaped in access-token
// (https://developer.apple.com/documentation/devicemanagement/implementing-the-simple-authentication-account-driven-enrollment-flow).
func CallbackURL(accessToken string) string {
	return "apple-remotemanagement-user-login://authentication-results?access-token=" + url.QueryEscape(accessToken)
}
