package cli

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/address"
	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/totp"
)

// simEnroll is `pomona sim enroll`: one simulated device enrolls
// against a deployment step by step, as a real one would (discovery at
// the company domain, sign-in, profile, SCEP, check-in), and says which
// step fails. `pomona sim run` (simrun.go) keeps a fleet enrolled.
func simEnroll(fs *flag.FlagSet) func(*call) error {
	server := fs.String("server", "", "the Pomona server, asked directly when the company domain does not answer discovery")
	user := fs.String("user", "", "the work account to enroll")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	pw := fs.String("password", "", "the password (visible in the process list: for demo accounts only)")
	secret := fs.String("totp-secret", "", "the account's TOTP key (base32), if it has a second factor already")
	family := fs.String("model-family", "iPhone", "iPhone, iPad or Mac")
	caFile := fs.String("ca-file", "", "extra CA to trust (default: <data>/ca.pem when it exists)")
	data := fs.String("data", defaultData, "data directory of a local server, to trust its ca.pem; when not given, the nearest pomona-data in the working directory or a parent of it")
	poll := fs.Duration("poll", 0, "after enrolling, keep answering commands for this long")
	decline := fs.String("decline-profile", "", "answer the first InstallProfile of the configuration profile with this PayloadIdentifier with an error, "+
		"as a device whose user declines it (to see a failed device with the reason, and Retry now); the next one installs")
	mdo := fs.String("managed-devices-only", "", "behave like a device under ABM's \"Managed devices only\": after enrolling, ask GetToken for com.apple.maid "+
		"and verify the JWT with this ABM public-key certificate (pomona abm token cert <id>); unenroll when that fails")
	return func(c *call) error {
		if *user == "" {
			return usagef("give --user")
		}
		_, domain, err := address.Email(*user)
		if err != nil {
			return usagef("--user: %v", err)
		}
		password := *pw
		if password == "" {
			if password, _, err = readPassword(c.Env, *pwStdin, false, false); err != nil {
				return err
			}
		}
		var abmCert *x509.Certificate
		if *mdo != "" {
			b, err := os.ReadFile(*mdo)
			if err != nil {
				return usagef("--managed-devices-only: %v", err)
			}
			blk, _ := pem.Decode(b)
			if blk == nil || blk.Type != "CERTIFICATE" {
				return usagef("--managed-devices-only: %s holds no PEM certificate (pomona abm token cert <id> --out %s)", *mdo, *mdo)
			}
			if abmCert, err = x509.ParseCertificate(blk.Bytes); err != nil {
				return usagef("--managed-devices-only: %v", err)
			}
		}
		creds := devicesim.Credentials{User: *user, Password: password}
		if *secret != "" {
			if creds.TOTPSecret, err = totp.Decode(*secret); err != nil {
				return usagef("--totp-secret: %v", err)
			}
		}
		ca := *caFile
		if ca == "" {
			ca = findCA(*data)
		}
		pool, _, err := trustPool(ca)
		if err != nil {
			return err
		}
		d, err := devicesim.New(devicesim.Options{ModelFamily: *family, RootCAs: pool})
		if err != nil {
			return usagef("%v", err)
		}
		defer d.Close()
		w := c.Stdout
		ok := func(format string, a ...any) { fmt.Fprintf(w, "  ok    "+format+"\n", a...) }
		fail := func(step string, err error) error {
			fmt.Fprintf(w, "  FAIL  %s: %v\n", step, err)
			if errors.Is(err, devicesim.ErrNoTOTPSecret) {
				fmt.Fprintf(w, "        %s has a second factor already: give its key with --totp-secret KEY (the first\n"+
					"        `pomona sim enroll` printed it), or reset it with `pomona user reset-2fa %s`\n", *user, *user)
			}
			var se *devicesim.SignInError
			if errors.As(err, &se) {
				fmt.Fprintf(w, "        the page said: %s\n", se.Shown)
			}
			return errSilent
		}
		fmt.Fprintf(w, "Simulated %s enrolling %s\n", d.ModelFamily, *user)
		ctx := c.Ctx

		// 1. Discovery at the company domain, as the device does; reserved
		// example domains are never asked (they do not exist).
		var base string
		if !reservedDomain(domain) {
			base, err = d.Discover(ctx, "https://"+domain, *user)
			if err == nil {
				ok("discovery at %s: %s", domain, base)
			} else if *server == "" {
				return fail("discovery", err)
			} else {
				fmt.Fprintf(w, "  warn  discovery at %s failed (%v); asking %s directly\n", domain, err, *server)
			}
		}
		if base == "" {
			if *server == "" {
				return usagef("%s is a reserved example domain: give --server", domain)
			}
			if base, err = d.Discover(ctx, strings.TrimRight(*server, "/"), *user); err != nil {
				return fail("discovery", err)
			}
			ok("discovery at %s: %s", *server, base)
		}
		login, err := d.FirstPost(ctx)
		if err != nil {
			return fail("enrollment request", err)
		}
		ok("enrollment request answered 401 with the sign-in page %s", login)
		if _, err := d.SignIn(ctx, creds); err != nil {
			return fail("sign-in", err)
		}
		ok("signed in; access token received through the 308 callback")
		if creds.TOTPSecret == nil && d.TOTPSecret != nil {
			fmt.Fprintf(w, "        second factor set up: TOTP key %s (pass --totp-secret next time)\n", totp.Encode(d.TOTPSecret))
		}
		raw, err := d.FetchProfile(ctx)
		if err != nil {
			return fail("profile", err)
		}
		p, err := d.CheckProfile(raw)
		if err != nil {
			return fail("profile check", err)
		}
		ok("profile: %s, managed Apple account %s, topic %s, signed %v", p.EnrollmentMode, p.ManagedAppleID, p.Topic, p.Signed)
		cert, err := d.SCEPEnroll(ctx)
		if err != nil {
			return fail("SCEP", err)
		}
		ok("identity certificate %s, valid until %s", cert.Subject.CommonName, cert.NotAfter.Format("2006-01-02"))
		if err := d.Authenticate(ctx); err != nil {
			return fail("Authenticate", err)
		}
		if err := d.TokenUpdate(ctx, false); err != nil {
			return fail("TokenUpdate", err)
		}
		if d.ModelFamily == "Mac" {
			if err := d.TokenUpdate(ctx, true); err != nil {
				return fail("user-channel TokenUpdate", err)
			}
		}
		ok("enrolled as EnrollmentID %s", d.MDM.EnrollmentID)
		if abmCert != nil {
			mc, err := d.ManagedAppleAccountSignIn(ctx, devicesim.ManagedDevicesOnly{
				Certificate: func(context.Context, string) (*x509.Certificate, error) { return abmCert, nil }})
			if err != nil {
				return fail("Managed Apple Account sign-in (Managed devices only)", err)
			}
			ok("Managed Apple Account sign-in: the com.apple.maid token of MDM server %s verifies (jti %s)", mc.Issuer, mc.ID)
		}
		if *decline != "" {
			d.RefuseInstall(*decline, declineReason)
		}
		deadline := time.Now().Add(*poll)
		for {
			cmd, err := d.Poll(ctx, nil, false)
			for err == nil && cmd != nil {
				answer := d.Process(ctx, cmd)
				if chain := errorChainText(answer); chain != "" {
					fmt.Fprintf(w, "  error command %s (%s) answered Error: %s\n", cmd.RequestType(), cmd.CommandUUID, chain)
					if *decline != "" && strings.Contains(chain, declineReason) {
						d.AllowInstall(*decline) // declined once: a retry installs it
						fmt.Fprintf(w, "        declined %s once (--decline-profile): the next InstallProfile installs it\n", *decline)
					}
				} else {
					ok("command %s (%s) answered", cmd.RequestType(), cmd.CommandUUID)
				}
				cmd, err = d.Poll(ctx, answer, false)
			}
			if err != nil {
				return fail("command poll", err)
			}
			if time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(3 * time.Second):
			}
		}
		fmt.Fprintln(w, "Enrollment works.")
		return nil
	}
}

