package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/tlscert"
)

func loadSealer(cfg Config) (*seal.Sealer, string, bool, error) {
	if cfg.SecretKey != "" {
		key, err := seal.ParseKey(cfg.SecretKey)
		if err != nil {
			return nil, "", false, fmt.Errorf("POMONA_SECRET_KEY: %w (make one with: openssl rand -base64 32)", err)
		}
		s, err := seal.New(key)
		return s, "from POMONA_SECRET_KEY", false, err
	}
	path := filepath.Join(cfg.DataDir, "secret.key")
	key, created, err := seal.LoadOrCreateKeyFile(path)
	if err != nil {
		return nil, "", false, fmt.Errorf("sealing key: %w", err)
	}
	s, err := seal.New(key)
	return s, "from " + path, created, err
}

func (s *Server) setupTLS(ctx context.Context) error {
	cfg, sealer := s.cfg, s.sealer
	switch {
	case cfg.TLS == TLSOff:
		if cfg.TLSCert != "" {
			return errors.New("--tls=off and --tls-cert contradict each other")
		}
		s.notes.tlsDesc = "off (plain HTTP: put a TLS-terminating proxy in front)"
		return nil
	case cfg.TLS == TLSACME:
		if cfg.TLSCert != "" {
			return errors.New("--tls=acme obtains the certificate itself: leave out --tls-cert/--tls-key")
		}
		ac := tlscert.ACMEConfig{Host: s.PublicURL.Hostname(), Directory: cfg.ACMEDirectory, Email: cfg.ACMEEmail,
			HTTPSOrigin: "https://" + s.PublicURL.Host,
			Cache:       &tlscert.SealedCache{Secrets: s.Store, Sealer: sealer, IsNotFound: func(err error) bool { return errors.Is(err, store.ErrNotFound) }}}
		if cfg.ACMECAFile != "" {
			pool, err := tlscert.ReadCAFile(cfg.ACMECAFile)
			if err != nil {
				return fmt.Errorf("--acme-ca-file: %w", err)
			}
			ac.RootCAs = pool
		}
		a, err := tlscert.NewACME(ac)
		if err != nil {
			return err
		}
		s.acme, s.tlsConfig = a, a.TLSConfig()
		dir := cfg.ACMEDirectory
		if dir == "" {
			dir = tlscert.LetsEncrypt
		}
		s.notes.tlsDesc = fmt.Sprintf("ACME certificate for %s from %s (TLS-ALPN-01 on this listener", ac.Host, dir)
		if cfg.ACMEHTTPListen != "" {
			s.notes.tlsDesc += ", HTTP-01 on " + cfg.ACMEHTTPListen
		}
		s.notes.tlsDesc += "; renewed automatically)"
		return nil
	case cfg.TLSCert != "":
		r, err := tlscert.NewReloader(cfg.TLSCert, cfg.TLSKey, s.log)
		if err != nil {
			return fmt.Errorf("cannot load --tls-cert/--tls-key: %w", err)
		}
		s.certFiles = r
		s.tlsConfig = &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12}
		s.notes.tlsDesc = fmt.Sprintf("certificate from %s (valid until %s; reloaded when the files change or on SIGHUP)", cfg.TLSCert, r.Leaf().NotAfter.Format("2006-01-02"))
		return nil
	}
	host := s.PublicURL.Hostname()
	cert, key, err := pki.ServerCert(ctx, s.Store, sealer, s.CA, host, time.Now())
	if err != nil {
		return err
	}
	s.tlsConfig = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw, s.CA.Cert.Raw}, PrivateKey: key, Leaf: cert}},
		MinVersion:   tls.VersionTLS12,
	}
	s.notes.devTLS = true
	s.notes.tlsDesc = fmt.Sprintf("development certificate for %s from Pomona's CA (valid until %s)", host, cert.NotAfter.Format("2006-01-02"))
	return nil
}
