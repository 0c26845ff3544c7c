package app_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/pushcert"
)

// failingPushStore has no certificate yet and fails Save with err.
type failingPushStore struct{ err error }

func (s failingPushStore) Load(context.Context) (*pushcert.Cert, error) { return nil, pushcert.ErrNone }
func (s failingPushStore) Save(context.Context, *pushcert.Cert) error   { return s.err }
func (s failingPushStore) SaveCSRKey(context.Context, *pushcert.Cert) error {
	return s.err
}
func (s failingPushStore) Changed(*pushcert.Cert) {}

// TestPushCertImportSaveFailures: a certificate upload whose key is
// missing is the administrator's 422; the server failing to store it
// (database, sealing key) is a 500 whose body shows none of the cause —
// not a 422 carrying SQL text and paths.
func TestPushCertImportSaveFailures(t *testing.T) {
	ca, err := pki.NewCA("local push CA", pki.ECDSAP256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := pushcert.NewLocal("com.apple.mgmt.External.11111111-2222-3333-4444-555555555555", ca, time.Now().Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := pki.KeyPEM(c.Key)
	in := app.PushCertUpload{CertPEM: pki.CertPEM(c.Cert), KeyPEM: kp}
	ctx := context.Background()

	for _, user := range []error{pushcert.ErrNoCSRKey, pushcert.ErrCSRKeyMismatch} {
		_, err := (&app.PushCerts{Store: failingPushStore{user}, Now: time.Now}).Import(ctx, in)
		wantProblem(t, err, problem.Unprocessable, "invalid_certificate")
	}
	leak := errors.New(`sqlstore: put secret push-cert: pq: relation "secrets" does not exist (/var/lib/pomona/seal.key)`)
	_, err = (&app.PushCerts{Store: failingPushStore{leak}, Now: time.Now}).Import(ctx, in)
	status, body := httpx.Classify(err)
	if status != 500 || strings.Contains(body.Error, "secrets") || strings.Contains(body.Error, "/var/lib") {
		t.Fatalf("store failure: %d %+v, want 500 without the cause", status, body)
	}
	if !errors.Is(err, leak) {
		t.Fatalf("the cause is not kept for the log: %v", err)
	}
}
