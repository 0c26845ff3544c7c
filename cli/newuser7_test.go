package cli_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
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
