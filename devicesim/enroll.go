package devicesim

import (
	"context"
	"crypto/x509"
)

// Result is a finished enrollment.
type Result struct {
	BaseURL      string
	LoginURL     string
	AccessToken  string
	Profile      *ProfileInfo
	IdentityCert *x509.Certificate
}

// Enroll runs every step: discovery at domainURL, the challenge, the
// sign-in, the profile fetch and checks, and SCEP.
func (d *Device) Enroll(ctx context.Context, domainURL string, c Credentials) (*Result, error) {
	if _, err := d.Discover(ctx, domainURL, c.User); err != nil {
		return nil, err
	}
	if _, err := d.FirstPost(ctx); err != nil {
		return nil, err
	}
	if _, err := d.SignIn(ctx, c); err != nil {
		return nil, err
	}
	raw, err := d.FetchProfile(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := d.CheckProfile(raw); err != nil {
		return nil, err
	}
	if _, err := d.SCEPEnroll(ctx); err != nil {
		return nil, err
	}
	return &Result{BaseURL: d.BaseURL, LoginURL: d.LoginURL, AccessToken: d.AccessToken, Profile: d.Profile, IdentityCert: d.IdentityCert}, nil
}
