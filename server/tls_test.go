package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/acmetest"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/server"
)

// writePair issues a certificate for mdm.example.net from ca and writes
// it and its key to dir/cert.pem and dir/key.pem (replacing them).
func writePair(t *testing.T, ca *pki.CA, dir string) *x509.Certificate {
	t.Helper()
	cert, key, err := ca.IssueServer([]string{"mdm.example.net"}, pki.ECDSAP256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := pki.KeyPEM(key)
	// Write-then-rename, as certbot and most tools replace files.
	for name, b := range map[string][]byte{"cert.pem": pki.CertPEM(cert), "key.pem": kp} {
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return cert
}

// servedSerial opens a new TLS connection and returns the serial of the
// certificate the server presents.
func servedSerial(t *testing.T, addr string, pool *x509.CertPool) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "mdm.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// The operator's certificate files are reloaded on SIGHUP and when they
// change; new connections get the new certificate while an open
// keep-alive connection goes on working; a broken pair keeps the old one.
func TestTLSFilesReload(t *testing.T) {
	for _, trigger := range []string{"SIGHUP", "file change"} {
		t.Run(trigger, func(t *testing.T) {
			opsCA, _ := pki.NewCA("ops CA", pki.ECDSAP256, time.Now())
			pool := x509.NewCertPool()
			pool.AddCert(opsCA.Cert)
			dir := t.TempDir()
			first := writePair(t, opsCA, dir)
			cfg := testConfig(t)
			cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			cfg.TLSReloadInterval = time.Hour // only SIGHUP
			if trigger == "file change" {
				cfg.TLSReloadInterval = 20 * time.Millisecond
			}
			addr, out, _, stop := run(t, cfg)
			defer stop()
			if !strings.Contains(out.String(), "reloaded when the files change or on SIGHUP") {
				t.Fatalf("start-up output does not say the certificate is reloaded:\n%s", out)
			}

			// A keep-alive connection made before the change.
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "mdm.example.net"}, MaxConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			get := func() (serial string, reused bool) {
				t.Helper()
				req, _ := http.NewRequest("GET", "https://"+addr+"/healthz", nil)
				req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
					GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
				}))
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("keep-alive request: %v", err)
				}
				io.Copy(io.Discard, resp.Body) // read to the end, or the connection is not reused
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("keep-alive request: %s", resp.Status)
				}
				return resp.TLS.PeerCertificates[0].SerialNumber.String(), reused
			}
			if s, _ := get(); s != first.SerialNumber.String() {
				t.Fatalf("first certificate not served")
			}

			second := writePair(t, opsCA, dir)
			if trigger == "SIGHUP" {
				// Without the signal nothing changes (the interval is an hour).
				time.Sleep(50 * time.Millisecond)
				if s := servedSerial(t, addr, pool); s != first.SerialNumber.String() {
					t.Fatal("certificate changed without SIGHUP")
				}
				if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, func() bool { return servedSerial(t, addr, pool) == second.SerialNumber.String() })

			s, reused := get()
			if !reused || s != first.SerialNumber.String() {
				t.Fatalf("the open connection was not kept (reused %v, serial %s)", reused, s)
			}

			// A half-written renewal (certificate without its key) is refused;
			// the server keeps serving the second certificate.
			cert3, _, _ := opsCA.IssueServer([]string{"mdm.example.net"}, pki.ECDSAP256, time.Now())
			os.WriteFile(filepath.Join(dir, "cert.pem"), pki.CertPEM(cert3), 0o600)
			if trigger == "SIGHUP" {
				syscall.Kill(os.Getpid(), syscall.SIGHUP)
			}
			time.Sleep(100 * time.Millisecond)
			if s := servedSerial(t, addr, pool); s != second.SerialNumber.String() {
				t.Fatalf("a mismatched pair replaced the certificate")
			}
		})
	}
}

const acmeHost = acmetest.Host

// runOn is run with a listener chosen by the test.
func runOn(t *testing.T, cfg server.Config, ln net.Listener) (*syncBuf, func() error) {
	t.Helper()
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(acmetest.NewLogWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, out) }()
	waitFor(t, func() bool { return strings.Contains(out.String(), "listening") })
	return out, func() error {
		cancel()
		err := <-done
		srv.Close()
		return err
	}
}

