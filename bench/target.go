package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/push/apnsstub"
	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/server"
)

// target is the server under load, however it runs.
type target struct {
	kind string // "separate process", "in process", "existing server"
	url  string
	key  string
	http *http.Client
	pool *x509.CertPool
	// pid is the server's process (0: unknown, no CPU or memory figures).
	pid int
	// pushes: the server pushes to the bench's APNs stand-in.
	pushes bool
	close  func()
	// heapLive returns the server's live Go heap after making it collect.
	heapLive func(ctx context.Context) int64
}

func (t *target) stats() (cpu time.Duration, rss, peak int64) {
	if t.pid == 0 {
		return 0, 0, 0
	}
	cpu, rss, peak, _ = procStats(t.pid)
	return
}

const bootKey = "pomona-bench-bootstrap-key-000001"

func loopbackClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64}}
}

// spawn runs `pomona serve` as a child process on loopback, pushing to stub.
func spawn(ctx context.Context, o Options, dir string, stub *apnsstub.Server, secretKey string) (*target, error) {
	apnsCA := filepath.Join(dir, "apns-ca.pem")
	if err := os.WriteFile(apnsCA, pki.CertPEM(stub.CA.Cert), 0o600); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--data", filepath.Join(dir, "data"), "--listen", addr, "--public-url", "https://" + addr,
		"--admin-api-key", bootKey, "--secret-key", secretKey, "--apns-url", stub.URL, "--apns-ca-file", apnsCA, "--log-level", "warn"}
	if o.DB != "" {
		args = append(args, "--db", o.DB)
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, o.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("bench: start the server: %w", err)
	}
	t := &target{kind: "separate process", url: "https://" + addr, key: bootKey, pid: cmd.Process.Pid, pushes: true,
		close: func() { cmd.Process.Signal(os.Interrupt); cmd.Wait(); logf.Close() }}
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if err := waitReady(ctx, insecure, t.url); err != nil {
		t.close()
		b, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("%w\n%s", err, b)
	}
	insecure.CloseIdleConnections()
	caPEM, err := os.ReadFile(filepath.Join(dir, "data", "ca.pem"))
	if err != nil {
		t.close()
		return nil, err
	}
	t.pool = x509.NewCertPool()
	t.pool.AppendCertsFromPEM(caPEM)
	t.http = loopbackClient(t.pool)
	t.heapLive = t.scrapeHeap
	return t, nil
}

// inProcess runs the server in this process: CPU and memory figures then
// include the load generator.
func inProcess(ctx context.Context, o Options, dir string, stub *apnsstub.Server, secretKey string) (*target, error) {
	apnsCA := filepath.Join(dir, "apns-ca.pem")
	if err := os.WriteFile(apnsCA, pki.CertPEM(stub.CA.Cert), 0o600); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.DB = filepath.Join(dir, "data"), o.DB
	cfg.Listen, cfg.PublicURL = ln.Addr().String(), "https://"+ln.Addr().String()
	cfg.AdminAPIKey, cfg.SecretKey, cfg.APNsURL, cfg.APNsCAFile = bootKey, secretKey, stub.URL, apnsCA
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		ln.Close()
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	srv, err := server.New(sctx, cfg, log)
	if err != nil {
		cancel()
		ln.Close()
		logf.Close()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(sctx, ln, io.Discard) }()
	t := &target{kind: "in process", url: "https://" + ln.Addr().String(), key: bootKey, pid: os.Getpid(), pushes: true,
		close: func() { cancel(); <-done; srv.Close(); logf.Close() }}
	t.pool = x509.NewCertPool()
	t.pool.AddCert(srv.CA.Cert)
	t.http = loopbackClient(t.pool)
	t.heapLive = func(context.Context) int64 {
		runtime.GC()
		s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
		rtmetrics.Read(s)
		return int64(s[0].Value.Uint64())
	}
	return t, waitReady(ctx, t.http, t.url)
}

// existing uses a server that is already running (its pushes do not reach
// the bench's stand-in: command round trips poll without waiting for one).
func existing(ctx context.Context, o Options) (*target, error) {
	u := strings.TrimRight(o.Server, "/")
	if !strings.HasPrefix(u, "https://127.0.0.1") && !strings.HasPrefix(u, "https://localhost") && !strings.HasPrefix(u, "https://[::1]") {
		return nil, errors.New("bench: --server must be a loopback https URL (https://127.0.0.1:port or https://localhost:port): the benchmark never loads a remote server")
	}
	if o.APIKey == "" {
		return nil, errors.New("bench: --server needs --api-key (POMONA_API_KEY)")
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if o.CAFile != "" {
		b, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, err
		}
		pool.AppendCertsFromPEM(b)
	}
	t := &target{kind: "existing server", url: u, key: o.APIKey, pid: o.ServerPID, pool: pool, http: loopbackClient(pool), close: func() {}}
	t.heapLive = t.scrapeHeap
	return t, waitReady(ctx, t.http, t.url)
}

func waitReady(ctx context.Context, c *http.Client, url string) error {
	for i := 0; i < 600; i++ {
		resp, err := c.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("bench: the server did not become ready")
}

// scrapeHeap makes the server collect garbage twice (by allocating: each
// /metrics scrape does) and then reads pomona_go_heap_live_bytes, the live
// heap of its last collection. Reading it without fresh collections would
// report the garbage of the last phase as live.
func (t *target) scrapeHeap(ctx context.Context) int64 {
	read := func() (live, gcs int64, err error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", t.url+"/metrics", nil)
		resp, err := t.http.Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "pomona_go_heap_live_bytes "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				live = int64(f)
			} else if v, ok := strings.CutPrefix(line, "go_gc_duration_seconds_count "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				gcs = int64(f)
			}
		}
		return live, gcs, sc.Err()
	}
	_, start, err := read()
	if err != nil {
		return 0
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		live, gcs, err := read()
		if err != nil {
			return 0
		}
		if gcs >= start+2 {
			return live
		}
	}
	return 0 // no collection within the time: not measured
}

func newSecretKey() string { return seal.NewKey() }
