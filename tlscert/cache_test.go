package tlscert_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/acme/autocert"

	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/tlscert"
)

// The ACME cache keeps entries sealed in the store's secrets table: a miss
// is autocert.ErrCacheMiss, a stored entry is not readable without the key,
// and a deleted one is a miss again.
func TestSealedCache(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pomona.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer, _ := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	c := &tlscert.SealedCache{Secrets: st, Sealer: sealer, IsNotFound: func(err error) bool { return errors.Is(err, store.ErrNotFound) }}

	if _, err := c.Get(ctx, "mdm.example.com"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("empty cache: %v", err)
	}
	secret := []byte("-----BEGIN EC PRIVATE KEY-----\nnot really\n-----END EC PRIVATE KEY-----\n")
	if err := c.Put(ctx, "mdm.example.com", secret); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "mdm.example.com")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("get: %q %v", got, err)
	}
	raw, err := st.Secret(ctx, "acme/mdm.example.com")
	if err != nil || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatalf("stored in the clear (or not at all): %v", err)
	}
	other, _ := seal.New(bytes.Repeat([]byte{8}, seal.KeySize))
	if _, err := (&tlscert.SealedCache{Secrets: st, Sealer: other, IsNotFound: c.IsNotFound}).Get(ctx, "mdm.example.com"); err == nil {
		t.Fatal("another key opened the entry")
	}
	if err := c.Delete(ctx, "mdm.example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "mdm.example.com"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestNewACMERefusesIPAddresses(t *testing.T) {
	for _, host := range []string{"", "192.0.2.1", "2001:db8::1"} {
		if _, err := tlscert.NewACME(tlscert.ACMEConfig{Host: host, Cache: autocert.DirCache(t.TempDir())}); err == nil {
			t.Errorf("%q accepted", host)
		}
	}
	if _, err := tlscert.NewACME(tlscert.ACMEConfig{Host: "mdm.example.com", Cache: autocert.DirCache(t.TempDir())}); err != nil {
		t.Fatal(err)
	}
}
