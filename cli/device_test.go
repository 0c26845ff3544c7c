package cli_test

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/pushcert"
)

func TestDeviceCommands(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "A", "--domain", "a.example", "--second-factor=false"))
	mustOK(t, runCLI(t, e, "amy-password\n", nil, "user", "add", "amy@a.example", "--password-stdin"))
	ca, _ := pki.NewCA("push", pki.ECDSAP256, time.Now())
	pc, _ := pushcert.NewLocal("com.apple.mgmt.External.cccccccc-0000-0000-0000-000000000003", ca, time.Now().Add(365*24*time.Hour))
	kp, _ := pki.KeyPEM(pc.Key)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "c.pem"), pki.CertPEM(pc.Cert), 0o600)
	os.WriteFile(filepath.Join(dir, "k.pem"), kp, 0o600)
	mustOK(t, runCLI(t, e, "", nil, "push-cert", "import", "--cert", filepath.Join(dir, "c.pem"), "--key", filepath.Join(dir, "k.pem")))

	pool := x509.NewCertPool()
	pool.AddCert(e.Server.CA.Cert)
	d, _ := devicesim.New(devicesim.Options{RootCAs: pool})
	defer d.Close()
	if _, err := d.Enroll(ctx, e.URL, devicesim.Credentials{User: "amy@a.example", Password: "amy-password"}); err != nil {
		t.Fatal(err)
	}
	d.Authenticate(ctx)
	d.TokenUpdate(ctx, false)

	r := mustOK(t, runCLI(t, e, "", nil, "device", "list", "--tenant", "a.example"))
	if !strings.Contains(r.stdout, d.MDM.EnrollmentID) || !strings.Contains(r.stdout, "enrolled") {
		t.Fatalf("device list:\n%s", r.stdout)
	}
	if r := runCLI(t, e, "", nil, "device", "command", d.MDM.EnrollmentID, `{"request_type":"EraseDevice"}`); r.code != 1 || !strings.Contains(r.stderr, "forbids") {
		t.Fatalf("forbidden command: %+v", r)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "device", "command", d.MDM.EnrollmentID, `{"request_type":"DeviceInformation","queries":["OSVersion"]}`, "--no-push"))
	if !strings.HasPrefix(r.stdout, "queued ") {
		t.Fatal(r.stdout)
	}
	cmd, _ := d.Poll(ctx, nil, false)
	d.Poll(ctx, d.Answer(cmd), false)
	r = mustOK(t, runCLI(t, e, "", nil, "device", "commands", d.MDM.EnrollmentID))
	if !strings.Contains(r.stdout, "DeviceInformation") || !strings.Contains(r.stdout, "Acknowledged") {
		t.Fatalf("commands:\n%s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "device", "show", d.MDM.EnrollmentID))
	if !strings.Contains(r.stdout, `"device_information"`) {
		t.Fatalf("show:\n%s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "device", "command", "--tenant", "a.example", `{"request_type":"ProfileList"}`, "--no-push"))
	if !strings.Contains(r.stdout, "for 1 device(s)") {
		t.Fatalf("bulk:\n%s", r.stdout)
	}
	mustOK(t, runCLI(t, e, "", nil, "device", "unenroll", d.MDM.EnrollmentID))
	r = mustOK(t, runCLI(t, e, "", nil, "audit", "--action", "POST /api/v1/devices/{id}/unenroll"))
	if !strings.Contains(r.stdout, d.MDM.EnrollmentID) {
		t.Fatalf("audit:\n%s", r.stdout)
	}
}
