package devicesim

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/micromdm/plist"

	"github.com/pomona-mdm/pomona/abm"
)

// ManagedDevicesOnly plays Apple's side of the Apple Business Manager
// setting "Allow Managed Apple Accounts on: Managed devices only": while
// the Managed Apple Account signs in after enrolling, the device asks its
// MDM server for a com.apple.maid token (GetToken), and Apple accepts the
// sign-in only if the token is a JWT signed by the key ABM has for the MDM
// server it names (iss = server_uuid). Otherwise the sign-in fails and the
// device unenrolls itself about ten seconds later (measured by Fleet; see
// docs/apple-business-manager.md).
type ManagedDevicesOnly struct {
	// Certificate returns the public-key certificate ABM has for the MDM
	// server serverUUID (the ABM stand-in's, or the one the admin
	// uploaded).
	Certificate func(ctx context.Context, serverUUID string) (*x509.Certificate, error)
	// Skew is the accepted distance of iat from the device clock (default
	// 5 minutes).
	Skew time.Duration
}

// UnenrolledError is a device that removed its enrollment by itself.
type UnenrolledError struct{ Reason string }

func (e *UnenrolledError) Error() string {
	return "the Managed Apple Account sign-in failed and the device unenrolled itself: " + e.Reason
}

// GetToken sends a GetToken check-in for serviceType on the device channel
// and returns the TokenData, or the server's status and answer.
func (d *Device) GetToken(ctx context.Context, serviceType string) ([]byte, error) {
	msg := map[string]any{"MessageType": "GetToken", "TokenServiceType": serviceType, "EnrollmentID": d.MDM.EnrollmentID}
	status, body, err := d.sendMDM(ctx, d.Profile.CheckInURL, "application/x-apple-aspen-mdm-checkin", msg, d.usesToken(false), false)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GetToken %s answered %d: %s", serviceType, status, strings.TrimSpace(string(body)))
	}
	var out struct {
		TokenData []byte `plist:"TokenData"`
	}
	if err := plist.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("GetToken answer is not a plist: %v", err)
	}
	if len(out.TokenData) == 0 {
		return nil, errors.New("GetToken answer has no TokenData")
	}
	return out.TokenData, nil
}

// ManagedAppleAccountSignIn is the sign-in after enrollment under
// "Managed devices only": the profile must advertise com.apple.mdm.token,
// GetToken for com.apple.maid must answer a JWT that verifies against the
// MDM server's certificate (abm.VerifyMAIDToken). Otherwise the device
// checks out, forgets its enrollment and returns an *UnenrolledError.
// It returns the verified claims.
func (d *Device) ManagedAppleAccountSignIn(ctx context.Context, p ManagedDevicesOnly) (*abm.MAIDClaims, error) {
	claims, reason := d.maidCheck(ctx, p)
	if reason == "" {
		return claims, nil
	}
	if err := d.CheckOut(ctx); err != nil {
		reason += " (its CheckOut failed too: " + err.Error() + ")"
	}
	d.Unenrolled = reason
	return nil, &UnenrolledError{Reason: reason}
}

func (d *Device) maidCheck(ctx context.Context, p ManagedDevicesOnly) (*abm.MAIDClaims, string) {
	if !slices.Contains(d.Profile.Capabilities, "com.apple.mdm.token") {
		return nil, "the enrollment profile does not advertise com.apple.mdm.token, so the device cannot ask for a com.apple.maid token"
	}
	data, err := d.GetToken(ctx, abm.ServiceTypeMAID)
	if err != nil {
		return nil, err.Error()
	}
	tok := string(data)
	// iss names the MDM server whose key must have signed it: read it
	// before verifying, the way a verifier picks its key.
	iss, err := abm.UnverifiedIssuer(tok)
	if err != nil {
		return nil, "the com.apple.maid token: " + err.Error()
	}
	cert, err := p.Certificate(ctx, iss)
	if err != nil {
		return nil, "Apple knows no key for the token's MDM server: " + err.Error()
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, "the MDM server's certificate has no RSA key"
	}
	skew := p.Skew
	if skew <= 0 {
		skew = 5 * time.Minute
	}
	now := time.Now()
	if d.Now != nil {
		now = d.Now()
	}
	c, err := abm.VerifyMAIDToken(tok, pub, now, skew)
	if err != nil {
		return nil, err.Error()
	}
	return c, ""
}
