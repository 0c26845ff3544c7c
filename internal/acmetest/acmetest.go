// Package acmetest runs Let's Encrypt's ACME test server (pebble, RFC 8555)
// in-process on loopback for tests of certificate issuance. Only tests
// import it.
package acmetest

import (
	"crypto/x509"
	"encoding/pem"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/letsencrypt/challtestsrv"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Host is the name test certificates are for. autocert wants a dotted
// name; the test's DNS server answers 127.0.0.1 for every name.
const Host = "mdm.pomona.test"

// Pebble starts pebble with its companion DNS server (challtestsrv)
// answering 127.0.0.1 for every name. Its validation authority connects to
// Host on tlsPort for TLS-ALPN-01 (RFC 8737) and httpPort for HTTP-01
// (RFC 8555 §8.3). It returns the directory URL, a PEM file of the CA to
// trust for the directory's HTTPS, and a pool with the issuing root.
// Everything stops when t ends.
func Pebble(t *testing.T, httpPort, tlsPort int) (dir, caFile string, roots *x509.CertPool) {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	logger := log.New(NewLogWriter(t), "pebble ", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	dnsLn, dnsPort := FreePort(t)
	dnsLn.Close()
	dnsAddr := "127.0.0.1:" + strconv.Itoa(dnsPort)
	dns, err := challtestsrv.New(challtestsrv.Config{Log: logger, DNSAddrs: []string{dnsAddr}})
	if err != nil {
		t.Fatal(err)
	}
	dns.SetDefaultDNSIPv4("127.0.0.1")
	dns.SetDefaultDNSIPv6("")
	go dns.Run()
	t.Cleanup(dns.Shutdown)
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	srv := httptest.NewTLSServer(front.Handler())
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "acme-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	return srv.URL + wfe.DirectoryPath, caFile, roots
}

// LogWriter logs into a test until it ends: server goroutines such as an
// ACME order in flight may outlive it, and t.Log after the end is a race.
type LogWriter struct {
	t    *testing.T
	mu   *sync.Mutex
	done *bool
}

// NewLogWriter returns a writer into t's log that goes quiet when t ends.
func NewLogWriter(t *testing.T) LogWriter {
	w := LogWriter{t: t, mu: &sync.Mutex{}, done: new(bool)}
	t.Cleanup(func() { w.mu.Lock(); *w.done = true; w.mu.Unlock() })
	return w
}

func (w LogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !*w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// FreePort listens on a free loopback port; close the listener to hand
// the port to something else.
func FreePort(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, ln.Addr().(*net.TCPAddr).Port
}
