package cli_test

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/pushcert"
)

func TestPushCertCommands(t *testing.T) {
	e := testenv.Start(t)
	dir := t.TempDir()
	if r := runCLI(t, e, "", nil, "push-cert", "show"); r.code != 1 || !strings.Contains(r.stderr, "push-cert csr") {
		t.Fatalf("show without a certificate: %+v", r)
	}
	ca, _ := pki.NewCA("push CA", pki.ECDSAP256, time.Now())
	const topic = "com.apple.mgmt.External.aaaaaaaa-0000-0000-0000-000000000001"
	c, _ := pushcert.NewLocal(topic, ca, time.Now().Add(20*24*time.Hour)) // expires soon: warns
	kp, _ := pki.KeyPEM(c.Key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pki.CertPEM(c.Cert), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), kp, 0o600)
	r := mustOK(t, runCLI(t, e, "", nil, "push-cert", "import", "--cert", filepath.Join(dir, "cert.pem"), "--key", filepath.Join(dir, "key.pem")))
	if !strings.Contains(r.stdout, topic) || !strings.Contains(r.stdout, "expires in") || !strings.Contains(r.stdout, "not issued by Apple") {
		t.Fatalf("import:\n%s", r.stdout)
	}
	if m := get(t, e, "/metrics"); !strings.Contains(m, "pomona_push_certificate_expiry_timestamp_seconds 1.") {
		t.Fatalf("expiry metric not set:\n%s", grepLines(m, "push_certificate"))
	}

	// Another topic is refused unless asked for.
	other, _ := pushcert.NewLocal("com.apple.mgmt.External.bbbbbbbb-0000-0000-0000-000000000002", ca, time.Now().Add(365*24*time.Hour))
	p12, _ := pkcs12.Modern.Encode(other.Key, other.Cert, nil, "pw-123")
	os.WriteFile(filepath.Join(dir, "other.p12"), p12, 0o600)
	if r := runCLI(t, e, "pw-123\n", nil, "push-cert", "import", "--p12", filepath.Join(dir, "other.p12"), "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, "topic") ||
		!strings.Contains(r.stderr, "--allow-topic-change") || strings.Contains(r.stderr, "allow_topic_change") {
		t.Fatalf("topic change (the error must name the CLI flag): %+v", r)
	}
	mustOK(t, runCLI(t, e, "pw-123\n", nil, "push-cert", "import", "--p12", filepath.Join(dir, "other.p12"), "--password-stdin", "--allow-topic-change"))

	// CSR made by the server, then the certificate alone (key stays on the server).
	r = mustOK(t, runCLI(t, e, "", nil, "push-cert", "csr", "--out", filepath.Join(dir, "push.csr")))
	if !strings.Contains(r.stderr, "identity.apple.com") {
		t.Fatalf("csr: %+v", r)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "push.csr"))
	blk, _ := pem.Decode(b)
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// Stand in for Apple: sign the CSR's key into a push certificate.
	signed, err := pushcert.NewLocal("com.apple.mgmt.External.bbbbbbbb-0000-0000-0000-000000000002", ca, time.Now().Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *signed.Cert
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "apple.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	mustOK(t, runCLI(t, e, "", nil, "push-cert", "import", "--cert", filepath.Join(dir, "apple.pem")))
	// A certificate for another key cannot be imported without its key.
	if r := runCLI(t, e, "", nil, "push-cert", "import", "--cert", filepath.Join(dir, "cert.pem"), "--allow-topic-change"); r.code != 1 || !strings.Contains(r.stderr, "key") {
		t.Fatalf("cert for another key: %+v", r)
	}

	// Forced re-authentication from the CLI.
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "A", "--domain", "a.example"))
	mustOK(t, runCLI(t, e, "", nil, "user", "add", "amy@a.example", "--generate-password"))
	r = mustOK(t, runCLI(t, e, "", nil, "user", "reauthenticate", "amy@a.example"))
	if !strings.Contains(r.stdout, "must sign in again") {
		t.Fatal(r.stdout)
	}
}
