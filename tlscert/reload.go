// Package tlscert provides the server's public TLS certificate in the two
// ways that need no proxy: certificate files that are reloaded when they
// change (Reloader), and a certificate obtained and renewed by ACME,
// RFC 8555 (NewACME, through golang.org/x/crypto/acme/autocert) with its
// account key and certificates sealed in the store (SealedCache).
// Both plug into tls.Config.GetCertificate, so a new certificate applies
// to new handshakes while open connections keep theirs.
package tlscert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Reloader serves a PEM certificate chain and key read from two files
// (as certbot and most ACME clients write them) and re-reads them when
// their size or modification time changes, or when Reload is called
// (SIGHUP). A pair that fails to load or to match (a half-written renewal)
// is logged and the previous certificate stays in use until the next try.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu    sync.RWMutex
	cert  *tls.Certificate
	stamp string // size and mtime of both files at the last successful load
}

// NewReloader loads certFile and keyFile (PEM; the chain leaf first). An
// unreadable or mismatched pair is an error here, at start-up.
func NewReloader(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert, nil
}

// Leaf is the certificate currently served.
func (r *Reloader) Leaf() *x509.Certificate {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert.Leaf
}

// Reload reads both files again. changed is false when they have not
// changed since the last successful load. On error the old certificate
// stays.
func (r *Reloader) Reload() (changed bool, err error) {
	stamp, err := r.stampNow()
	if err != nil {
		return false, err
	}
	r.mu.RLock()
	same := stamp == r.stamp
	r.mu.RUnlock()
	if same {
		return false, nil
	}
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return false, fmt.Errorf("load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.mu.Lock()
	r.cert, r.stamp = &pair, stamp
	r.mu.Unlock()
	return true, nil
}

// stampNow identifies the files' current contents cheaply. os.Stat
// follows symbolic links, so certbot's live/ links pointing at new
// archive/ files count as a change.
func (r *Reloader) stampNow() (string, error) {
	var stamp string
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%d/%d;", st.Size(), st.ModTime().UnixNano())
	}
	return stamp, nil
}

// Watch reloads when the files change (checked every interval) and on
// every value from hup (SIGHUP), until ctx ends. Failures are logged; the
// old certificate stays.
func (r *Reloader) Watch(ctx context.Context, every time.Duration, hup <-chan os.Signal) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		why := "files changed"
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-hup:
			why = "SIGHUP"
		}
		changed, err := r.Reload()
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			r.log.Error("TLS certificate reload failed; still serving the previous certificate", "err", err, "trigger", why)
		case changed:
			leaf := r.Leaf()
			r.log.Info("TLS certificate reloaded", "trigger", why, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.Format(time.RFC3339))
		}
	}
}
