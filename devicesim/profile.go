package devicesim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"
	"github.com/smallstep/scep/x509util"
)

// ProfileInfo is what the device takes from the enrollment profile.
type ProfileInfo struct {
	Identifier      string
	Signed          bool
	Signer          *x509.Certificate
	Topic           string
	ServerURL       string
	CheckInURL      string
	ManagedAppleID  string
	EnrollmentMode  string
	SignMessage     bool
	Capabilities    []string
	SCEPURL         string
	SCEPChallenge   string
	SCEPSubject     [][][]string
	TrustedCAs      []*x509.Certificate
	IdentityPayload string
}

type payload map[string]any

func str(p payload, k string) string { s, _ := p[k].(string); return s }

// CheckProfile decodes the profile (CMS-signed or plain) and applies the
// checks Apple's client makes before installing a BYOD profile:
// EnrollmentMode BYOD, AssignedManagedAppleID present, no AccessRights,
// the identity payload present; it also refuses the legacy ManagedAppleID
// and an https-less ServerURL.
func (d *Device) CheckProfile(raw []byte) (*ProfileInfo, error) {
	info, err := parseProfile(raw)
	if err != nil {
		return nil, err
	}
	d.Profile = info
	return info, nil
}

func parseProfile(raw []byte) (*ProfileInfo, error) {
	const step = "profile check"
	info := &ProfileInfo{}
	content := raw
	if p7, err := pkcs7.Parse(raw); err == nil && len(p7.Content) > 0 {
		if err := p7.Verify(); err != nil {
			return nil, stepErr(step, "the profile signature does not verify: %v", err)
		}
		info.Signed, info.Signer, content = true, p7.GetOnlySigner(), p7.Content
	}
	var top struct {
		PayloadType       string
		PayloadIdentifier string
		PayloadContent    []payload
		PayloadScope      string
	}
	if err := plist.Unmarshal(content, &top); err != nil {
		return nil, stepErr(step, "not a property list: %v", err)
	}
	if top.PayloadType != "Configuration" {
		return nil, stepErr(step, "top-level PayloadType %q", top.PayloadType)
	}
	info.Identifier = top.PayloadIdentifier
	var mdm, scepP payload
	scepUUIDs := map[string]payload{}
	for _, p := range top.PayloadContent {
		switch str(p, "PayloadType") {
		case "com.apple.mdm":
			if mdm != nil {
				return nil, stepErr(step, "more than one MDM payload")
			}
			mdm = p
		case "com.apple.security.scep":
			scepUUIDs[str(p, "PayloadUUID")] = p
		case "com.apple.security.root", "com.apple.security.pem", "com.apple.security.pkcs1":
			if b, ok := p["PayloadContent"].([]byte); ok {
				if c, err := x509.ParseCertificate(b); err == nil {
					info.TrustedCAs = append(info.TrustedCAs, c)
				}
			}
		}
	}
	if mdm == nil {
		return nil, stepErr(step, "no com.apple.mdm payload")
	}
	if str(mdm, "EnrollmentMode") != "BYOD" {
		return nil, stepErr(step, "EnrollmentMode is %q, the device requires BYOD for this enrollment", str(mdm, "EnrollmentMode"))
	}
	if str(mdm, "AssignedManagedAppleID") == "" {
		return nil, stepErr(step, "AssignedManagedAppleID is missing: the device cancels")
	}
	if _, ok := mdm["AccessRights"]; ok {
		return nil, stepErr(step, "AccessRights is present: the device cancels a BYOD profile that has it")
	}
	if _, ok := mdm["ManagedAppleID"]; ok {
		return nil, stepErr(step, "the legacy ManagedAppleID key is present (removed in iOS 18)")
	}
	for _, k := range []string{"Topic", "ServerURL", "IdentityCertificateUUID"} {
		if str(mdm, k) == "" {
			return nil, stepErr(step, "the MDM payload lacks %s", k)
		}
	}
	if !strings.HasPrefix(str(mdm, "ServerURL"), "https://") {
		return nil, stepErr(step, "ServerURL %q is not https", str(mdm, "ServerURL"))
	}
	scepP = scepUUIDs[str(mdm, "IdentityCertificateUUID")]
	if scepP == nil {
		return nil, stepErr(step, "IdentityCertificateUUID %s names no SCEP payload in the profile", str(mdm, "IdentityCertificateUUID"))
	}
	info.Topic, info.ServerURL, info.CheckInURL = str(mdm, "Topic"), str(mdm, "ServerURL"), str(mdm, "CheckInURL")
	if info.CheckInURL == "" {
		info.CheckInURL = info.ServerURL
	}
	info.ManagedAppleID, info.EnrollmentMode = str(mdm, "AssignedManagedAppleID"), str(mdm, "EnrollmentMode")
	info.SignMessage, _ = mdm["SignMessage"].(bool)
	if caps, ok := mdm["ServerCapabilities"].([]any); ok {
		for _, c := range caps {
			if s, ok := c.(string); ok {
				info.Capabilities = append(info.Capabilities, s)
			}
		}
	}
	sc, _ := scepP["PayloadContent"].(map[string]any)
	info.SCEPURL, _ = sc["URL"].(string)
	info.SCEPChallenge, _ = sc["Challenge"].(string)
	info.IdentityPayload = str(scepP, "PayloadUUID")
	if info.SCEPURL == "" {
		return nil, stepErr(step, "the SCEP payload has no URL")
	}
	if subj, ok := sc["Subject"].([]any); ok {
		for _, rdn := range subj {
			var r [][]string
			for _, atv := range rdn.([]any) {
				var pair []string
				for _, x := range atv.([]any) {
					pair = append(pair, fmt.Sprint(x))
				}
				r = append(r, pair)
			}
			info.SCEPSubject = append(info.SCEPSubject, r)
		}
	}
	return info, nil
}

