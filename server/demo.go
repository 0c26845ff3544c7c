package server

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
	"github.com/pomona-mdm/pomona/push/apnsstub"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/store"
)

// Demo settings: a throwaway tenant and user so that `pomona sim enroll`
// shows an enrollment without an Apple account. Only with --demo.
const (
	DemoDomain   = "demo.example"
	DemoUser     = "alice@demo.example"
	DemoPassword = "pomona-demo-password"
	demoTopic    = "com.apple.mgmt.External.00000000-demo-0000-0000-000000000000"
)

// demoMarker is the file that marks a data directory as the demo's.
const demoMarker = "DEMO-DATA-NOT-FOR-REAL-DEVICES"

// DemoDataDir is the data directory `pomona serve --demo` uses for the
// data directory dir: dir with "-demo" appended (./pomona-data-demo), so
// the demo's tenant, user (whose password is published) and push
// certificate (not Apple's) never land in a deployment's data.
func DemoDataDir(dir string) string {
	clean := filepath.Clean(dir)
	if strings.HasSuffix(clean, "-demo") {
		return clean
	}
	return clean + "-demo"
}

// checkDemoDir keeps demo data and real data apart, in both directions:
// a normal start refuses a directory the demo created (marked by
// demoMarker), and the demo refuses a directory that already holds a
// deployment (a database or sealing key without the marker). The demo
// marks a directory it starts in.
func checkDemoDir(cfg Config) error {
	marker := filepath.Join(cfg.DataDir, demoMarker)
	_, err := os.Stat(marker)
	isDemo := err == nil
	hasData := false
	for _, f := range []string{"pomona.db", "secret.key"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, f)); err == nil {
			hasData = true
		}
	}
	switch {
	case !cfg.Demo && isDemo:
		return fmt.Errorf("%s holds demo data (a tenant, a user whose password is published, a push certificate that is not Apple's): "+
			"start with --demo to use it, or choose another --data for a deployment", cfg.DataDir)
	case cfg.Demo && !isDemo && hasData:
		return fmt.Errorf("--demo refuses %s: it holds a deployment's data (no %s marker); the demo keeps its data apart, in a directory of its own", cfg.DataDir, demoMarker)
	case cfg.Demo && !isDemo:
		return os.WriteFile(marker, []byte("This data directory was made by `pomona serve --demo`: a throwaway tenant and user\n"+
			"whose password is published, and a push certificate that is not Apple's.\n"+
			"Never use it for real devices; delete the directory when done.\n"), 0o600)
	}
	return nil
}

// setupDemo creates the demo tenant and user (resetting the password), a
// local push certificate when there is none, and an in-process APNs
// stand-in that the pusher uses.
func (s *Server) setupDemo(ctx context.Context) error {
	t, err := s.Store.TenantByDomain(ctx, DemoDomain)
	if errors.Is(err, store.ErrNotFound) {
		t, err = s.Directory.CreateTenant(ctx, directory.TenantInput{Name: "Demo Corp", Domains: []string{DemoDomain}})
	}
	if err != nil {
		return fmt.Errorf("demo tenant: %w", err)
	}
	u, err := s.Store.UserByEmail(ctx, DemoUser)
	if errors.Is(err, store.ErrNotFound) {
		_, err = s.Directory.CreateUser(ctx, directory.UserInput{Tenant: t.ID, Email: DemoUser, Name: "Alice Demo", Password: DemoPassword})
	} else if err == nil {
		_, err = s.Directory.SetPassword(ctx, u.ID, DemoPassword)
	}
	if err != nil {
		return fmt.Errorf("demo user: %w", err)
	}
	if _, err := s.LoadPushCert(ctx); errors.Is(err, pushcert.ErrNone) {
		ca, err := pki.NewCA("Pomona demo push CA (not Apple)", pki.ECDSAP256, time.Now())
		if err != nil {
			return err
		}
		c, err := pushcert.NewLocal(demoTopic, ca, time.Now().Add(365*24*time.Hour))
		if err != nil {
			return err
		}
		if err := pushcert.Save(ctx, s.Store, s.sealer, c); err != nil {
			return err
		}
		s.notes.push = c
	}
	stub, err := apnsstub.Start()
	if err != nil {
		return fmt.Errorf("demo APNs stand-in: %w", err)
	}
	s.demoAPNs = stub
	pool := x509.NewCertPool()
	pool.AddCert(stub.CA.Cert)
	s.pusher.url, s.pusher.rootCAs = stub.URL, pool
	s.notes.demo, s.notes.demoDir = true, s.cfg.DataDir
	return s.setupDemoABM(ctx, t.ID)
}
