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
	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/server"
)

// A running server with an enrolled device is backed up; the backup is
// restored into a new data directory (refused over the live store, over
// an existing one without --force, and with the wrong key); a server
// started there serves the same device, which checks in and completes a
// command.
func TestBackupRestoreDeviceContinues(t *testing.T) {
	if os.Getenv("POMONA_TEST_STORE") == "postgres" {
		t.Skip("pomona backup is for SQLite stores; PostgreSQL uses pg_dump (docs/postgresql.md)")
	}
	ctx := context.Background()
	e := testenv.Start(t)
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "A", "--domain", "a.example", "--second-factor=false"))
	mustOK(t, runCLI(t, e, "amy-password\n", nil, "user", "add", "amy@a.example", "--password-stdin"))
	ca, _ := pki.NewCA("push", pki.ECDSAP256, time.Now())
	pc, _ := pushcert.NewLocal("com.apple.mgmt.External.cccccccc-0000-0000-0000-000000000004", ca, time.Now().Add(365*24*time.Hour))
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
	if err := d.Authenticate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.TokenUpdate(ctx, false); err != nil {
		t.Fatal(err)
	}

	// Online backup of the running server.
	bak := filepath.Join(t.TempDir(), "pomona.bak")
	r := mustOK(t, runCLI(t, nil, "", nil, "backup", "--data", e.DataDir, "--to", bak))
	if !strings.Contains(r.stdout, "NOT") || !strings.Contains(r.stdout, filepath.Join(e.DataDir, "secret.key")+" (key ID ") {
		t.Fatalf("backup does not say where the key is:\n%s", r.stdout)
	}
	if st, err := os.Stat(bak); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", st, err)
	}
	if r := runCLI(t, nil, "", nil, "backup", "--data", e.DataDir, "--to", bak); r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("overwriting a backup: %+v", r)
	}
	if r := runCLI(t, nil, "", nil, "backup", "--db", "postgres://x@127.0.0.1/p", "--to", bak+"2"); r.code != 2 || !strings.Contains(r.stderr, "pg_dump") {
		t.Fatalf("backup of PostgreSQL: %+v", r)
	}

	// Refusals.
	if r := runCLI(t, nil, "", nil, "restore", "--from", bak, "--data", e.DataDir, "--force"); r.code != 1 || !strings.Contains(r.stderr, "running server") {
		t.Fatalf("restore over the live store: %+v", r)
	}
	newDir := filepath.Join(t.TempDir(), "restored")
	if r := runCLI(t, nil, "", nil, "restore", "--from", bak, "--data", newDir, "--secret-key", seal.NewKey()); r.code != 1 || !strings.Contains(r.stderr, "does not open") {
		t.Fatalf("restore with the wrong key: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(newDir, "pomona.db")); err == nil {
		t.Fatal("a refused restore left a store behind")
	}
	notADB := filepath.Join(dir, "c.pem")
	if r := runCLI(t, nil, "", nil, "restore", "--from", notADB, "--data", newDir); r.code != 1 || !strings.Contains(r.stderr, "not a SQLite database") {
		t.Fatalf("restore of a non-database: %+v", r)
	}

	// Restore without the key: done, with the reminder; again: refused
	// without --force; with the key and --force: replaced, old files kept.
	r = mustOK(t, runCLI(t, nil, "", nil, "restore", "--from", bak, "--data", newDir))
	if !strings.Contains(r.stdout, "No sealing key here yet") {
		t.Fatalf("restore without a key:\n%s", r.stdout)
	}
	if r := runCLI(t, nil, "", nil, "restore", "--from", bak, "--data", newDir); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("restore over an existing store: %+v", r)
	}
	key, _ := os.ReadFile(filepath.Join(e.DataDir, "secret.key"))
	os.WriteFile(filepath.Join(newDir, "secret.key"), key, 0o600)
	r = mustOK(t, runCLI(t, nil, "", nil, "restore", "--from", bak, "--data", newDir, "--force"))
	if !strings.Contains(r.stdout, "opens it") {
		t.Fatalf("restore with the key:\n%s", r.stdout)
	}
	if kept, _ := filepath.Glob(filepath.Join(newDir, "pomona.db.before-restore-*")); len(kept) == 0 {
		t.Fatal("--force did not keep the replaced store")
	}

	// A server on the restored directory, reached at the same public URL
	// (as after moving the host): the device goes on.
	e2 := testenv.Start(t, func(c *server.Config) { c.DataDir = newDir; c.PublicURL = e.URL })
	if !e2.Server.CA.Cert.Equal(e.Server.CA.Cert) {
		t.Fatal("the restored server has another CA")
	}
	d.Profile.ServerURL = strings.Replace(d.Profile.ServerURL, e.URL, e2.URL, 1)
	d.Profile.CheckInURL = strings.Replace(d.Profile.CheckInURL, e.URL, e2.URL, 1)
	if !strings.HasPrefix(d.Profile.ServerURL, e2.URL) || !strings.HasPrefix(d.Profile.CheckInURL, e2.URL) {
		t.Fatalf("device URLs %s %s", d.Profile.ServerURL, d.Profile.CheckInURL)
	}
	if err := d.TokenUpdate(ctx, false); err != nil {
		t.Fatalf("check-in on the restored server: %v", err)
	}
	as := map[string]string{"POMONA_API_KEY": e.APIKey} // the key made on the first server's first start
	r = mustOK(t, runCLI(t, e2, "", as, "device", "command", d.MDM.EnrollmentID, `{"request_type":"DeviceInformation","queries":["OSVersion"]}`, "--no-push"))
	cmd, err := d.Poll(ctx, nil, false)
	if err != nil || cmd == nil || cmd.RequestType() != "DeviceInformation" {
		t.Fatalf("poll on the restored server: %+v %v", cmd, err)
	}
	if _, err := d.Poll(ctx, d.Answer(cmd), false); err != nil {
		t.Fatal(err)
	}
	r = mustOK(t, runCLI(t, e2, "", as, "device", "commands", d.MDM.EnrollmentID))
	if !strings.Contains(r.stdout, "Acknowledged") {
		t.Fatalf("commands on the restored server:\n%s", r.stdout)
	}
}