// SCEPEnroll requests the identity certificate named by the profile with
// its challenge, as the device's SCEP client does (RFC 8894 PKCSReq,
// Apple's SCEP payload https://developer.apple.com/documentation/devicemanagement/scep).
func (d *Device) SCEPEnroll(ctx context.Context) (*x509.Certificate, error) {
	const step = "SCEP"
	if d.Profile == nil {
		return nil, stepErr(step, "no profile")
	}
	key, cert, err := d.newIdentity(ctx, step, d.Profile)
	if err != nil {
		return nil, err
	}
	d.IdentityKey, d.IdentityCert = key, cert
	return cert, nil
}

// newIdentity runs SCEP for the identity payload of p: a new key, the
// payload's challenge, a request signed by a self-signed certificate for
// the new key — never by the current identity, which is how Apple devices
// get their MDM identity at enrollment and at renewal alike. The issued
// certificate must be valid on the device's clock (Now), as a real device
// requires before it uses the identity.
func (d *Device) newIdentity(ctx context.Context, step string, p *ProfileInfo) (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	cert, err := d.scepRequest(ctx, step, p, key, p.SCEPChallenge)
	if err != nil {
		return nil, nil, err
	}
	if now := d.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, nil, stepErr(step, "the issued identity is not valid on this device's clock (%s; valid %s to %s)",
			now.UTC().Format(time.RFC3339), cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return key, cert, nil
}

func (d *Device) scepRequest(ctx context.Context, step string, p *ProfileInfo, key *rsa.PrivateKey, challenge string) (*x509.Certificate, error) {
	resp, body, err := d.do(ctx, http.MethodGet, p.SCEPURL+"?operation=GetCACert", nil, nil)
	if err != nil {
		return nil, stepErr(step, "GetCACert: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, stepErr(step, "GetCACert answered %d", resp.StatusCode)
	}
	cas, err := scep.CACerts(body)
	if err != nil || len(cas) == 0 {
		return nil, stepErr(step, "GetCACert: %v", err)
	}
	d.SCEPCACerts = cas
	subject := pkix.Name{CommonName: "MDM Identity"}
	for _, rdn := range p.SCEPSubject {
		for _, atv := range rdn {
			if len(atv) == 2 && atv[0] == "O" {
				subject.Organization = []string{atv[1]}
			}
		}
	}
	der, err := x509util.CreateCertificateRequest(rand.Reader, &x509util.CertificateRequest{
		CertificateRequest: x509.CertificateRequest{Subject: subject}, ChallengePassword: challenge}, key)
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	// Sign the request with a self-signed certificate for the new key
	// (RFC 8894 §2.3). It must cover the device's clock and the host's:
	// the CMS library stamps the signing time from the host clock.
	from, to := d.Now(), time.Now()
	if to.Before(from) {
		from, to = to, from
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: subject, NotBefore: from.Add(-time.Hour), NotAfter: to.Add(time.Hour)}
	sd, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	signer, _ := x509.ParseCertificate(sd)
	msg, err := scep.NewCSRRequest(csr, &scep.PKIMessage{MessageType: scep.PKCSReq, Recipients: cas, SignerCert: signer, SignerKey: key},
		scep.WithCertsSelector(scep.EnciphermentCertsSelector()))
	if err != nil {
		return nil, stepErr(step, "build request: %v", err)
	}
	resp, body, err = d.do(ctx, http.MethodPost, p.SCEPURL+"?operation=PKIOperation", msg.Raw, map[string]string{"Content-Type": "application/x-pki-message"})
	if err != nil {
		return nil, stepErr(step, "PKIOperation: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, stepErr(step, "PKIOperation answered %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	rep, err := scep.ParsePKIMessage(body, scep.WithCACerts(cas))
	if err != nil {
		return nil, stepErr(step, "the answer does not verify against the CA certificates: %v", err)
	}
	if rep.CertRepMessage == nil || rep.PKIStatus != scep.SUCCESS {
		fi := scep.FailInfo("")
		if rep.CertRepMessage != nil {
			fi = rep.FailInfo
		}
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: the server refused the certificate (failInfo %s)", ErrRefused, fi)}
	}
	if err := rep.DecryptPKIEnvelope(signer, key); err != nil {
		return nil, stepErr(step, "decrypt the answer: %v", err)
	}
	cert := rep.CertRepMessage.Certificate
	if cert == nil || !cert.PublicKey.(*rsa.PublicKey).Equal(&key.PublicKey) {
		return nil, stepErr(step, "the issued certificate is not for our key")
	}
	return cert, nil
}
