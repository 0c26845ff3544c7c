package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
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
	s.notes.demo = true
	return nil
}
