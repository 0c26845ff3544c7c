package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/server"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig(t *testing.T) server.Config {
	cfg := server.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Password = password.Fast
	cfg.PublicURL = "https://mdm.example.net"
	return cfg
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// run starts cfg on a loopback listener and returns its address, the
// start-up output and a stop function that reports Run's result.
func run(t testing.TB, cfg server.Config) (string, *syncBuf, *server.Server, func() error) {
	t.Helper()
	srv, err := server.New(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, out) }()
	waitFor(t, func() bool { return strings.Contains(out.String(), "listening") })
	return ln.Addr().String(), out, srv, func() error {
		cancel()
		err := <-done
		srv.Close()
		return err
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met in 2 s")
}

func TestFirstStartAutoTLS(t *testing.T) {
	cfg := testConfig(t)
	addr, out, srv, stop := run(t, cfg)
	text := out.String()
	key := srv.FirstAPIKey()
	for _, want := range []string{"listening    https://" + addr, "public URL   https://mdm.example.net", "sqlite", "tenants      0",
		"development certificate for mdm.example.net", key, "export POMONA_API_KEY=", "no tenant yet", filepath.Join(cfg.DataDir, "ca.pem")} {
		if !strings.Contains(text, want) {
			t.Errorf("start-up output lacks %q:\n%s", want, text)
		}
	}
	if key == "" {
		t.Fatal("no first-start key")
	}
	// The printed CA file verifies the served certificate for the public host.
	pemBytes, err := os.ReadFile(filepath.Join(cfg.DataDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "mdm.example.net"},
	}}
	for _, pw := range [][2]string{{"/healthz", `"ok"`}, {"/readyz", `"ready"`}, {"/metrics", "pomona_http_requests_total"}} {
		path, want := pw[0], pw[1]
		resp, err := c.Get("https://" + addr + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	// Request metrics carry the route pattern.
	resp, _ := c.Get("https://" + addr + "/metrics")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `pomona_http_requests_total{code="200",method="GET",route="GET /healthz"} 1`) {
		t.Fatalf("no per-route request counter:\n%s", grep(string(b), "pomona_http_requests_total"))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Second start: same CA, same TLS certificate, no new API key, and
	// only the key's hash was stored.
	addr2, out2, srv2, stop2 := run(t, cfg)
	defer stop2()
	if srv2.FirstAPIKey() != "" || strings.Contains(out2.String(), "Admin API key") {
		t.Fatal("a second start made another first-start key")
	}
	// Nobody used the console link yet: the second start says how to get a
	// new one.
	if !strings.Contains(out2.String(), "no web-console account is set up yet") || !strings.Contains(out2.String(), "pomona admin reset ad_") {
		t.Errorf("second start without a console account gives no way to a new setup link:\n%s", out2.String())
	}
	if !srv2.CA.Cert.Equal(srv.CA.Cert) {
		t.Fatal("CA changed across restarts")
	}
	conn, err := tls.Dial("tcp", addr2, &tls.Config{RootCAs: pool, ServerName: "mdm.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	db, _ := os.ReadFile(filepath.Join(cfg.DataDir, "pomona.db"))
	wal, _ := os.ReadFile(filepath.Join(cfg.DataDir, "pomona.db-wal"))
	if bytes.Contains(append(db, wal...), []byte(key[len(key)-43:])) {
		t.Fatal("the API key secret is stored in clear")
	}
	if bytes.Contains(append(db, wal...), []byte("PRIVATE KEY")) {
		t.Fatal("a private key is stored unsealed")
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestTLSOffAndFiles(t *testing.T) {
	cfg := testConfig(t)
	cfg.TLS = server.TLSOff
	addr, out, _, stop := run(t, cfg)
	if !strings.Contains(out.String(), "listening    http://") || !strings.Contains(out.String(), "TLS          off") {
		t.Fatalf("output:\n%s", out)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("plain HTTP healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	stop()

	// Certificate files given by the operator.
	ca, _ := pki.NewCA("ops CA", pki.ECDSAP256, time.Now())
	cert, key, _ := ca.IssueServer([]string{"mdm.example.net"}, pki.ECDSAP256, time.Now())
	dir := t.TempDir()
	kp, _ := pki.KeyPEM(key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pki.CertPEM(cert), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), kp, 0o600)
	cfg = testConfig(t)
	cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	addr, out, _, stop = run(t, cfg)
	defer stop()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "mdm.example.net"})
	if err != nil {
		t.Fatalf("operator certificate not served: %v\n%s", err, out)
	}
	conn.Close()
}

func TestConfigErrorsTellWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*server.Config)
		want string
	}{
		{"relative public URL", func(c *server.Config) { c.PublicURL = "mdm.example.net" }, "--public-url"},
		{"public URL with query", func(c *server.Config) { c.PublicURL = "https://mdm.example.net/?a=b" }, "query"},
		{"bad tls mode", func(c *server.Config) { c.TLS = "maybe" }, "--tls"},
		{"cert without key", func(c *server.Config) { c.TLSCert = "x.pem" }, "give both"},
		{"missing cert files", func(c *server.Config) { c.TLSCert, c.TLSKey = "/nonexistent/c.pem", "/nonexistent/k.pem" }, "--tls-cert"},
		{"acme for an IP address", func(c *server.Config) { c.TLS, c.PublicURL = server.TLSACME, "https://192.0.2.1" }, "DNS name"},
		{"acme with certificate files", func(c *server.Config) { c.TLS, c.TLSCert, c.TLSKey = server.TLSACME, "c.pem", "k.pem" }, "leave out --tls-cert"},
		{"acme CA file missing", func(c *server.Config) { c.TLS, c.ACMECAFile = server.TLSACME, "/nonexistent/ca.pem" }, "--acme-ca-file"},
		{"bad key type", func(c *server.Config) { c.CAKeyType = "dsa" }, "--ca-key-type"},
		{"bad secret key", func(c *server.Config) { c.SecretKey = "short" }, "POMONA_SECRET_KEY"},
		{"unreachable postgres", func(c *server.Config) { c.DB = "postgres://nobody@127.0.0.1:1/pomona?connect_timeout=2" }, "cannot reach"},
		{"unknown db", func(c *server.Config) { c.DB = "mysql://x" }, "sqlite://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mod(&cfg)
			_, err := server.New(context.Background(), cfg, quietLog())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestWrongSealingKeyIsExplained(t *testing.T) {
	cfg := testConfig(t)
	srv, err := server.New(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	cfg.SecretKey = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
	_, err = server.New(context.Background(), cfg, quietLog())
	if err == nil || !strings.Contains(err.Error(), "sealed with another key") {
		t.Fatalf("error %v", err)
	}
}

func TestGracefulShutdownFinishesRequests(t *testing.T) {
	cfg := testConfig(t)
	cfg.TLS = server.TLSOff
	addr, _, srv, stop := run(t, cfg)
	// A request whose body arrives slowly is in flight when shutdown
	// starts; it must still complete, and Run must return cleanly.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/tenants", pr)
	req.Header.Set("Authorization", "Bearer "+srv.FirstAPIKey())
	req.Header.Set("Content-Type", "application/json")
	res := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- -1
			return
		}
		resp.Body.Close()
		res <- resp.StatusCode
	}()
	pw.Write([]byte(`{"name":"Slow",`))
	time.Sleep(100 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-stopped:
		t.Fatalf("Run returned while a request was in flight: %v", err)
	default:
	}
	// New connections are refused once shutdown has begun.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("listener still accepts during shutdown")
	}
	pw.Write([]byte(`"domains":["slow.example"]}`))
	pw.Close()
	if code := <-res; code != 201 {
		t.Fatalf("in-flight request got %d", code)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// Two servers on one SQLite file are refused: the first holds its lock
// (which is also how `pomona restore` tells a live store).
func TestSQLiteStoreIsLockedWhileOpen(t *testing.T) {
	cfg := testConfig(t)
	first, err := server.New(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	_, err = server.New(context.Background(), cfg, quietLog())
	if err == nil || !strings.Contains(err.Error(), "another `pomona serve`") {
		t.Fatalf("second server on the same store: %v", err)
	}
	first.Close()
	again, err := server.New(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatalf("after Close the store is free: %v", err)
	}
	again.Close()
}
