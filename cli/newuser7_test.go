package cli_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/pushcert"
)

// TestDeviceListNamesTheUserByEmail: device list's USER column showed
// the user's id (us_…), which told an administrator nothing (session 14's
// newuser6 left it: the API's device list had no email). The API now
// gives user_email on every device, listed or single, and the column is
// the email, as the console's Devices page shows it. Fails on the old code (the column is the id, the
// JSON has no user_email).
func TestDeviceListNamesTheUserByEmail(t *testing.T) {
	e := testenv.Start(t)
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "A", "--domain", "a.example", "--second-factor=false"))
	ca, _ := pki.NewCA("push", pki.ECDSAP256, time.Now())
	pc, _ := pushcert.NewLocal("com.apple.mgmt.External.cccccccc-0000-0000-0000-000000000007", ca, time.Now().Add(365*24*time.Hour))
	kp, _ := pki.KeyPEM(pc.Key)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "c.pem"), pki.CertPEM(pc.Cert), 0o600)
	os.WriteFile(filepath.Join(dir, "k.pem"), kp, 0o600)
	mustOK(t, runCLI(t, e, "", nil, "push-cert", "import", "--cert", filepath.Join(dir, "c.pem"), "--key", filepath.Join(dir, "k.pem")))
	mustOK(t, runCLI(t, e, "amy-password\n", nil, "user", "add", "amy@a.example", "--password-stdin"))
	pool := x509.NewCertPool()
	pool.AddCert(e.Server.CA.Cert)
	d, _ := devicesim.New(devicesim.Options{RootCAs: pool})
	defer d.Close()
	ctx := context.Background()
	if _, err := d.Enroll(ctx, e.URL, devicesim.Credentials{User: "amy@a.example", Password: "amy-password"}); err != nil {
		t.Fatal(err)
	}
	d.Authenticate(ctx)
	d.TokenUpdate(ctx, false)

	r := mustOK(t, runCLI(t, e, "", nil, "device", "list"))
	if !regexp.MustCompile(`\n\S+ .*\samy@a\.example\s+\d{4}-`).MatchString(r.stdout) {
		t.Errorf("device list: want the user's email in USER:\n%s", r.stdout)
	}
	var page struct {
		Devices []struct {
			UserID    string `json:"user_id"`
			UserEmail string `json:"user_email"`
		} `json:"devices"`
	}
	r = mustOK(t, runCLI(t, e, "", nil, "device", "list", "--json"))
	if json.Unmarshal([]byte(r.stdout), &page) != nil || len(page.Devices) != 1 || page.Devices[0].UserEmail != "amy@a.example" {
		t.Fatalf("device list --json: want user_email:\n%s", r.stdout)
	}
	var one struct {
		UserEmail string `json:"user_email"`
	}
	r = mustOK(t, runCLI(t, e, "", nil, "device", "show", d.MDM.EnrollmentID, "--json"))
	if json.Unmarshal([]byte(r.stdout), &one) != nil || one.UserEmail != "amy@a.example" {
		t.Errorf("device show --json: want user_email:\n%s", r.stdout)
	}

}

// TestShowCommandsPrintText: group show and profile show printed the
// API's JSON whether or not --json was given, where every other show
// prints text: now the group with its members by email, and the profile
// with what an administrator checks (identifier, version, platforms,
// assignment, or how to assign it when it has none); --json keeps the
// API's object. Fails on the old code (both outputs began with "{").
func TestShowCommandsPrintText(t *testing.T) {
	e := testenv.Start(t)
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "A", "--domain", "a.example", "--second-factor=false"))
	mustOK(t, runCLI(t, e, "amy-password\n", nil, "user", "add", "amy@a.example", "--name", "Amy", "--password-stdin"))
	r := mustOK(t, runCLI(t, e, "", nil, "group", "list", "--tenant", "a.example"))
	gid := regexp.MustCompile(`gr_all_\S+`).FindString(r.stdout)
	r = mustOK(t, runCLI(t, e, "", nil, "group", "show", gid))
	if strings.HasPrefix(r.stdout, "{") || !regexp.MustCompile(`\nEMAIL +NAME +ID\namy@a\.example +Amy +us_`).MatchString(r.stdout) {
		t.Errorf("group show: want text with the members by email:\n%s", r.stdout)
	}
	if r = mustOK(t, runCLI(t, e, "", nil, "group", "show", gid, "--json")); !strings.HasPrefix(r.stdout, "{") {
		t.Errorf("group show --json: %s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "profile", "upload", filepath.Join("..", "docs", "examples", "wifi.mobileconfig"), "--tenant", "a.example"))
	pid := regexp.MustCompile(`pr_[a-z0-9]+`).FindString(r.stdout)
	r = mustOK(t, runCLI(t, e, "", nil, "profile", "show", pid))
	if strings.HasPrefix(r.stdout, "{") || !regexp.MustCompile(`\nidentifier +com\.example\.wifi\n`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "pomona profile assign "+pid+" --group G") {
		t.Errorf("profile show: want text saying it is not assigned:\n%s", r.stdout)
	}
	if r = mustOK(t, runCLI(t, e, "", nil, "profile", "show", pid, "--json")); !strings.HasPrefix(r.stdout, "{") {
		t.Errorf("profile show --json: %s", r.stdout)
	}
}

// TestDeviceListRefusesAMisspeltFilter: device list --status enroled (or
// --platform ios) matched no device and printed an empty table, which an
// administrator reads as "no such devices"; the API answers 400 naming
// the values it takes. Fails on the old code (exit 0, empty list).
func TestDeviceListRefusesAMisspeltFilter(t *testing.T) {
	e := testenv.Start(t)
	for flag, want := range map[string]string{"--status=enroled": `status "enroled": give pending, enrolled or unenrolled`, "--platform=ios": `platform "ios": give iOS (iPhone and iPad) or macOS`} {
		if r := runCLI(t, e, "", nil, "device", "list", flag); r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "HTTP 400") {
			t.Errorf("device list %s: exit %d, stderr %q (want 1 and %q)", flag, r.code, r.stderr, want)
		}
	}
	mustOK(t, runCLI(t, e, "", nil, "device", "list", "--status", "unenrolled", "--platform", "macOS"))
}
