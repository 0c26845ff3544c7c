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

// TestNewAdminCLIFindings is what a new administrator met following the
// README (session 14, newuser6), each of which fails on the old code:
//   - user add --generate-password --json printed the user without the
//     password it generated (set-password --json has it): a script adding
//     users never saw their passwords; the text printed a second password
//     row, not aligned with the table, under "password set";
//   - device show named the user by id only (us_…), and a user enrollment
//     reveals no device name: the email is what tells devices apart;
//   - device list printed LAST SEEN as the API's text, with a fraction of
//     a second of varying length, where device show prints whole seconds.
func TestNewAdminCLIFindings(t *testing.T) {
	e := testenv.Start(t)
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "A", "--domain", "a.example", "--second-factor=false"))

	r := mustOK(t, runCLI(t, e, "", nil, "user", "add", "gen@a.example", "--generate-password", "--json"))
	var added struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if json.Unmarshal([]byte(r.stdout), &added) != nil || added.Email != "gen@a.example" || len(added.Password) < 16 {
		t.Errorf("user add --generate-password --json: no password in\n%s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "user", "add", "text@a.example", "--generate-password"))
	pw := regexp.MustCompile(`\n(password +)[a-z0-9]{16,}   \(shown once\)\n`).FindStringSubmatch(r.stdout)
	em := regexp.MustCompile(`\n(email +)text@a\.example\n`).FindStringSubmatch(r.stdout)
	if n := strings.Count(r.stdout, "\npassword "); n != 1 || pw == nil || em == nil || len(pw[1]) != len(em[1]) {
		t.Errorf("user add --generate-password: want one password row, aligned, with the password:\n%s", r.stdout)
	}
	// The generated password signs in (it is the one the server stored).
	if r := mustOK(t, runCLI(t, e, "", nil, "user", "show", "gen@a.example", "--json")); !strings.Contains(r.stdout, `"password_set": true`) || strings.Contains(r.stdout, `"password":`) {
		t.Errorf("user show --json: %s", r.stdout)
	}

	ca, _ := pki.NewCA("push", pki.ECDSAP256, time.Now())
	pc, _ := pushcert.NewLocal("com.apple.mgmt.External.cccccccc-0000-0000-0000-000000000006", ca, time.Now().Add(365*24*time.Hour))
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

	r = mustOK(t, runCLI(t, e, "", nil, "device", "show", d.MDM.EnrollmentID))
	if !regexp.MustCompile(`\nuser +amy@a\.example \(us_[a-z0-9]+\)\n`).MatchString(r.stdout) {
		t.Errorf("device show: want the user's email:\n%s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "device", "list"))
	if !regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)\s*\n$`).MatchString(r.stdout) {
		t.Errorf("device list: want LAST SEEN in whole seconds:\n%s", r.stdout)
	}
}
