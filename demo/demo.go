// Package demo sets up `pomona serve --demo`: a throwaway tenant and user
// so that `pomona sim enroll` shows an enrollment without an Apple
// account, a push certificate that is not Apple's and an in-process APNs
// stand-in that the pusher talks to. Its data lives in a data directory
// of its own, never in a deployment's (DataDir, CheckDataDir).
package demo

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/push"
	"github.com/pomona-mdm/pomona/push/apnsstub"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/store"
)

// The demo's tenant and user (the password is published: docs and the
// start-up summary print it).
const (
	Domain   = "demo.example"
	User     = "alice@demo.example"
	Password = "pomona-demo-password"
	topic    = "com.apple.mgmt.External.00000000-demo-0000-0000-000000000000"
)

// marker is the file that marks a data directory as the demo's.
const marker = "DEMO-DATA-NOT-FOR-REAL-DEVICES"

// DataDir is the data directory `pomona serve --demo` uses for the data
// directory dir: dir with "-demo" appended (./pomona-data-demo), so the
// demo's tenant, user (whose password is published) and push certificate
// (not Apple's) never land in a deployment's data.
func DataDir(dir string) string {
	clean := filepath.Clean(dir)
	if strings.HasSuffix(clean, "-demo") {
		return clean
	}
	return clean + "-demo"
}

// CheckDataDir keeps demo data and real data apart, in both directions:
// a normal start (demo false) refuses a directory the demo created
// (marked by the marker file), and the demo refuses a directory that
// already holds a deployment (a database or sealing key without the
// marker). The demo marks a directory it starts in.
func CheckDataDir(dataDir string, demo bool) error {
	path := filepath.Join(dataDir, marker)
	_, err := os.Stat(path)
	isDemo := err == nil
	hasData := false
	for _, f := range []string{"pomona.db", "secret.key"} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err == nil {
			hasData = true
		}
	}
	switch {
	case !demo && isDemo:
		return fmt.Errorf("%s holds demo data (a tenant, a user whose password is published, a push certificate that is not Apple's): "+
			"start with --demo to use it, or choose another --data for a deployment", dataDir)
	case demo && !isDemo && hasData:
		return fmt.Errorf("--demo refuses %s: it holds a deployment's data (no %s marker); the demo keeps its data apart, in a directory of its own", dataDir, marker)
	case demo && !isDemo:
		return os.WriteFile(path, []byte("This data directory was made by `pomona serve --demo`: a throwaway tenant and user\n"+
			"whose password is published, and a push certificate that is not Apple's.\n"+
			"Never use it for real devices; delete the directory when done.\n"), 0o600)
	}
	return nil
}

// Store is what the demo reads to find what it set up before.
type Store interface {
	TenantByDomain(ctx context.Context, domain string) (*store.Tenant, error)
	UserByEmail(ctx context.Context, email string) (*store.User, error)
}

// Setup creates the demo tenant and user (resetting the password), a
// local push certificate when there is none (returned; nil when one
// existed), and starts an APNs stand-in that pusher is pointed at. The
// caller closes the stand-in.
func Setup(ctx context.Context, st Store, dir *directory.Service, certs *pushcert.Stored, pusher *push.Pusher) (*apnsstub.Server, *pushcert.Cert, error) {
	t, err := st.TenantByDomain(ctx, Domain)
	if errors.Is(err, store.ErrNotFound) {
		t, err = dir.CreateTenant(ctx, directory.TenantInput{Name: "Demo Corp", Domains: []string{Domain}})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("demo tenant: %w", err)
	}
	u, err := st.UserByEmail(ctx, User)
	if errors.Is(err, store.ErrNotFound) {
		_, err = dir.CreateUser(ctx, directory.UserInput{Tenant: t.ID, Email: User, Name: "Alice Demo", Password: Password})
	} else if err == nil {
		_, err = dir.SetPassword(ctx, u.ID, Password)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("demo user: %w", err)
	}
	var created *pushcert.Cert
	if _, err := certs.Load(ctx); errors.Is(err, pushcert.ErrNone) {
		ca, err := pki.NewCA("Pomona demo push CA (not Apple)", pki.ECDSAP256, time.Now())
		if err != nil {
			return nil, nil, err
		}
		c, err := pushcert.NewLocal(topic, ca, time.Now().Add(365*24*time.Hour))
		if err != nil {
			return nil, nil, err
		}
		if err := certs.Save(ctx, c); err != nil {
			return nil, nil, err
		}
		created = c
	}
	stub, err := apnsstub.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("demo APNs stand-in: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(stub.CA.Cert)
	pusher.URL, pusher.RootCAs = stub.URL, pool
	return stub, created, nil
}