// declineReason is the last entry of the error chain a --decline-profile
// device answers with, shown to the admin as the device's reason.
const declineReason = "The user declined the profile (pomona sim enroll --decline-profile)."

// errorChainText is an Error answer's chain, "Domain code: description"
// per entry joined by "; ", or "" for any other answer.
func errorChainText(answer map[string]any) string {
	if answer["Status"] != "Error" {
		return ""
	}
	var parts []string
	chain, _ := answer["ErrorChain"].([]any)
	for _, e := range chain {
		m, _ := e.(map[string]any)
		parts = append(parts, fmt.Sprintf("%v %v: %v", m["ErrorDomain"], m["ErrorCode"], m["USEnglishDescription"]))
	}
	if len(parts) == 0 {
		return "(no error chain)"
	}
	return strings.Join(parts, "; ")
}

// reservedDomain: names that never resolve (RFC 2606, RFC 6761).
func reservedDomain(d string) bool {
	for _, s := range []string{".example", ".test", ".invalid", ".localhost"} {
		if strings.HasSuffix(d, s) || d == strings.TrimPrefix(s, ".") {
			return true
		}
	}
	return d == "example.com" || d == "example.net" || d == "example.org" ||
		strings.HasSuffix(d, ".example.com") || strings.HasSuffix(d, ".example.net") || strings.HasSuffix(d, ".example.org")
}
