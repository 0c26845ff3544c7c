// Package testenv starts a fully wired Pomona server on a real loopback
// listener for tests: the same server.New the binary uses, with a fresh
// data directory and cheap password hashing.
package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/server"
)

// Env is a running test server.
type Env struct {
	URL     string // https://127.0.0.1:port (TLS from Pomona's CA)
	APIKey  string // the first-start admin key
	DataDir string
	CAFile  string
	Server  *server.Server
	Client  *http.Client // trusts Pomona's CA
	Logs    *os.File

	stop func() // Stop: ends the server once
}

// Stop ends the server before the test does (as an operator stops Pomona
// before `pomona store migrate`): Run returns, the store is closed and
// its SQLite lock released. Safe to call more than once; the test's
// cleanup calls it too.
func (e *Env) Stop() { e.stop() }

// Option changes the config before the server starts.
type Option func(*server.Config)

// LogLevel is the level Start's server logs at: debug for tests (the
// log is shown when a test fails), info for benchmarks, as `pomona serve`
// logs by default. At debug every MDM round trip writes six records
// (access lines, command traces) that production never formats, which
// skews every hot-path profile and allocation count.
func LogLevel(t testing.TB) slog.Level {
	if _, ok := t.(*testing.B); ok {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// Start runs a server until the test ends.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := server.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listen = ln.Addr().String()
	cfg.PublicURL = "https://" + ln.Addr().String()
	cfg.Password = password.Fast
	cfg.ShutdownTimeout = 15 * time.Second
	// Tests never reach Apple: pushes go to a closed loopback port unless a
	// test starts the APNs stand-in (apnsstub) and points here.
	cfg.APNsURL = "https://127.0.0.1:1"
	// POMONA_TEST_STORE=postgres runs the same tests on a fresh PostgreSQL
	// database.
	if os.Getenv("POMONA_TEST_STORE") == "postgres" {
		cfg.DB = pgtest.NewDatabase(t)
	}
	for _, o := range opts {
		o(&cfg)
	}
	logs, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: LogLevel(t)}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, io.Discard) }()
	e := &Env{DataDir: cfg.DataDir, CAFile: filepath.Join(cfg.DataDir, "ca.pem"), Server: srv, APIKey: srv.FirstAPIKey(), Logs: logs}
	scheme := "https://"
	if srv.TLSConfig() == nil {
		scheme = "http://"
	}
	e.URL = scheme + ln.Addr().String()
	pool := x509.NewCertPool()
	pool.AddCert(srv.CA.Cert)
	e.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server.Run: %v", err)
			}
			srv.Close()
		})
	}
	t.Cleanup(func() {
		e.stop()
		logs.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("server log:\n%s", b)
		}
	})
	return e
}