// publicCert waits until the server at addr presents a certificate for
// acmeHost that chains to roots.
func publicCert(t *testing.T, addr string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: acmeHost})
		if err == nil {
			defer c.Close()
			return c.ConnectionState().PeerCertificates[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from the ACME server: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// --tls=acme obtains a certificate from a local ACME server, answering
// TLS-ALPN-01 on the HTTPS listener or HTTP-01 on --acme-http-listen; the
// account and certificate are sealed in the store, so a restart (or
// another instance) serves the certificate without asking the CA again.
func TestACME(t *testing.T) {
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			ln, port := acmetest.FreePort(t)
			httpLn, httpPort := acmetest.FreePort(t)
			httpLn.Close()
			tlsPort := port
			if challenge == "http-01" {
				// Nothing answers TLS-ALPN-01 there: the client must fall back.
				closed, p := acmetest.FreePort(t)
				closed.Close()
				tlsPort = p
			}
			dir, caFile, roots := acmetest.Pebble(t, httpPort, tlsPort)
			cfg := testConfig(t)
			cfg.PublicURL = "https://" + acmeHost + ":" + strconv.Itoa(port)
			cfg.TLS = server.TLSACME
			cfg.ACMEDirectory, cfg.ACMECAFile, cfg.ACMEEmail = dir, caFile, "it@example.net"
			if challenge == "http-01" {
				cfg.ACMEHTTPListen = "127.0.0.1:" + strconv.Itoa(httpPort)
			}
			out, stop := runOn(t, cfg, ln)
			if !strings.Contains(out.String(), "ACME certificate for "+acmeHost+" from "+dir) {
				t.Fatalf("start-up output:\n%s", out)
			}
			leaf := publicCert(t, ln.Addr().String(), roots)
			if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != acmeHost {
				t.Fatalf("certificate names %v", leaf.DNSNames)
			}
			// A client without a server name (pomona healthcheck) is served too.
			c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatalf("handshake without SNI: %v", err)
			}
			c.Close()
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			// Restart on the same store with the ACME server unreachable:
			// the sealed cache has the certificate.
			cfg.ACMEDirectory = "https://127.0.0.1:1/dir"
			ln2, _ := acmetest.FreePort(t)
			_, stop2 := runOn(t, cfg, ln2)
			defer stop2()
			again := publicCert(t, ln2.Addr().String(), roots)
			if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
				t.Fatal("restart did not serve the cached certificate")
			}
		})
	}
}

// SIGHUP to a server without certificate files (systemctl reload) is
// logged, not fatal (the signal's default action would end the process).
func TestSIGHUPWithoutCertificateFiles(t *testing.T) {
	cfg := testConfig(t)
	cfg.TLS = server.TLSOff
	addr, _, _, stop := run(t, cfg)
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestTLSResumptionAndKeepAlive: the development certificate is ECDSA
// P-256 (a cheap handshake), a client that keeps connections reuses one,
// and a new connection from a client with a session cache resumes its TLS
// session (no certificate signature, no key exchange of a full handshake),
// as an iPhone does when it comes back.
func TestTLSResumptionAndKeepAlive(t *testing.T) {
	cfg := testConfig(t)
	addr, _, srv, stop := run(t, cfg)
	defer stop()
	pool := x509.NewCertPool()
	pool.AddCert(srv.CA.Cert)
	cache := tls.NewLRUClientSessionCache(4)
	conf := &tls.Config{RootCAs: pool, ServerName: "mdm.example.net", ClientSessionCache: cache}

	tr := &http.Transport{TLSClientConfig: conf}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	get := func() (reused bool, st *tls.ConnectionState) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+addr+"/healthz", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return reused, resp.TLS
	}
	_, st := get()
	if st.DidResume {
		t.Fatal("the first connection resumed a session")
	}
	if _, ok := st.PeerCertificates[0].PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("the development certificate's key is %T, want ECDSA", st.PeerCertificates[0].PublicKey)
	}
	if reused, _ := get(); !reused {
		t.Error("the keep-alive connection was not reused")
	}
	tr.CloseIdleConnections()
	reused, st := get()
	if reused || !st.DidResume {
		t.Errorf("a new connection: reused %v, resumed %v; want a new connection resuming the session", reused, st.DidResume)
	}
}
