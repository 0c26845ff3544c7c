package abm

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ServiceTypeMAID is the TokenServiceType of a GetToken check-in for
// Managed Apple Account access management.
const ServiceTypeMAID = "com.apple.maid"

// MAIDToken is the TokenData of a GetToken answer for com.apple.maid
// (Apple: "Get Token"): a JWT (RFC 7519) signed RS256 with the key of the
// ABM MDM server whose public-key certificate ABM has, with the claims
// iss = that server's server_uuid (GET /account), iat = now (seconds),
// jti = a fresh random UUID and service_type = com.apple.maid. Apple
// checks it while a Managed Apple Account signs in on a device enrolled
// with a profile that advertised com.apple.mdm.token.
func MAIDToken(key *rsa.PrivateKey, serverUUID string, now time.Time) (token, jti string, err error) {
	if key == nil || serverUUID == "" || now.IsZero() {
		return "", "", errors.New("maid token: key, server_uuid and time are required")
	}
	jti = newUUID()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss":          serverUUID,
		"iat":          now.Unix(),
		"jti":          jti,
		"service_type": ServiceTypeMAID,
	})
	s, err := tok.SignedString(key)
	if err != nil {
		return "", "", fmt.Errorf("maid token: %w", err)
	}
	return s, jti, nil
}

// MAIDClaims are the claims of a verified com.apple.maid token.
type MAIDClaims struct {
	Issuer      string
	IssuedAt    time.Time
	ID          string
	ServiceType string
}

// VerifyMAIDToken checks a com.apple.maid JWT the way Apple's identity
// service would: RS256 only, signed by pub, service_type com.apple.maid,
// iss, jti and iat present, iat within skew of now. The simulator uses it.
func VerifyMAIDToken(token string, pub *rsa.PublicKey, now time.Time, skew time.Duration) (*MAIDClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}), jwt.WithoutClaimsValidation()).
		ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return pub, nil })
	if err != nil {
		return nil, fmt.Errorf("maid token: %w", err)
	}
	str := func(k string) string { s, _ := claims[k].(string); return s }
	c := &MAIDClaims{Issuer: str("iss"), ID: str("jti"), ServiceType: str("service_type")}
	iat, err := claims.GetIssuedAt()
	if err != nil || iat == nil {
		return nil, errors.New("maid token: no iat")
	}
	c.IssuedAt = iat.Time
	switch {
	case c.ServiceType != ServiceTypeMAID:
		return nil, fmt.Errorf("maid token: service_type %q is not %s", c.ServiceType, ServiceTypeMAID)
	case c.Issuer == "":
		return nil, errors.New("maid token: no iss (server_uuid)")
	case c.ID == "":
		return nil, errors.New("maid token: no jti")
	case c.IssuedAt.Before(now.Add(-skew)) || c.IssuedAt.After(now.Add(skew)):
		return nil, fmt.Errorf("maid token: iat %s is more than %s from now", c.IssuedAt.UTC().Format(time.RFC3339), skew)
	}
	return c, nil
}

// newUUID is a random (version 4) UUID, upper-case like Apple's.
func newUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("abm: no randomness: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// UnverifiedIssuer reads the iss claim of a JWT without verifying it, to
// choose the key that must verify it.
func UnverifiedIssuer(token string) (string, error) {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		return "", fmt.Errorf("not a JWT: %w", err)
	}
	iss, _ := claims["iss"].(string)
	if iss == "" {
		return "", errors.New("no iss (server_uuid)")
	}
	return iss, nil
}
