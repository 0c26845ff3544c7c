package tlscert_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/pomona-mdm/pomona/internal/acmetest"
	"github.com/pomona-mdm/pomona/tlscert"
)

// gatedCache is an in-memory autocert.Cache whose Put of the certificate
// (the entry named after the host) blocks until release is closed.
type gatedCache struct {
	mu      sync.Mutex
	m       map[string][]byte
	putting chan struct{} // closed when the certificate's Put starts
	release chan struct{}
	once    sync.Once
}

func (c *gatedCache) Get(_ context.Context, name string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[name]; ok {
		return v, nil
	}
	return nil, autocert.ErrCacheMiss
}

func (c *gatedCache) Put(_ context.Context, name string, data []byte) error {
	if name == acmetest.Host {
		c.once.Do(func() { close(c.putting) })
		<-c.release
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[name] = data
	return nil
}

func (c *gatedCache) Delete(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
	return nil
}

// autocert serves a certificate it has just obtained to waiting handshakes
// before it writes it to the cache. Wait returns only once that write is
// done, so a server that waits before closing its store keeps the
// certificate (TestACME's restart found none when it did not).
func TestACMEWaitCoversTheCacheWrite(t *testing.T) {
	ln, port := acmetest.FreePort(t)
	defer ln.Close()
	dir, caFile, roots := acmetest.Pebble(t, 1, port)
	dirRoots, err := tlscert.ReadCAFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	cache := &gatedCache{m: map[string][]byte{}, putting: make(chan struct{}), release: make(chan struct{})}
	defer func() {
		select {
		case <-cache.release:
		default:
			close(cache.release)
		}
	}()
	a, err := tlscert.NewACME(tlscert.ACMEConfig{Host: acmetest.Host, Directory: dir, RootCAs: dirRoots, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(tls.NewListener(ln, a.TLSConfig()))
	defer srv.Close()

	if err := a.Wait(context.Background()); err != nil {
		t.Fatalf("nothing in flight yet: %v", err)
	}
	prefetched := make(chan error, 1)
	go func() { _, err := a.Prefetch(); prefetched <- err }()
	select {
	case <-cache.putting:
	case err := <-prefetched:
		t.Fatalf("Prefetch ended without caching the certificate: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("no certificate after 60 s")
	}

	// The certificate is served while its cache write is still blocked.
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: acmetest.Host})
	if err != nil {
		t.Fatalf("handshake during the cache write: %v", err)
	}
	c.Close()
	if _, err := cache.Get(context.Background(), acmetest.Host); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("the write was not blocked: %v", err)
	}
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := a.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait returned during the cache write: %v", err)
	}

	close(cache.release)
	if err := a.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Get(context.Background(), acmetest.Host); err != nil {
		t.Fatalf("Wait returned before the certificate was cached: %v", err)
	}
	if err := <-prefetched; err != nil {
		t.Fatal(err)
	}
}
